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
from typing import Callable

import numpy as np
from PIL import Image

from srgan_fast.options import parse_number, parse_positive_int
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
        # Stored as Python numbers, whatever numeric type they came in (NumPy scalars from a computed size, say).
        if self.outscale is not None:
            object.__setattr__(self, "outscale", parse_number(self.outscale, "outscale"))
        if self.size is not None:
            object.__setattr__(self, "size", _size(self.size))
        for name in ("width", "height"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, parse_positive_int(getattr(self, name), name))

    def __str__(self) -> str:
        """What was asked for, as the caller spelled it: 'width=2000000', 'outscale=2.5'."""
        given = [(name, getattr(self, name)) for name in ("outscale", "size", "width", "height")]
        return ", ".join(f"{name}={value:g}" if name == "outscale" else f"{name}={value}"
                         for name, value in given if value is not None) or "the model's scale"

    @property
    def native(self) -> bool:
        return self.outscale is None and self.size is None and self.width is None and self.height is None

    def target(self, input_hw: tuple[int, int], model_scale: int,
               check: Callable[[tuple[int, int] | None], None] | None = None) -> tuple[int, int] | None:
        """The output (height, width) for an input of ``input_hw``, or None for the model's own scale.

        Refuses (``InputError``) a result smaller than the input; ``check(target)`` may refuse it too (the
        Upscaler's memory check), before the one warning that a result larger than the model's scale gets, which
        only interpolates beyond what the network made.
        """
        h, w = input_hw
        if self.native or self.outscale == model_scale:
            target, factor = None, model_scale
        elif self.outscale is not None:
            # The memory check counts bytes in floats: a scale whose output's byte count overflows them (1e300,
            # say) has no size to check, nor to make.
            if not math.isfinite(h * self.outscale * w * self.outscale * 64):
                raise InputError(f"output scale {self.outscale:g} is too large: the {w}x{h} input's output size "
                                 "would overflow")
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
        if target == (model_scale * h, model_scale * w):
            target = None
        if check is not None:
            check(target)
        if factor > model_scale:
            warnings.warn(f"output scale {factor:.3g} exceeds the model's x{model_scale}: the x{model_scale} result "
                          "is enlarged by Lanczos beyond it (no more detail)", stacklevel=4)
        return target


def _size(size) -> tuple[int, int]:
    """(height, width) of positive integers of any integer type, as ints."""
    try:
        sides = tuple(parse_positive_int(side, "size") for side in size)
    except (TypeError, ValueError):
        sides = ()
    if len(sides) != 2:
        raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    return sides


def resize(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8/uint16/float32 -> ``out``, [h, w, C] of the same dtype (a frame of the call's result, so
    that no second copy of a large output is made), Lanczos per channel in float32."""
    height, width = out.shape[:2]
    for c in range(image.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32))  # mode "F"
        out[:, :, c] = cast_like(np.asarray(channel.resize((width, height), RESIZE_FILTER)), image.dtype)
    return out


# Bytes the resize holds at once beyond its result, per pixel of the image resized and of the target: one channel
# as float32 in NumPy and in Pillow, and the target channel as Pillow's float32, NumPy's copy and cast_like's
# rounded and clamped temporaries.
RESIZE_BYTES_PER_SOURCE_PIXEL = 8
RESIZE_BYTES_PER_TARGET_PIXEL = 16
