"""Inference backends. Importing this package registers every backend this build knows of."""
from srgan_fast.backends import (
                                      cuda_backend,  # noqa: F401  (reports unavailable without CUDA in srgan_fast._C or a GPU)
                                      native_backend,  # noqa: F401  (reports unavailable when srgan_fast._C is missing)
                                      onnxruntime_backend,  # noqa: F401  (imports no onnxruntime until used)
                                      tensorrt_backend,  # noqa: F401  (imports no tensorrt until used)
                                      torch_backend,  # noqa: F401  (registers "torch")
)
from srgan_fast.backends.base import (
                                      Backend,
                                      BackendUnavailable,
                                      availability,
                                      backend_names,
                                      get_backend_class,
                                      ranked_backends,
                                      register_backend,
)

__all__ = ["Backend", "BackendUnavailable", "availability", "backend_names", "ranked_backends",
           "get_backend_class", "register_backend"]
