"""srgan_fast: fast ×4 single-image super-resolution after SRGAN (Ledig et al., 2017).

    import srgan_fast
    big = srgan_fast.upscale(image)            # NumPy array or PIL image, same type back, 4× the size
    upscaler = srgan_fast.Upscaler("srresnet")  # keep a loaded model for loops over files or frames
"""
from srgan_fast.api import Upscaler, upscale
from srgan_fast.backends import BackendUnavailable, availability
from srgan_fast.tiler.channels import InputError
from srgan_fast.tiler.streaming import StreamError
from srgan_fast.weights import GeneratorWeights, WeightsError, available_models, load_weights

__version__ = "0.1.0"
__all__ = ["Upscaler", "upscale", "load_weights", "available_models", "availability", "GeneratorWeights",
           "InputError", "StreamError", "WeightsError", "BackendUnavailable", "export_onnx", "upscale_video"]


def __getattr__(name):
    # Optional parts import their heavy dependencies (onnx, PyAV) only when used.
    if name == "export_onnx":
        from srgan_fast.backends.onnx_graph import export_onnx

        return export_onnx
    if name == "upscale_video":
        from srgan_fast.video import upscale_video

        return upscale_video
    raise AttributeError(f"module 'srgan_fast' has no attribute {name!r}")
