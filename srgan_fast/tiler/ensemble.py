"""Self-ensemble (test-time augmentation): the 8 flips and rotations of the input, each upscaled, brought back
and averaged (Lim et al., EDSR, 2017, "geometric self-ensemble"; the ncnn upscalers' ``-x``).

The transforms are the dihedral group of the square: a rotation by k·90° (k = 0..3), with or without a
transpose first. Four of them keep the frame's shape and four swap height and width, so they go through the
tiler as two batches of four frames whose tiles share backend calls: eight times the work, no more. The
network's outputs are averaged in float32 before anything is rounded to the image's dtype.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from srgan_fast.tiler.channels import FULL_SCALE, cast_like

# (transpose first, quarter turns): the 8 elements of the dihedral group D4.
TRANSFORMS = tuple((transpose, turns) for transpose in (False, True) for turns in range(4))


def forward(image: np.ndarray, transpose: bool, turns: int) -> np.ndarray:
    """[..., H, W, C] -> the transformed frames (axes -3 and -2 are height and width)."""
    if transpose:
        image = np.swapaxes(image, -3, -2)
    return np.rot90(image, turns, axes=(-3, -2))


def inverse(image: np.ndarray, transpose: bool, turns: int) -> np.ndarray:
    image = np.rot90(image, -turns, axes=(-3, -2))
    return np.swapaxes(image, -3, -2) if transpose else image


def self_ensemble(rgb: np.ndarray, upscale_rgb: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """[N, H, W, 3] -> [N, sH, sW, 3] of the same dtype: the mean of the 8 transformed runs of ``upscale_rgb``.

    ``upscale_rgb`` takes [M, h, w, 3] float32 in [0, 1] and returns [M, sh, sw, 3] float32 (clamped, unrounded).
    """
    full_scale = FULL_SCALE[rgb.dtype]
    unit = rgb.astype(np.float32) / np.float32(full_scale)  # as the backends divide (float32 divides by 1)
    total = None
    # A transform swaps height and width when exactly one of "transpose" and "odd turns" holds: group by that.
    by_shape: dict[bool, list[tuple[bool, int]]] = {}
    for transpose, turns in TRANSFORMS:
        by_shape.setdefault(transpose != (turns % 2 == 1), []).append((transpose, turns))
    for transforms in by_shape.values():
        frames = np.concatenate([np.ascontiguousarray(forward(unit, t, k)) for t, k in transforms])
        upscaled = upscale_rgb(frames)
        upscaled = upscaled.reshape((len(transforms), len(rgb)) + upscaled.shape[1:])
        for (transpose, turns), result in zip(transforms, upscaled):
            restored = inverse(result, transpose, turns)
            total = restored.astype(np.float32) if total is None else total + restored
    return cast_like(total / np.float32(len(TRANSFORMS)) * np.float32(full_scale), rgb.dtype)
