"""Any output size: the network runs at its own scale, then its result is resized to the size asked for.

The resize is Lanczos (a = 3, as Pillow implements it, antialiased: its support widens when shrinking),
the filter Real-ESRGAN's and the ncnn tools' ``outscale`` use. It runs per channel in float32 on the values
in the image's own dtype range, and is rounded and clamped back once, so 16-bit and float images lose
nothing to an 8-bit step; alpha is resized the same way.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from srgan_fast.tiler.channels import InputError, cast_like

RESIZE_FILTER = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class OutputSize:
    """What the caller asked for: at most one of a factor, an exact size, a width or a height (aspect kept)."""

    outscale: float | None = None
    size: tuple[int, int] | None = None  # (height, width)
    width: int | None = None
    height: int | None = None

    def __post_init__(self):
        given = [name for name in ("outscale", "size", "width", "height") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of outscale, size, width or height, got {', '.join(given)}")
        if self.outscale is not None and not (isinstance(self.outscale, (int, float)) and math.isfinite(self.outscale)):
            raise ValueError(f"outscale must be a number, got {self.outscale!r}")
        if self.size is not None and (len(self.size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.size)):
            raise ValueError(f"size must be (height, width) of positive ints, got {self.size!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    @property
    def native(self) -> bool:
        return self.outscale is None and self.size is None and self.width is None and self.height is None

    def target(self, input_hw: tuple[int, int], model_scale: int) -> tuple[int, int] | None:
        """The output (height, width) for an input of ``input_hw``, or None for the model's own scale.

        Refuses (``InputError``) a result smaller than the input; notes (one warning) a result larger than the
        model's scale, which only interpolates beyond what the network made.
        """
        h, w = input_hw
        if self.native or self.outscale == model_scale:
            return None
        if self.outscale is not None:
            target, factor = (max(1, round(h * self.outscale)), max(1, round(w * self.outscale))), self.outscale
        elif self.size is not None:
            target = self.size
            factor = min(target[0] / h, target[1] / w)
        elif self.width is not None:
            target, factor = (max(1, round(h * self.width / w)), self.width), self.width / w
        else:
            target, factor = (self.height, max(1, round(w * self.height / h))), self.height / h
        if factor < 1:
            raise InputError(f"output size {target[1]}x{target[0]} is smaller than the {w}x{h} input "
                             f"(scale {factor:.3g}); the output scale must be at least 1")
        if factor > model_scale:
            warnings.warn(f"output scale {factor:.3g} exceeds the model's x{model_scale}: the x{model_scale} result "
                          "is enlarged by Lanczos beyond it (no more detail)", stacklevel=4)
        if target == (model_scale * h, model_scale * w):
            return None
        return target


def resize(image: np.ndarray, target_hw: tuple[int, int]) -> np.ndarray:
    """[H, W, C] uint8/uint16/float32 -> [h, w, C] of the same dtype, Lanczos per channel in float32."""
    height, width = target_hw
    out = np.empty((height, width, image.shape[2]), dtype=image.dtype)
    for c in range(image.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32))  # mode "F"
        out[:, :, c] = cast_like(np.asarray(channel.resize((width, height), RESIZE_FILTER)), image.dtype)
    return out
