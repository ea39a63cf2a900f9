"""The interface every inference backend implements, and the registry that ``upscale`` picks from.

A backend runs the whole generator on a batch of equally sized tiles, NHWC, and owns the value conversions
so that a native engine can fuse them into its first and last kernels:

    run(tiles: [N, h, w, 3] uint8 | uint16 | float32, C-contiguous)  ->  [N, 4h, 4w, 3] of the same dtype

uint8 and uint16 map the full integer range to [0, 1]; float32 is taken as [0, 1]. The output is rounded
(integers) and clamped to the dtype's range. Alpha, gray and tiling are handled above the backend.
"""
from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from srgan_fast import architecture
from srgan_fast.weights import GeneratorWeights

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)
FULL_SCALE = {np.dtype(name): value for name, value in architecture.FULL_SCALE.items()}


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (missing package, no GPU, build failed); the message says why."""


class Backend(abc.ABC):
    name: ClassVar[str]
    # Device kinds this backend serves, best first in ``auto`` when the number is higher.
    auto_priority: ClassVar[dict[str, int]] = {}

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this machine, else a one-line reason for ``srgan-fast info``."""

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        return ("fp32",)

    @classmethod
    def default_precision(cls, device: str, supported: tuple[str, ...], options: dict) -> str:
        """The precision when none is asked for, with these backend options: fp16 on GPUs (as GPU upscalers
        default to), fp32 elsewhere."""
        return "fp16" if device.startswith("cuda") and "fp16" in supported else "fp32"

    @classmethod
    def precisions_with(cls, device: str, options: dict) -> tuple[str, ...]:
        """The precisions it runs on ``device`` with these backend options (a forced kernel path may run others
        than the automatic choice)."""
        return cls.supported_precisions(device)

    def __init__(self, weights: GeneratorWeights, device: str, precision: str):
        self.weights, self.device, self.precision = weights, device, precision

    @abc.abstractmethod
    def run(self, tiles: np.ndarray) -> np.ndarray:
        """[N, h, w, 3] uint8/uint16/float32 -> [N, 4h, 4w, 3] same dtype (see the module docstring)."""

    def bytes_per_input_pixel(self) -> int:
        """Peak working memory per input pixel of a tile; the tiler sizes tiles from it."""
        return 10_000

    def window_bytes(self, height: int, width: int) -> int:
        """Peak working memory of one height x width window: what the tiler fits windows and batches into the
        memory budget by. Backends that know their workspace at each size say so (their halos and scratch make
        small windows dearer per pixel than large ones)."""
        return height * width * self.bytes_per_input_pixel()

    def seam_tiles(self) -> tuple[int, ...] | None:
        """Per layer of the network, the output tile (rows = columns) its kernel computes as one, whose bits
        depend on the tile's whole input patch (Winograd); None: every output pixel is computed on its own, or
        the backend does not say. The tiler aligns windows to these tiles (tiler/seams.py)."""
        return None

    def saturating_batch_pixels(self) -> int | None:
        """Input pixels per call past which a bigger batch runs no faster; None: none known (fill the memory
        budget). The tiler and the server's scheduler cap batches there: past it a batch only costs memory."""
        return None

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"


def engine_layers(weights: GeneratorWeights, level_multiple: int = 1) -> list[dict]:
    """The description's layers with their tensors attached, as the native and CUDA engines take them: layer
    references as indices (-1: the image), activations as slope arrays (fixed slopes filled in), levels times
    ``level_multiple``: a network that reads its image pixel-unshuffled by u runs from the unshuffled image,
    where its levels are whole (``Network.input_multiple``)."""
    network = weights.network
    index = {conv.name: i for i, conv in enumerate(network.layers)}
    index[architecture.IMAGE] = -1
    records = []
    for conv in network.layers:
        slopes = None
        if conv.activation is not None:
            slopes = (weights.tensors[conv.activation.slopes_tensor] if conv.activation.slopes_tensor is not None
                      else np.full(conv.result_channels, conv.activation.slope, np.float32))
        records.append({"name": conv.name, "in_channels": conv.in_channels, "out_channels": conv.out_channels,
                        "kernel": conv.kernel, "level": round(conv.level * level_multiple), "shuffle": conv.shuffle,
                        "source": index[conv.inputs[0]], "sources": [index[name] for name in conv.inputs],
                        "upsample": conv.upsample,
                        "residual": -1 if conv.residual is None else index[conv.residual],
                        "residual_scale": conv.residual_scale,
                        "outer_residual": -1 if conv.outer_residual is None else index[conv.outer_residual],
                        "outer_residual_scale": conv.outer_residual_scale,
                        "weight": weights.tensors[f"{conv.name}.weight"], "bias": weights.tensors[f"{conv.name}.bias"],
                        "slopes": slopes})
    return records


def tiles_to_unit_nchw(tiles: np.ndarray) -> np.ndarray:
    """[N, h, w, 3] uint8/uint16/float32 -> float32 [N, 3, h, w] in [0, 1], for runtimes fed NCHW floats."""
    if tiles.dtype not in FULL_SCALE:
        raise ValueError(f"expected tiles of dtype uint8, uint16 or float32, got {tiles.dtype}")
    x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32)
    full_scale = FULL_SCALE[tiles.dtype]
    return x if full_scale == 1.0 else x / np.float32(full_scale)


def unit_nchw_to_tiles(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float [N, 3, H, W] model output -> [N, H, W, 3] of ``dtype``, clamped (and rounded for integers)."""
    y = np.ascontiguousarray(np.clip(y, 0.0, 1.0).transpose(0, 2, 3, 1), dtype=np.float32)
    full_scale = FULL_SCALE[np.dtype(dtype)]
    return y if full_scale == 1.0 else np.round(y * np.float32(full_scale)).astype(dtype)


_REGISTRY: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return list(_REGISTRY)


def get_backend_class(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}: expected 'auto' or one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def availability() -> dict[str, str | None]:
    """Backend name -> None if usable, else why not."""
    return {name: cls.unavailable_reason() for name, cls in _REGISTRY.items()}


def ranked_backends(device_kind: str) -> list[str]:
    """Backends available for a device kind ('cpu' or 'cuda'), fastest first by each backend's priority."""
    usable = [
        (cls.auto_priority[device_kind], name)
        for name, cls in _REGISTRY.items()
        if device_kind in cls.auto_priority and cls.unavailable_reason() is None
    ]
    if not usable:
        raise BackendUnavailable(f"no backend can run on {device_kind}: " + "; ".join(
            f"{n}: {r}" for n, r in availability().items() if r))
    return [name for _, name in sorted(usable, reverse=True)]
