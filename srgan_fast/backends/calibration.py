"""Static activation ranges from sample images, shared by the backends that quantize activations (the native
engine's int8, TensorRT's int8 and fp8): the calibration images and crops, the collection of each tensor's
values over two passes (extremes, then a histogram over them), and the choice of the range to code.

Methods (``ActivationStats.range``):
  minmax      the extremes seen: nothing clipped, the widest steps.
  percentile  the 0.01% / 99.99% quantiles: the rarest outliers clipped.
  mse         the clipping range whose codes give the least squared error over the histogram.
  entropy     the clipping threshold T that minimises KL(P || Q), where P is the histogram of |x| with
              everything beyond T folded into its last bin, and Q is P's in-range part merged into 128 levels
              (what a symmetric int8 code can represent) and spread back over the bins P uses (TensorRT's method).
The native engine's method was chosen on the validation split (README: the int8 rows of the models table).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
METHODS = ("minmax", "percentile", "mse", "entropy")
INT8_LEVELS = 128  # magnitudes 0..127 of a symmetric int8 code
PERCENTILE = 0.9999


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"calibration images: expected a folder of images, got {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration images: no {', '.join(IMAGE_SUFFIXES)} files in {folder}")
    return files


def images_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def calibration_tiles(files: list[Path], tile: tuple[int, int], max_tiles: int = 64,
                      seed: int = 0) -> np.ndarray:
    """Random tile-sized RGB crops from the images, spread evenly over them: [n, h, w, 3] float32 in [0, 1]."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = tile
    if len(files) > max_tiles:  # one crop each from images spread over the whole (sorted) list
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_tiles).round().astype(int)]
    per_image = max(1, math.ceil(max_tiles / len(files)))
    crops = []
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        # Images smaller than a tile are mirrored out to it, as the tiler pads image borders.
        pad_h, pad_w = max(0, h - pixels.shape[0]), max(0, w - pixels.shape[1])
        if pad_h or pad_w:
            pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        for _ in range(per_image):
            top = rng.integers(0, pixels.shape[0] - h + 1)
            left = rng.integers(0, pixels.shape[1] - w + 1)
            crops.append(pixels[top:top + h, left:left + w])
    return np.stack(crops[:max_tiles])


def entropy_threshold(hist: np.ndarray, bin_width: float, levels: int = INT8_LEVELS) -> float:
    """The |x| clipping threshold that loses least information when |x| is coded on ``levels`` uniform steps.

    hist: counts of |x| in equal bins of ``bin_width`` starting at 0.
    """
    hist = np.asarray(hist, dtype=np.float64)
    if len(hist) <= levels or hist.sum() == 0:
        return len(hist) * bin_width
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = hist[i:].sum()
    best_bins, best_kl = len(hist), math.inf
    for n in range(levels, len(hist) + 1):
        kept = hist[:n]
        p = kept.copy()
        if n < len(hist):
            p[-1] += tail[n]
        edges = np.round(np.linspace(0, n, levels + 1)).astype(np.int64)
        group = np.repeat(np.arange(levels), np.diff(edges))
        used = p > 0
        group_mass = np.bincount(group, weights=kept, minlength=levels)
        group_used = np.bincount(group, weights=used, minlength=levels)
        q = np.where(used, group_mass[group] / np.maximum(group_used[group], 1), 0.0)
        # Where P has mass and Q none (only the folded outliers can do that), a tiny Q keeps KL finite but large.
        q = np.where(used & (q == 0), 1e-9 * p.sum(), q)
        p_norm, q_norm = p[used] / p.sum(), q[used] / q.sum()
        kl = float(np.sum(p_norm * np.log(p_norm / q_norm)))
        if kl < best_kl:
            best_bins, best_kl = n, kl
    return best_bins * bin_width


class ActivationStats:
    """Each named tensor's values over the calibration runs: ``add_extremes`` on every run of a first pass,
    then ``add_histogram`` on the same runs (the bins span the extremes), then ``range(name, method)``.

    symmetric: histogram |x| from 0 (symmetric codes: only the magnitude matters), else x from min(lo, 0) to
    max(hi, 0) (u8 codes with a zero point: real 0 must be a code, it is the padding)."""

    def __init__(self, symmetric: bool, bins: int = 2048):
        self.symmetric, self.bins = symmetric, bins
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.hist: dict[str, np.ndarray] = {}

    def add_extremes(self, name: str, values: np.ndarray) -> None:
        lo, hi = (0.0, float(np.abs(values).max())) if self.symmetric else (float(values.min()), float(values.max()))
        self.low[name] = min(self.low.get(name, 0.0), lo)
        self.high[name] = max(self.high.get(name, 0.0), hi)

    def span(self, name: str) -> tuple[float, float]:
        lo, hi = self.low[name], self.high[name]
        return (lo, hi) if hi > lo else (lo, lo + 1.0)  # an all-zero tensor: any range codes it exactly

    def add_histogram(self, name: str, values: np.ndarray) -> None:
        lo, hi = self.span(name)
        x = np.abs(values) if self.symmetric else values
        index = np.clip(((x.ravel() - lo) * (self.bins / (hi - lo))).astype(np.int64), 0, self.bins - 1)
        self.hist[name] = self.hist.get(name, 0) + np.bincount(index, minlength=self.bins)

    def range(self, name: str, method: str) -> tuple[float, float]:
        """The (low, high) to code for ``name`` (low is 0 when symmetric: high is the amax)."""
        lo, hi = self.span(name)
        if method == "minmax" or name not in self.hist:
            return lo, hi
        hist = self.hist[name].astype(np.float64)
        width = (hi - lo) / self.bins
        centres = lo + (np.arange(self.bins) + 0.5) * width
        if method == "percentile":
            cdf = np.cumsum(hist) / hist.sum()
            top = lo + (np.searchsorted(cdf, PERCENTILE) + 1) * width
            bottom = lo if self.symmetric else lo + np.searchsorted(cdf, 1 - PERCENTILE) * width
            return min(bottom, 0.0), max(top, 0.0)
        if method == "mse":
            return self._least_squared_error(hist, centres, lo, hi)
        if method == "entropy":
            if self.symmetric:
                return 0.0, entropy_threshold(hist, width)
            magnitude = np.histogram(np.abs(centres), bins=self.bins, range=(0, max(-lo, hi)), weights=hist)[0]
            t = entropy_threshold(magnitude, max(-lo, hi) / self.bins)
            return max(lo, -t), min(hi, t)
        raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(METHODS)}")

    def _least_squared_error(self, hist, centres, lo, hi) -> tuple[float, float]:
        ratios = np.linspace(0.2, 1.0, 17)
        best = (math.inf, lo, hi)
        for r_lo in [1.0] if self.symmetric or lo == 0 else ratios:
            for r_hi in ratios:
                a, b = lo * r_lo, hi * r_hi
                if self.symmetric:  # codes -127..127, step b / 127
                    step = b / (INT8_LEVELS - 1)
                    coded = np.clip(np.rint(centres / step), 0, INT8_LEVELS - 1) * step
                else:  # codes 0..255 with a zero point
                    step = (b - a) / 255
                    zero = np.clip(np.rint(-a / step), 0, 255)
                    coded = (np.clip(np.rint(centres / step) + zero, 0, 255) - zero) * step
                error = float(np.sum(hist * (centres - coded) ** 2))
                if error < best[0]:
                    best = (error, a, b)
        return best[1], best[2]
