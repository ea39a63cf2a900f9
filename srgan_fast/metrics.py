"""Image-quality metrics as the SR literature reports them: PSNR and SSIM on the BT.601 luma channel.

Images are uint8 [H, W, 3] RGB. Y is the studio-swing BT.601 luma (16..235) that MATLAB's ``rgb2ycbcr`` gives,
and a border of ``shave`` pixels (the scale factor) is left out, as in Ledig et al. and the benchmarks they cite.
"""
from __future__ import annotations

import numpy as np


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> float64 [H, W] luma in 16..235."""
    rgb = image.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _shaved_y(image: np.ndarray, shave: int) -> np.ndarray:
    y = rgb_to_y(image)
    return y[shave:-shave, shave:-shave] if shave else y


def psnr_y(output: np.ndarray, reference: np.ndarray, shave: int = 4) -> float:
    """PSNR in dB on Y between two uint8 RGB images of one shape."""
    if output.shape != reference.shape:
        raise ValueError(f"expected images of one shape, got {output.shape} and {reference.shape}")
    diff = _shaved_y(output, shave) - _shaved_y(reference, shave)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(output: np.ndarray, reference: np.ndarray, shave: int = 4) -> float:
    """SSIM on Y with the Gaussian window (sigma 1.5) of Wang et al. 2004; needs scikit-image."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            _shaved_y(output, shave),
            _shaved_y(reference, shave),
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def gradient_energy_y(image: np.ndarray) -> float:
    """Mean squared finite-difference gradient of Y: how much fine detail an image carries."""
    y = rgb_to_y(image)
    gx = np.diff(y, axis=1)
    gy = np.diff(y, axis=0)
    return float(np.mean(gx * gx) + np.mean(gy * gy))
