"""Weights: the srgan_fast format (``format``), loading ours and other projects' files (``load``, ``detect``),
and writing another project's weights in our format (``convert``)."""
from srgan_fast.weights.format import (FORMAT, GeneratorWeights, WeightsError, architecture_metadata, file_sha256,
                                       random_weights, tensors_sha256, weights_for)
from srgan_fast.weights.load import (DEFAULT_MODEL, available_models, load_weights, resolve_weights_path,
                                     save_weights)

__all__ = ["FORMAT", "DEFAULT_MODEL", "GeneratorWeights", "WeightsError", "architecture_metadata", "available_models",
           "file_sha256", "load_weights", "random_weights", "resolve_weights_path", "save_weights", "tensors_sha256",
           "weights_for"]
