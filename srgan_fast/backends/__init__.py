"""Inference backends. Importing this package registers every backend this build knows of."""
from srgan_fast.backends import (  # noqa: F401  (importing each module registers its backend)
    cuda_backend,  # reports unavailable without CUDA in srgan_fast._C or a GPU
    native_backend,  # reports unavailable when srgan_fast._C is missing
    onnxruntime_backend,  # imports no onnxruntime until used
    tensorrt_backend,  # imports no tensorrt until used
    torch_backend,
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
