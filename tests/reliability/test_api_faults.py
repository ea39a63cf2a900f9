"""The API under faults: arrays too large for memory, the memory budget, bad weights files, PIL metadata."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import random_generator_weights
from srgan_fast import InputError, Upscaler, upscale
from srgan_fast.api import available_memory
from srgan_fast.weights import WeightsError, load_weights, save_weights, tensors_sha256

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=5)


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler(WEIGHTS, device="cpu")


def test_an_array_whose_output_cannot_fit_in_memory_is_refused_up_front(upscaler):
    available = available_memory()
    assert available is not None
    # The smallest square RGB uint8 image whose x4 output exceeds the memory there is (30000x30000 here:
    # 40 GiB of output); broadcast so that the input itself costs nothing.
    side = max(30_000, math.isqrt(available // 48) + 1)
    image = np.broadcast_to(np.uint8(7), (side, side, 3))
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"output of a .* needs [\d.]+ GiB, more than the [\d.]+ GiB of memory"):
        upscaler(image)
    assert time.perf_counter() - started < 5  # refused before any work, not after a failed allocation


@pytest.mark.slow
def test_memory_budget_sets_the_tiler_budget():
    image_hw = (300, 400)
    large = Upscaler(WEIGHTS, device="cpu", memory_budget=1 << 30)
    budget = large.backend.window_bytes(*image_hw) // 3  # room for windows, not for the whole image
    small = Upscaler(WEIGHTS, device="cpu", memory_budget=budget)
    assert small.memory_budget == budget
    assert small.plan(image_hw).num_windows > large.plan(image_hw).num_windows == 1
    image = np.random.default_rng(0).integers(0, 256, image_hw + (3,), dtype=np.uint8)
    # Smaller windows, same picture (seam-free tiling: up to float rounding).
    assert np.abs(small(image).astype(int) - large(image).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes, got -1"):
        Upscaler(WEIGHTS, device="cpu", memory_budget=-1)


def test_upscale_passes_the_memory_budget(tmp_path):
    path = tmp_path / "random.safetensors"
    save_weights(path, WEIGHTS.tensors, WEIGHTS.metadata)
    image = np.random.default_rng(4).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tight = upscale(image, model=str(path), device="cpu", memory_budget=8 << 20)
    assert np.abs(tight.astype(int) - Upscaler(str(path), device="cpu")(image).astype(int)).max() <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weights_with_nan_or_inf_are_refused_even_with_a_consistent_sha256(tmp_path, bad):
    from safetensors.numpy import save_file

    tensors = {k: v.copy() for k, v in WEIGHTS.tensors.items()}
    tensors["tail.weight"][0, 0, 4, 4] = bad
    metadata = dict(WEIGHTS.metadata, tensors_sha256=tensors_sha256(tensors))
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(WeightsError, match=r"bad\.safetensors: weights contain NaN or Inf \(in tail\.weight\)"):
        load_weights(path)


@pytest.mark.parametrize("num_blocks, channels, complaint", [
    (1_000_000, 8, "the block/conv count must be in 0..512, got 1000000"),
    (1, 10_000_000, "channels must be in 1..1024, got 10000000"),
    (-1, 8, "the block/conv count must be in 0..512, got -1"),
    (1, 0, "channels must be in 1..1024, got 0")])
def test_absurd_architecture_numbers_are_refused_before_allocating(tmp_path, num_blocks, channels, complaint):
    from safetensors.numpy import save_file

    metadata = dict(WEIGHTS.metadata, num_blocks=str(num_blocks), channels=str(channels))
    metadata.pop("architecture_params", None)
    path = tmp_path / "huge.safetensors"
    save_file(WEIGHTS.tensors, str(path), metadata=metadata)
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"huge\.safetensors: metadata does not declare a valid network \(srresnet: "
                       + complaint):
        load_weights(path)
    assert time.perf_counter() - started < 1


def test_pil_input_keeps_its_icc_profile_and_exif(upscaler):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "srgan_fast test camera"  # Make
    image.info["icc_profile"] = icc
    image.info["exif"] = exif.tobytes()
    out = upscaler(image)
    assert out.info["icc_profile"] == icc
    assert out.info["exif"] == exif.tobytes()


def test_big_endian_uint16_is_the_same_picture_as_little_endian(upscaler):
    image = np.random.default_rng(2).integers(0, 65536, (9, 10, 3), dtype=np.uint16)
    out = upscaler(image.astype(">u2"))
    assert out.dtype == np.uint16
    assert np.array_equal(out, upscaler(image))


def test_la_is_upscaled_and_lab_is_refused_with_a_reason(upscaler):
    la = Image.fromarray(np.random.default_rng(3).integers(0, 256, (5, 6, 2), dtype=np.uint8), "LA").convert("La")
    out = upscaler(la)
    assert (out.mode, out.size) == ("LA", (24, 20))
    lab = Image.new("LAB", (5, 6))
    with pytest.raises(InputError, match="unsupported PIL image mode 'LAB': CIELAB needs a colour transform"):
        upscaler(lab)


def test_big_endian_frames_go_through_upscale_batch(upscaler):
    frames = np.random.default_rng(7).integers(0, 65536, (2, 6, 5, 3), dtype=np.uint16)
    out = upscaler.upscale_batch(frames.astype(">u2"))
    assert out.dtype == np.uint16 and np.array_equal(out, upscaler.upscale_batch(frames))
