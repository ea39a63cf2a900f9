"""upscale()/Upscaler: every accepted input type round-trips, alpha without fringes, bad input explained."""
import numpy as np
import pytest
from PIL import Image

from conftest import random_generator_weights
from srgan_fast import InputError, Upscaler, upscale
from srgan_fast.tiler.channels import fill_transparent

WEIGHTS = random_generator_weights(num_blocks=1, channels=8)


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler(WEIGHTS, backend="torch", device="cpu")


def _random_image(shape, dtype, seed=0):
    values = np.random.default_rng(seed).random(shape, dtype=np.float32)
    if dtype == np.float32:
        return values
    return (values * np.iinfo(dtype).max).round().astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(9, 13), (9, 13, 1), (9, 13, 3), (9, 13, 4)])
def test_every_dtype_and_channel_count_round_trips(upscaler, shape, dtype):
    out = upscaler(_random_image(shape, dtype))
    assert out.shape == (36, 52) + shape[2:]
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtypes_agree_on_the_same_picture(upscaler, dtype):
    """The dtype sets the range: the same picture at three depths gives the same picture back."""
    image = _random_image((12, 10, 3), np.uint8, seed=5)
    scale = {np.uint8: 1, np.uint16: 257, np.float32: 1 / 255}[dtype]  # 257 maps 0..255 onto 0..65535
    as_dtype = (image.astype(np.float64) * scale).astype(dtype)
    out = upscaler(as_dtype).astype(np.float64) / {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]
    reference = upscaler(image).astype(np.float64) / 255
    assert np.abs(out - reference).max() <= 1 / 255 + 1e-6


def test_gray_goes_through_the_model_as_rgb(upscaler):
    gray = _random_image((10, 10), np.uint8, seed=2)
    rgb_out = upscaler(np.repeat(gray[:, :, None], 3, axis=2)).astype(np.float32)
    expected = rgb_out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert np.abs(upscaler(gray).astype(np.float32) - expected).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "P", "LA"])
