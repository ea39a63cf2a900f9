"""The training data pipeline: crops, ranges, determinism, the ×4 bicubic kernel, bad folders and files."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from srgan_fast.degradation import bicubic_downscale
from training.data import (RandomCropPairs, list_images, load_rgb_images, split_train_val, training_loader,
                           validation_pairs)


def _write_images(folder, count=4, size=(70, 90), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = (rng.random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img_{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def _keys_cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with parameter a."""
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _resample_axis(image: np.ndarray, out_size: int, axis: int, a: float, antialias: bool) -> np.ndarray:
    """Separable resampling along one axis, written from the definition: output sample i sits at input coordinate
    (i + 0.5) * scale; when shrinking with antialiasing the kernel is stretched by the scale; taps outside the image
    are dropped and the remaining weights renormalised; the result is rounded to uint8."""
    in_size = image.shape[axis]
    scale = in_size / out_size
    stretch = max(scale, 1.0) if antialias else 1.0
    moved = np.moveaxis(image.astype(np.float64), axis, 0)
    out = np.empty((out_size, *moved.shape[1:]))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - 2 * stretch + 0.5), 0), min(int(center + 2 * stretch + 0.5), in_size)
        taps = np.arange(lo, hi)
        weights = _keys_cubic((taps + 0.5 - center) / stretch, a)
        out[i] = np.tensordot(weights / weights.sum(), moved[lo:hi], axes=1)
    return np.moveaxis(np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8), 0, axis)


def _reference_downscale(image: np.ndarray, factor: int, a: float = -0.5, antialias: bool = True) -> np.ndarray:
    h, w = image.shape[:2]
    horizontal = _resample_axis(image, w // factor, 1, a, antialias)  # Pillow resamples rows first
    return _resample_axis(horizontal, h // factor, 0, a, antialias)


def test_bicubic_downscale_is_antialiased_keys_cubic_a_minus_half():
    image = (np.random.default_rng(1).random((64, 48, 3)) * 255).astype(np.uint8)
    ours = bicubic_downscale(image, 4).astype(int)

    def mismatch(reference):
        diff = np.abs(ours - reference.astype(int))
        return diff.max(), np.mean(diff > 0)

    max_diff, fraction = mismatch(_reference_downscale(image, 4))
    # Pillow uses 22-bit fixed-point weights; only a rounding tie can differ, by one level.
    assert max_diff <= 1 and fraction < 0.02, (max_diff, fraction)
    # The comparison tells kernels apart: a = -0.75 (OpenCV's) or no antialiasing miss by far more.
    for other in (_reference_downscale(image, 4, a=-0.75), _reference_downscale(image, 4, antialias=False)):
        assert mismatch(other)[1] > 0.3


def test_crop_pairs_shapes_ranges_and_lr_is_the_bicubic_of_hr(tmp_path):
    images, _ = load_rgb_images(list_images([_write_images(tmp_path / "d")]), min_size=32)
    dataset = RandomCropPairs(images, crop=32, seed=3)
    for index in range(5):
        lr, hr = dataset[index]
        assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
        assert lr.dtype == hr.dtype == torch.float32
        assert 0.0 <= float(lr.min()) and float(lr.max()) <= 1.0 and 0.0 <= float(hr.min()) and float(hr.max()) <= 1.0
        hr_uint8 = (hr.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        expected_lr = bicubic_downscale(hr_uint8, 4)
        np.testing.assert_array_equal((lr.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8), expected_lr)


def _symmetries(square: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(flipped, k) for flipped in (square, square[:, ::-1]) for k in range(4)]


@settings(max_examples=40, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), crop_quarters=st.integers(1, 2), index=st.integers(0, 10**9))
@pytest.mark.slow
def test_every_hr_crop_is_a_window_of_an_image_under_one_of_the_8_symmetries(h, w, crop_quarters, index):
    crop = 4 * crop_quarters
    rng = np.random.default_rng(index)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (w, h, 3), dtype=np.uint8)]
    hr = RandomCropPairs(images, crop=crop, seed=5).hr_crop(index)
    assert hr.shape == (crop, crop, 3)
    windows = [image[y : y + crop, x : x + crop] for image in images
               for y in range(image.shape[0] - crop + 1) for x in range(image.shape[1] - crop + 1)]
    assert any(np.array_equal(hr, s) for window in windows for s in _symmetries(window))


def test_batches_are_the_same_for_any_worker_count_and_start_step(tmp_path):
    images, _ = load_rgb_images(list_images([_write_images(tmp_path / "d")]), min_size=32)
    dataset = RandomCropPairs(images, crop=32, seed=7)
    serial = [b for b in training_loader(dataset, 3, 0, 4, workers=0)]
    parallel = [b for b in training_loader(dataset, 3, 0, 4, workers=2)]
    resumed = [b for b in training_loader(dataset, 3, 2, 4, workers=1)]
    assert len(serial) == len(parallel) == 4 and len(resumed) == 2
    for a, b in zip(serial, parallel):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for a, b in zip(serial[2:], resumed):
        assert torch.equal(a[1], b[1])
    other_seed = next(iter(training_loader(RandomCropPairs(images, crop=32, seed=8), 3, 0, 1, workers=0)))
    assert not torch.equal(other_seed[1], serial[0][1])


def test_ctrl_c_in_a_worker_does_not_break_the_loader(tmp_path):
    images, _ = load_rgb_images(list_images([_write_images(tmp_path / "d")]), min_size=32)
    loader = training_loader(RandomCropPairs(images, crop=32, seed=0), 2, 0, 8, workers=1)
    batches = iter(loader)
    first = next(batches)
    os.kill(batches._workers[0].pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the worker
    assert len([first, *batches]) == 8


def test_split_holds_aside_every_nth_image_and_validation_pairs_are_fixed(tmp_path):
    files = list_images([_write_images(tmp_path / "d", count=7)])
    train, val = split_train_val(files, 3)
    assert val == [files[0], files[3], files[6]] and len(train) == 4 and not set(train) & set(val)
    images, _ = load_rgb_images(val, min_size=16)
    pairs = validation_pairs(images, crop=40)
    assert [(lr.shape, hr.shape) for lr, hr in pairs] == [((10, 10, 3), (40, 40, 3))] * 3


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images \(.*\.png.*\) found in .*empty"):
        list_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="training data folder not found: .*nowhere"):
        list_images([tmp_path / "nowhere"])


def test_unreadable_and_small_images_are_skipped_and_counted(tmp_path):
    folder = _write_images(tmp_path / "d", count=2)
    (folder / "broken.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    with pytest.warns(UserWarning) as caught:
        images, skipped = load_rgb_images(list_images([folder]), min_size=32)
    assert len(images) == 2 and sorted(p.name for p in skipped) == ["broken.png", "tiny.png"]
    messages = " ".join(str(w.message) for w in caught)
    assert "skipping unreadable image" in messages and "broken.png" in messages and "smaller than 32px" in messages
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 images could be used"):
        load_rgb_images([folder / "broken.png"], min_size=32)
