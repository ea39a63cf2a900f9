"""Any output size: outscale, size, width and height over dtypes and channels; exact shapes, alpha kept,
the resize equal to Pillow's Lanczos of the native result, refusal below 1, a note above the model's scale."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import random_generator_weights
from srgan_fast import InputError, Upscaler, upscale
from srgan_fast.tiler.output_size import OutputSize

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=9)
DTYPES = [np.uint8, np.uint16, np.float32]


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler(WEIGHTS, device="cpu")


def _image(shape, dtype, seed=0):
    values = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return values if dtype == np.float32 else (values * np.iinfo(dtype).max).round().astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("request_, expected_hw", [
    ({"outscale": 2.5}, (25, 32)), ({"outscale": 3}, (30, 39)), ({"size": (17, 50)}, (17, 50)),
    ({"width": 26}, (20, 26)), ({"height": 35}, (35, 46)), ({"outscale": 4}, (40, 52)), ({}, (40, 52))])
def test_output_shapes_are_exact_over_dtypes_and_channels(upscaler, dtype, channels, request_, expected_hw):
    shape = (10, 13) if channels is None else (10, 13, channels)
    out = upscaler(_image(shape, dtype), **request_)
    assert out.shape == expected_hw + shape[2:] and out.dtype == dtype
    if dtype == np.float32:
        assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_resize_is_lanczos_of_the_native_result_per_channel_alpha_alike(upscaler, dtype):
    image = _image((12, 9, 4), dtype, seed=1)
    native = upscaler(image).astype(np.float32)
    out = upscaler(image, size=(30, 20))
    for c in range(4):  # RGB and alpha: the same filter on the values in the dtype's range
        expected = np.asarray(Image.fromarray(native[:, :, c]).resize((20, 30), Image.Resampling.LANCZOS))
        if dtype != np.float32:
            expected = np.clip(np.rint(expected), 0, np.iinfo(dtype).max)
        assert np.allclose(out[:, :, c].astype(np.float32), np.clip(expected, 0, None if dtype != np.float32 else 1))


def test_outscale_equal_to_the_model_scale_skips_the_resize(upscaler):
    image = _image((7, 8, 3), np.uint8, seed=2)
    assert np.array_equal(upscaler(image, outscale=4), upscaler(image))
    assert np.array_equal(upscaler(image, size=(28, 32)), upscaler(image))


@pytest.mark.parametrize("request_", [{"outscale": 0.5}, {"size": (5, 100)}, {"width": 12}, {"height": 9}])
def test_below_one_is_refused_with_a_clear_line(upscaler, request_):
    with pytest.raises(InputError, match=r"output size \d+x\d+ is smaller than the 13x10 input .*at least 1"):
        upscaler(_image((10, 13, 3), np.uint8), **request_)


def test_above_the_model_scale_is_allowed_with_a_note(upscaler):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = upscaler(_image((6, 5, 3), np.uint8), outscale=6)
    assert out.shape == (36, 30, 3)
    assert [str(w.message) for w in caught] == [
        "output scale 6 exceeds the model's x4: the x4 result is enlarged by Lanczos beyond it (no more detail)"]


@pytest.mark.parametrize("bad, message", [
    ({"outscale": 2, "width": 10}, "give one of outscale, size, width or height, got outscale, width"),
    ({"size": (10,)}, r"size must be \(height, width\) of positive ints, got \(10,\)"),
    ({"width": 0}, "width must be a positive int, got 0"),
    ({"outscale": float("nan")}, "outscale must be a number, got nan")])
def test_malformed_requests_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        OutputSize(**bad)


def test_pil_images_and_the_module_function_take_the_options(upscaler, tmp_path):
    from srgan_fast.weights import save_weights

    pil = Image.fromarray(_image((8, 10, 4), np.uint8, seed=3), "RGBA")
    out = upscaler(pil, width=25)
    assert (out.mode, out.size) == ("RGBA", (25, 20))
    path = tmp_path / "w.safetensors"
    save_weights(path, WEIGHTS.tensors, WEIGHTS.metadata)
    assert upscale(_image((8, 10), np.uint16), model=str(path), device="cpu", outscale=1.5).shape == (12, 15)


def test_constructor_default_applies_to_batches(tmp_path):
    up = Upscaler(WEIGHTS, device="cpu", outscale=2)
    frames = np.stack([_image((6, 7, 3), np.uint8, seed=s) for s in range(3)])
    assert up.upscale_batch(frames).shape == (3, 12, 14, 3)
    assert up.output_hw((6, 7)) == (12, 14)
    assert up(frames[0], outscale=3).shape == (18, 21, 3)  # a call's own request wins
