"""Inference backends. Importing this package registers every backend this build knows of."""
from srgan_fast.backends.base import (Backend, BackendUnavailable, availability, backend_names, choose_backend,
                                      get_backend_class, register_backend)
from srgan_fast.backends import torch_backend  # noqa: F401  (registers "torch")

__all__ = ["Backend", "BackendUnavailable", "availability", "backend_names", "choose_backend",
           "get_backend_class", "register_backend"]
