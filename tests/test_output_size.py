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
    ({"outscale": float("nan")}, r"outscale must be a number \(an int or float, NumPy's too; not a bool\), got nan"),
    ({"outscale": True}, r"outscale must be a number \(an int or float, NumPy's too; not a bool\), got True"),
    ({"width": True}, "width must be a positive int, got True"),
    ({"height": 2.0}, "height must be a positive int, got 2.0"),
    ({"size": (np.True_, 5)}, r"size must be \(height, width\) of positive ints, got \(np.True_, 5\)")])
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


@pytest.mark.parametrize("request_, expected_hw", [
    ({"outscale": np.float32(2.5)}, (25, 32)), ({"outscale": np.int64(3)}, (30, 39)),
    ({"width": np.int64(26)}, (20, 26)), ({"height": np.uint16(35)}, (35, 46)),
    ({"size": (np.int32(17), np.int64(50))}, (17, 50)), ({"size": np.array([17, 50])}, (17, 50))])
def test_numpy_scalars_are_numbers(upscaler, request_, expected_hw):
    assert upscaler(_image((10, 13, 3), np.uint8), **request_).shape == expected_hw + (3,)
    assert Upscaler(WEIGHTS, device="cpu", **request_).output_hw((10, 13)) == expected_hw


@pytest.mark.parametrize("request_, asked", [
    ({"width": 2_000_000}, "a 2000000x1666667 output (width=2000000)"),
    ({"outscale": 1e9}, "a 24000000000x20000000000 output (outscale=1e+09)"),
    ({"size": (10**6, 10**6)}, "a 1000000x1000000 output (size=(1000000, 1000000))")])
def test_an_output_too_large_for_memory_is_refused_before_the_network_runs(upscaler, monkeypatch, request_, asked):
    """It once ran the network and then failed in NumPy ("array is too big") or with a MemoryError naming only
    the x4 result ("output 22.5 KiB"): the size asked for is what is counted, and what fits is said."""
    import srgan_fast.api

    monkeypatch.setattr(srgan_fast.api, "available_memory", lambda: 64 << 20)
    monkeypatch.setattr(Upscaler, "_upscale_channels", lambda *args: pytest.fail("the network ran"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note on the scale before the refusal
        with pytest.raises(InputError) as refusal:
            upscaler(np.zeros((20, 24, 3), np.uint8), **request_)
    message = str(refusal.value)
    assert message.startswith(f"{asked} of a 24x20 uint8 RGB input needs ") and "\n" not in message
    # 64 MiB less the x4 result and the resize's work on it, at 3 bytes and 16 of float32 work per output pixel.
    assert message.endswith(", more than the 64.0 MiB of memory available; at most about 2057x1714 fits "
                            "(outscale 85.7)")


def test_the_largest_output_said_to_fit_is_made(upscaler, monkeypatch):
    import srgan_fast.api

    monkeypatch.setattr(srgan_fast.api, "available_memory", lambda: 64 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert upscaler(np.zeros((20, 24, 3), np.uint8), width=2057).shape == (1714, 2057, 3)
        with pytest.raises(InputError, match="at most about 2057x1714 fits"):
            upscaler(np.zeros((20, 24, 3), np.uint8), width=2080)