def test_pil_images_come_back_as_pil(upscaler, mode):
    image = Image.fromarray(_random_image((8, 11, 3), np.uint8)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(_random_image((8, 11), np.uint16))
    out = upscaler(image)
    assert isinstance(out, Image.Image)
    assert out.size == (44, 32)
    assert out.mode == {"P": "RGB"}.get(mode, mode)


def _disc_on_black(size=48):
    """An opaque red disc on a fully transparent background whose hidden colour is black."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (230, 40, 30, 255)
    return rgba


def test_rgba_edges_have_no_dark_fringe():
    weights = random_generator_weights(num_blocks=1, channels=8, seed=4)
    upscaler = Upscaler(weights, backend="torch", device="cpu")
    rgba = _disc_on_black()
    out = upscaler(rgba)
    opaque_colour = upscaler(np.broadcast_to(np.array([230, 40, 30], np.uint8), rgba[:, :, :3].shape).copy())
    visible = out[:, :, 3] > 64
    edge = visible & (out[:, :, 3] < 250)
    assert edge.sum() > 20
    # Visible edge pixels take the disc's colour as the network renders a uniform field of it, not black.
    fringe = np.abs(out[edge, :3].astype(int) - opaque_colour[edge].astype(int)).max()
    naive = upscaler(rgba[:, :, :3])  # the same RGB without the transparent fill: black bleeds in
    naive_fringe = np.abs(naive[edge].astype(int) - opaque_colour[edge].astype(int)).max()
    assert fringe <= 3 < naive_fringe


def test_fill_transparent_keeps_visible_pixels():
    rgba = _disc_on_black()
    filled = fill_transparent(rgba[:, :, :3], rgba[:, :, 3])
    assert (filled[rgba[:, :, 3] == 0, 0] > 100).all()  # the hidden black became the nearby red
    rgba[5, 5] = (10, 200, 10, 1)  # barely visible: kept as is
    filled = fill_transparent(rgba[:, :, :3], rgba[:, :, 3])
    visible = rgba[:, :, 3] > 0
    assert np.array_equal(filled[visible], rgba[visible, :3])


@pytest.mark.parametrize("image,message", [
    (np.zeros((4, 4, 2), np.uint8), r"H×W or H×W×C array with C in \{1, 3, 4\}, got shape \(4, 4, 2\)"),
    (np.zeros((2, 4, 4, 3), np.uint8), r"got shape \(2, 4, 4, 3\)"),
    (np.zeros((4,), np.uint8), r"got shape \(4,\)"),
    (np.zeros((4, 4, 3), np.float64), r"expected dtype uint8, uint16 or float32, got float64 \(convert with"),
    (np.zeros((4, 4, 3), np.int32), r"expected dtype uint8, uint16 or float32, got int32"),
    (np.zeros((0, 4, 3), np.uint8), r"expected a non-empty image, got shape \(0, 4, 3\)"),
    (np.full((4, 4, 3), np.nan, np.float32), r"float32 image contains NaN or Inf \(48 values\)"),
    (np.full((4, 4, 3), 1.5, np.float32), r"float32 image must be in \[0, 1\], got values in \[1.5, 1.5\]"),
    ([[1, 2], [3, 4]], r"expected a NumPy array or PIL image, got list"),
])
def test_bad_input_is_explained(upscaler, image, message):
    with pytest.raises(InputError, match=message):
        upscaler(image)


def test_upscale_function_uses_a_users_weights_file(tmp_path):
    from srgan_fast.weights import save_weights

    path = tmp_path / "mine.safetensors"
    save_weights(path, WEIGHTS.tensors, WEIGHTS.metadata)
    image = _random_image((7, 5, 3), np.uint8)
    out = upscale(image, model=str(path), backend="torch", device="cpu")
    assert np.array_equal(out, Upscaler(WEIGHTS, backend="torch", device="cpu")(image))


def test_unknown_backend_and_precision_are_explained():
    with pytest.raises(ValueError, match="unknown backend 'fast': expected 'auto' or one of"):
        Upscaler(WEIGHTS, backend="fast", device="cpu")
    with pytest.raises(ValueError, match="supports precision fp32, bf16; got 'fp16'"):
        Upscaler(WEIGHTS, backend="torch", device="cpu", precision="fp16")


def test_auto_falls_back_past_a_backend_that_refuses_to_start(monkeypatch):
    from srgan_fast.backends import base

    class Refusing(base.Backend):
        name = "refusing"
        auto_priority = {"cpu": 1000}

        @classmethod
        def unavailable_reason(cls):
            return None

        def __init__(self, *args, **kwargs):
            raise base.BackendUnavailable("self-check failed")

        def run(self, tiles):
            raise AssertionError("never constructed")

    monkeypatch.setitem(base._REGISTRY, "refusing", Refusing)
    assert base.ranked_backends("cpu")[0] == "refusing"
    upscaler = Upscaler(WEIGHTS, device="cpu")
    assert upscaler.backend_name != "refusing"
    with pytest.raises(base.BackendUnavailable, match="self-check failed"):
        Upscaler(WEIGHTS, backend="refusing", device="cpu")


@pytest.mark.native
def test_upscale_takes_calibration_images_as_the_upscaler_does(tmp_path, monkeypatch):
    """The README lists calibration_images among upscale()'s options; it raised TypeError (only Upscaler took it)."""
    from srgan_fast.weights import save_weights

    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "mine.safetensors"
    save_weights(model, WEIGHTS.tensors, WEIGHTS.metadata)
    folder = tmp_path / "samples"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray((_random_image((40, 56, 3), np.uint8, seed=seed))).save(folder / f"{seed}.png")
    image = _random_image((12, 10, 3), np.uint8, seed=3)
    options = dict(backend="native", device="cpu", precision="int8", calibration_images=str(folder))
    out = upscale(image, model=str(model), **options)
    assert np.array_equal(out, Upscaler(str(model), **options)(image))
    with pytest.raises(ValueError, match="calibration_images is for precision 'int8', got precision '(fp32|bf16)'"):
        upscale(image, model=str(model), backend="native", device="cpu", calibration_images=str(folder))


def test_numpy_integers_are_accepted_as_byte_counts_and_batch_sizes():
    up = Upscaler(WEIGHTS, backend="torch", device="cpu", memory_budget=np.int64(64 << 20), batch_size=np.int32(2))
    assert (up.memory_budget, up.batch_size) == (64 << 20, 2)
    assert type(up.memory_budget) is int
    assert Upscaler(WEIGHTS, device="cpu", memory_budget="64M").memory_budget == 64 << 20
    for bad, message in [(True, "memory_budget must be a positive number of bytes, got True (an int, NumPy's too, "
                                "or a size such as '2G' or '512M')"),
                         (np.int64(0), "memory_budget must be a positive number of bytes, got np.int64(0)")]:
        with pytest.raises(ValueError) as refusal:
            Upscaler(WEIGHTS, device="cpu", memory_budget=bad)
        assert str(refusal.value).startswith(message)
    with pytest.raises(ValueError, match="^batch_size must be a positive int, got 0$"):
        Upscaler(WEIGHTS, device="cpu", batch_size=0)


@pytest.mark.parametrize("mode, comes_back_as", [
    ("1", "L"), ("L", "L"), ("LA", "LA"), ("La", "LA"), ("P", "RGB"), ("PA", "RGBA"), ("RGBa", "RGBA"),
    ("RGBX", "RGB"), ("CMYK", "RGB"), ("YCbCr", "RGB"), ("HSV", "RGB"), ("I;16B", "I;16"), ("I;16L", "I;16")])
def test_pil_modes_come_back_as_the_readme_says(upscaler, mode, comes_back_as):
    assert upscaler(Image.new(mode, (5, 4))).mode == comes_back_as


def test_a_big_endian_array_comes_back_in_native_byte_order(upscaler):
    image = _random_image((6, 5, 3), np.uint16, seed=4)
    out = upscaler(image.astype(">u2"))
    assert out.dtype == np.dtype("=u2") and np.array_equal(out, upscaler(image))
