"""The ×4 degradation that defines the task: bicubic downscaling with antialiasing.

One kernel for training data, the quality benchmark and the bicubic baseline: Pillow's ``BICUBIC`` filter,
the Keys cubic with a = -0.5 (the kernel of MATLAB's ``imresize``), widened by the scale factor when
downscaling so that it antialiases. Images are uint8 H×W×3 arrays.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def bicubic_resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size_h, size_w, 3] with the Keys a=-0.5 kernel (antialiased)."""
    h, w = size_hw
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))


def bicubic_downscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """uint8 [H, W, 3] with H, W divisible by ``factor`` -> uint8 [H/factor, W/factor, 3]."""
    h, w = image.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"expected height and width divisible by {factor}, got {h}x{w}")
    return bicubic_resize(image, (h // factor, w // factor))


def bicubic_upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """The baseline a model must beat: uint8 [H, W, 3] -> uint8 [factor·H, factor·W, 3]."""
    h, w = image.shape[:2]
    return bicubic_resize(image, (h * factor, w * factor))


def crop_to_multiple(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """Drop the last rows/columns so that H and W divide by ``factor`` (as the SR benchmarks do)."""
    h, w = image.shape[:2]
    return image[: h - h % factor, : w - w % factor]
