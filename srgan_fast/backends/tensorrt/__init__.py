"""TensorRT engines for the generator: build (``builder``), cache (``cache``), run (``runtime``).

TensorRT, CUDA and torch are imported inside the functions that need them, so this package imports (and its
options, cache and calibration are tested) on machines without a GPU. See docs/tensorrt.md.
"""
from srgan_fast.backends.tensorrt.options import BuildOptions, DeviceInfo

__all__ = ["BuildOptions", "DeviceInfo"]
