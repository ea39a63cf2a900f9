"""Inference backends. Importing this package registers every backend this build knows of."""
from srgan_fast.backends.base import (Backend, BackendUnavailable, availability, backend_names, ranked_backends,
                                      get_backend_class, register_backend)
from srgan_fast.backends import torch_backend  # noqa: F401  (registers "torch")
from srgan_fast.backends import onnxruntime_backend  # noqa: F401  (imports no onnxruntime until used)
from srgan_fast.backends import tensorrt_backend  # noqa: F401  (imports no tensorrt until used)
from srgan_fast.backends import native_backend  # noqa: F401  (reports unavailable when srgan_fast._C is missing)
from srgan_fast.backends import cuda_backend  # noqa: F401  (reports unavailable without CUDA in srgan_fast._C or a GPU)

__all__ = ["Backend", "BackendUnavailable", "availability", "backend_names", "ranked_backends",
           "get_backend_class", "register_backend"]
