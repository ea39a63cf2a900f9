"""Training pairs from folders of HR photos: random HR crops, flips/rotations, bicubic ×4 LR.

Every sample is a pure function of (seed, sample index): sample k of the run draws its image, crop and
augmentation from ``np.random.default_rng([seed, k])``. So any number of worker processes gives the same
batches, and resuming at step s only needs s (the loader starts at sample s × batch).

HR crops are decoded once into memory (the 180 training photos take about 0.4 GB), shared by the forked workers.
The LR kernel is ``srgan_fast.degradation.bicubic_downscale`` (Keys a=-0.5, antialiased), the one the quality
benchmark uses. LR is in the generator's input range [0, 1], HR in its output range [0, 1].
"""
from __future__ import annotations

import logging
import signal
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from srgan_fast.degradation import bicubic_downscale

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
log = logging.getLogger(__name__)


def list_images(folders: list[str | Path]) -> list[Path]:
    """Image files under the folders (recursively), sorted so that splits are reproducible."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"training data folder not found: {folder}")
        files += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, folders))}")
    return sorted(files)


def split_train_val(files: list[Path], val_every: int = 10) -> tuple[list[Path], list[Path]]:
    """Every ``val_every``-th file (by sorted path) is held aside for validation."""
    val = files[::val_every]
    held = set(val)
    return [f for f in files if f not in held], val


def load_rgb_images(files: list[Path], min_size: int) -> tuple[list[np.ndarray], list[Path]]:
    """Decode images as uint8 RGB; unreadable or too-small files are skipped, counted and reported."""
    images, skipped = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            warnings.warn(f"skipping unreadable image {path}: {exc}")
            skipped.append(path)
            continue
        if min(image.shape[:2]) < min_size:
            warnings.warn(f"skipping {path}: {image.shape[1]}x{image.shape[0]} is smaller than {min_size}px")
            skipped.append(path)
            continue
        images.append(image)
    if not images:
        raise ValueError(f"none of the {len(files)} images could be used ({len(skipped)} skipped)")
    if skipped:
        log.warning("skipped %d of %d images", len(skipped), len(files))
    return images, skipped


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 symmetries of the square: optional horizontal flip, then 0-3 quarter turns."""
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(np.rot90(crop, k=int(rng.integers(4))))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


class RandomCropPairs(Dataset):
    """Sample k -> (LR [3, crop/4, crop/4], HR [3, crop, crop]), both float32 in [0, 1]."""

    def __init__(self, images: list[np.ndarray], crop: int = 96, seed: int = 0, scale: int = 4):
        if crop % scale:
            raise ValueError(f"crop size must be a multiple of {scale}, got {crop}")
        self.images, self.crop, self.seed, self.scale = images, crop, seed, scale
        # Pick images in proportion to their area, so that every HR pixel is equally likely.
        areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.cumulative = np.cumsum(areas / areas.sum())

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler says where to start and stop

    def hr_crop(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        pick = np.searchsorted(self.cumulative, rng.random(), side="right")
        image = self.images[min(int(pick), len(self.images) - 1)]
        y = int(rng.integers(image.shape[0] - self.crop + 1))
        x = int(rng.integers(image.shape[1] - self.crop + 1))
        return augment(image[y : y + self.crop, x : x + self.crop], rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr = self.hr_crop(index)
        return to_tensor(bicubic_downscale(hr, self.scale)), to_tensor(hr)


class RangeSampler(Sampler):
    """Sample indices start, start+1, ...: the loader's position is the step count, nothing more."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group. A worker that died of it would make the loader fail before the
    # main process could checkpoint; the main process alone decides to stop, and then shuts the workers down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_loader(dataset: RandomCropPairs, batch_size: int, start_step: int, total_steps: int,
                    workers: int = 1, pin_memory: bool = False) -> DataLoader:
    """``pin_memory`` (for a CUDA device): page-locked batches, so that the copy to the GPU can be asynchronous."""
    sampler = RangeSampler(start_step * batch_size, total_steps * batch_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, drop_last=True, worker_init_fn=_ignore_interrupts)


def validation_pairs(images: list[np.ndarray], crop: int = 256, scale: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (LR, HR) uint8 pairs from the centre of each validation image, for a quick PSNR during training."""
    pairs = []
    for image in images:
        h, w = image.shape[:2]
        size = min(crop, h - h % scale, w - w % scale)
        y, x = (h - size) // 2, (w - size) // 2
        hr = np.ascontiguousarray(image[y : y + size, x : x + size])
        pairs.append((bicubic_downscale(hr, scale), hr))
    return pairs
