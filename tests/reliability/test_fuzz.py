"""Fuzzing ``upscale`` over shapes, dtypes, strides, byte orders, values and PIL modes.

Every input either comes back correct or is refused with ``InputError``; nothing else may escape. "Correct"
is checked against the same picture handed over in the canonical layout (C-contiguous, native byte order),
so any stride or byte-order handling that changes a pixel shows up.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import random_generator_weights
from srgan_fast import InputError, Upscaler
from srgan_fast.backends import availability

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=11)
ACCEPTED = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}
DTYPES = ["u1", "<u2", ">u2", "<f4", ">f4", "f8", "f2", "i2", "i4", "?", "u4"]
LAYOUTS = ["contiguous", "fortran", "reversed", "strided", "transposed"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def upscaler():
    backend = "native" if availability()["native"] is None else "torch"
    # A small tile, so that larger fuzzed images take the tiled path too.
    return Upscaler(WEIGHTS, backend=backend, device="cpu", tile=12)


def _values(rng: np.random.Generator, shape, dtype: np.dtype, kind: str) -> np.ndarray:
    if dtype.kind == "f":
        values = rng.random(shape)
        if kind != "in range":
            values.flat[rng.integers(values.size)] = {"out of range": rng.choice([-0.5, 1.5]), "nan": np.nan}[kind]
        return values.astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 70000), shape, endpoint=True).astype(dtype)


def _lay_out(array: np.ndarray, layout: str) -> np.ndarray:
    """The same picture in another memory layout (the values seen through indexing stay the same)."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "reversed":  # negative strides
        return np.ascontiguousarray(array[::-1, ::-1])[::-1, ::-1]
    if layout == "strided":  # every other element of a bigger buffer
        big = np.zeros((2 * array.shape[0], 2 * array.shape[1]) + array.shape[2:], array.dtype)
        big[::2, ::2] = array
        return big[::2, ::2]
    if layout == "transposed":
        axes = (1, 0) + tuple(range(2, array.ndim))
        return np.ascontiguousarray(array.transpose(axes)).transpose(axes)
    return array


@SETTINGS
@given(height=st.integers(1, 30), width=st.integers(1, 30), channels=st.sampled_from([None, 1, 2, 3, 4, 5]),
       dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS),
       values=st.sampled_from(["in range", "out of range", "nan"]), seed=st.integers(0, 2**32 - 1))
def test_arrays_are_upscaled_correctly_or_refused(upscaler, height, width, channels, dtype, layout, values, seed):
    dtype = np.dtype(dtype)
    shape = (height, width) if channels is None else (height, width, channels)
    canonical = _values(np.random.default_rng(seed), shape, dtype, values)
    image = _lay_out(canonical.astype(dtype), layout)
    native = dtype.newbyteorder("=")
    acceptable = (native in ACCEPTED and channels in (None, 1, 3, 4)
                  and not (native.kind == "f" and values != "in range"))
    if not acceptable:
        with pytest.raises(InputError):
            upscaler(image)
        return
    out = upscaler(image)
    assert out.shape == (4 * height, 4 * width) + shape[2:]
    assert out.dtype == native
    expected = upscaler(np.ascontiguousarray(canonical, dtype=native))
    assert np.array_equal(out, expected)
    if native.kind == "f":
        assert 0.0 <= out.min() and out.max() <= 1.0


# Modes Pillow can make: what each comes back as (None: refused with InputError).
PIL_MODES = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "P": "RGB", "PA": "RGBA", "RGB": "RGB", "RGBA": "RGBA",
             "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "HSV": "RGB", "I;16": "I;16",
             "I;16B": "I;16", "I;16L": "I;16", "LAB": None, "I": None, "F": None}


def _pil_image(mode: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if mode.startswith("I;16"):
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16)).convert(mode)
    if mode in ("P", "PA"):
        return rgba.convert("RGB").quantize(16).convert(mode) if mode == "PA" else rgba.convert("RGB").quantize(16)
    if mode in ("LAB", "HSV", "YCbCr"):
        return Image.frombytes(mode, (width, height), rng.integers(0, 256, (height, width, 3), np.uint8).tobytes())
    if mode == "La":
        return rgba.convert("LA").convert("La")
    return rgba.convert(mode)


@SETTINGS
@given(mode=st.sampled_from(sorted(PIL_MODES)), width=st.integers(1, 20), height=st.integers(1, 20),
       seed=st.integers(0, 2**32 - 1))
def test_pil_modes_are_upscaled_or_refused(upscaler, mode, width, height, seed):
    image = _pil_image(mode, width, height, np.random.default_rng(seed))
    assert image.mode == mode
    expected_mode = PIL_MODES[mode]
    if expected_mode is None:
        with pytest.raises(InputError, match=repr(mode)):
            upscaler(image)
        return
    out = upscaler(image)
    assert isinstance(out, Image.Image)
    assert (out.size, out.mode) == ((4 * width, 4 * height), expected_mode)
