"""HEIF and AVIF through imageio: 8-bit and 10/12-bit round trips (lossy, so within a PSNR bound), the full-range
scaling of 10/12-bit samples, alpha, gray, ICC and EXIF carried, orientation applied once, and the one-line
messages where a library is missing. Needs pillow-heif (the ``heif`` extra) for HEIF; AVIF runs through
whichever library handles it here (Pillow's own plugin at 8 bits, or pillow-heif < 1.0 at 10/12).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from srgan_fast.io import heif
from srgan_fast.io.images import READ_SUFFIXES, WRITE_FORMATS, ImageFile, ImageFileError, load_image
from srgan_fast.io.metadata import upright
from srgan_fast.io.save import save_image

pillow_heif = pytest.importorskip("pillow_heif",
                                  reason="pillow-heif is not installed (pip install 'srgan_fast[heif]')")

ICC_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ORIENTATION, MAKE = ExifTags.Base.Orientation, ExifTags.Base.Make
HEIC = pytest.param(".heic", id="heic")
AVIF = pytest.param(".avif", id="avif", marks=pytest.mark.skipif(
    heif.library("AVIF", writing=True) is None, reason="no AVIF library here (Pillow >= 11.3 has one)"))
DEEP_AVIF = pytest.param(".avif", id="avif", marks=pytest.mark.skipif(
    not heif.holds_deep("AVIF"), reason="AVIF is 8-bit here (Pillow's plugin); pillow-heif < 1.0 writes 10/12 bits"))


def _smooth(shape, dtype=np.uint8):
    """A smooth H×W×C picture in mild colours, as photos have (saturated detail is what 4:2:0 HEIC loses), over
    the dtype's whole range, white in one corner."""
    height, width, channels = shape
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    luma = 0.5 + 0.35 * np.sin(4.0 * x + 5.0 * y)
    picture = np.stack([luma + 0.1 * np.sin(3.0 * (k + 1) * x - 2.0 * y + k) for k in range(channels)], axis=2)
    picture[: height // 4, : width // 4] = 1.0
    return np.round(np.clip(picture, 0, 1) * np.iinfo(dtype).max).astype(dtype)


def _psnr(reference, result):
    peak = float(np.iinfo(reference.dtype).max)
    error = np.mean((reference.astype(np.float64) - result.astype(np.float64)) ** 2)
    return 10 * np.log10(peak ** 2 / max(error, 1e-12))


def _on_grid(values, bits):
    """Whether 16-bit values are exactly round(v * 65535 / (2^bits - 1)) for some bits-wide v."""
    top = (1 << bits) - 1
    coded = np.round(values.astype(np.float64) * top / 65535)
    return np.array_equal(values, np.round(coded * 65535 / top).astype(np.uint16))


def _exif(**tags) -> Image.Exif:
    exif = Image.Exif()
    for name, value in tags.items():
        exif[getattr(ExifTags.Base, name)] = value
    return exif


def test_the_heif_suffixes_are_listed_where_pillow_heif_is_installed():
    assert {".heic", ".heif"} <= READ_SUFFIXES and WRITE_FORMATS[".heic"] == WRITE_FORMATS[".heif"] == "HEIF"


def test_the_suffix_lists_leave_out_what_nothing_here_handles(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setattr("srgan_fast.io.heif._pillow_avif", lambda: False)
    assert heif.suffixes() == {}


@pytest.mark.parametrize("suffix", [HEIC, AVIF])
@pytest.mark.parametrize("shape", [(48, 64, 3), (45, 61, 3), (40, 56, 1)], ids=["rgb", "odd", "gray"])
def test_an_8_bit_image_round_trips_within_a_psnr_bound(tmp_path, suffix, shape):
    source = _smooth(shape)
    path = tmp_path / f"a{suffix}"
    assert save_image(path, ImageFile([source], "PNG")) == []
    image = load_image(path)
    frame = image.frames[0]
    assert image.format == heif.SUFFIXES[suffix] and image.bit_depth is None
    assert frame.dtype == np.uint8 and frame.shape == shape
    assert _psnr(source, frame) > 35


@pytest.mark.parametrize("suffix", [HEIC, DEEP_AVIF])
def test_a_16_bit_image_is_written_at_10_bits_and_read_back_over_the_full_16_bit_range(tmp_path, suffix):
    source = _smooth((64, 96, 3), np.uint16)
    path = tmp_path / f"deep{suffix}"
    assert save_image(path, ImageFile([source], "PNG")) == [
        f"{path}: writing this 16-bit image as 10-bit {heif.SUFFIXES[suffix]} (.png or .tif keep 16 bits)"]
    assert pillow_heif.open_heif(path, convert_hdr_to_8bit=False).info["bit_depth"] == 10
    image = load_image(path)
    frame = image.frames[0]
    assert frame.dtype == np.uint16 and frame.shape == source.shape and image.bit_depth == 10
    assert len(np.unique(frame)) > 256 and np.any(frame % 256)  # no 8-bit step on the way
    assert _on_grid(frame, 10) and frame.max() == 65535  # scaled, not shifted: 10-bit white is 16-bit white
    assert _psnr(source, frame) > 35


@pytest.mark.parametrize("suffix", [HEIC, DEEP_AVIF])
def test_a_12_bit_source_is_written_back_at_12_bits(tmp_path, suffix):
    source = _smooth((64, 96, 3), np.uint16)
    twelve, again = tmp_path / f"twelve{suffix}", tmp_path / f"again{suffix}"
    assert save_image(twelve, ImageFile([source], "HEIF", bit_depth=12)) == []
    loaded = load_image(twelve)
    assert loaded.bit_depth == 12 and _on_grid(loaded.frames[0], 12) and len(np.unique(loaded.frames[0])) > 1024
    assert save_image(again, loaded) == []
    assert pillow_heif.open_heif(again, convert_hdr_to_8bit=False).info["bit_depth"] == 12
    assert load_image(again).bit_depth == 12


def test_a_10_bit_source_is_written_back_at_10_bits_without_a_warning(tmp_path):
    path = tmp_path / "ten.heic"
    assert save_image(path, ImageFile([_smooth((32, 32, 3), np.uint16)], "HEIF", bit_depth=10)) == []
    assert load_image(path).bit_depth == 10


def test_10_bit_samples_read_as_round_v_times_65535_over_1023(tmp_path):
    # Lossless (identity matrix, 4:4:4), so that the decoded samples are exactly the coded ones.
    coded = np.tile(np.arange(1024, dtype=np.uint16).reshape(32, 32)[:, :, None], (1, 1, 3))
    path = tmp_path / "exact.heic"
    pillow_heif.from_bytes("RGB;10", (32, 32), coded.tobytes()).save(
        path, quality=-1, chroma="444", matrix_coefficients=0)
    expected = np.round(coded.astype(np.float64) * 65535 / 1023).astype(np.uint16)
    np.testing.assert_array_equal(load_image(path).frames[0], expected)


@pytest.mark.parametrize("suffix", [HEIC, AVIF])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_alpha_is_kept(tmp_path, suffix, dtype):
    source = _smooth((40, 48, 4), dtype)
    path = tmp_path / f"alpha{suffix}"
    save_image(path, ImageFile([source], "PNG"))
    frame = load_image(path).frames[0]
    deep = dtype == np.uint16 and heif.holds_deep(heif.SUFFIXES[suffix])
    assert frame.shape == source.shape and frame.dtype == (np.uint16 if deep else np.uint8)
    expected = source if frame.dtype == source.dtype else np.round(source / 257).astype(np.uint8)
    assert _psnr(expected[:, :, 3], frame[:, :, 3]) > 35


@pytest.mark.parametrize("suffix", [HEIC, AVIF])
def test_the_icc_profile_and_exif_are_carried(tmp_path, suffix):
    path = tmp_path / f"tagged{suffix}"
    exif = _exif(Make="Camera").tobytes()
    assert save_image(path, ImageFile([_smooth((32, 40, 3))], "JPEG", ICC_PROFILE, exif)) == []
    image = load_image(path)
    carried = Image.Exif()
    carried.load(image.exif)
    assert image.icc_profile == ICC_PROFILE and carried[MAKE] == "Camera" and ORIENTATION not in carried


def _write_rotated(path, source, orientation):
    """A file whose pixels are stored sideways with its orientation in the container (irot/imir), as cameras
    write them: pillow-heif puts the EXIF orientation in irot/imir and keeps it in the EXIF too; Pillow's AVIF
    plugin moves it from the EXIF into irot/imir."""
    fmt = heif.SUFFIXES[path.suffix]
    exif = _exif(Orientation=orientation, Make="Camera").tobytes()
    if heif.library(fmt, writing=True) == "Pillow":
        Image.fromarray(source).save(path, format="AVIF", quality=90, exif=exif)
    else:
        pillow_heif.from_bytes("RGB", (source.shape[1], source.shape[0]), source.tobytes()).save(
            path, format=fmt, quality=90, exif=exif)


@pytest.mark.parametrize("suffix", [HEIC, AVIF])
@pytest.mark.parametrize("orientation", [6, 3])
def test_the_orientation_is_applied_once(tmp_path, suffix, orientation):
    source = np.full((32, 48, 3), 30, np.uint8)
    source[:8, :12] = 230  # a bright block that tells where the top-left went
    path = tmp_path / f"rotated{suffix}"
    _write_rotated(path, source, orientation)
    if b"irot" not in path.read_bytes():
        pytest.skip(f"pillow-heif {pillow_heif.__version__} keeps the orientation in the EXIF alone for AVIF, "
                    "which HEIF readers leave unapplied (irot/imir is what applies)")
    image = load_image(path)
    carried = Image.Exif()
    carried.load(image.exif)
    assert image.frames[0].shape == upright(source, orientation).shape
    assert _psnr(upright(source, orientation), image.frames[0]) > 30
    assert ORIENTATION not in carried and carried[MAKE] == "Camera"


def test_a_truncated_heic_is_an_image_file_error_naming_it(tmp_path):
    whole = tmp_path / "whole.heic"
    save_image(whole, ImageFile([_smooth((32, 32, 3))], "PNG"))
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageFileError, match=r"cut.heic: unreadable or truncated image \(") as error:
        load_image(cut)
    assert "\n" not in str(error.value)


def test_a_heic_above_max_pixels_is_refused_naming_the_limit(tmp_path):
    path = tmp_path / "big.heic"
    save_image(path, ImageFile([_smooth((32, 40, 3))], "PNG"))
    with pytest.raises(ImageFileError, match=r"big.heic: 40x32 = 1280 pixels exceeds the limit of 1000"):
        load_image(path, max_pixels=1000)


def test_an_animation_is_refused_for_heic_with_the_frame_count(tmp_path):
    frames = [_smooth((16, 16, 3))] * 2
    with pytest.raises(ImageFileError, match=r"anim.heic: the source has 2 frames and HEIF holds one"):
        save_image(tmp_path / "anim.heic", ImageFile(frames, "GIF", durations_ms=[100, 100]))


@pytest.mark.skipif(heif.library("AVIF", writing=True) != "Pillow", reason="AVIF goes through pillow-heif here")
def test_pillow_avif_writes_8_bits_and_says_so(tmp_path):
    path = tmp_path / "eight.avif"
    notes = save_image(path, ImageFile([_smooth((32, 32, 3), np.uint16)], "PNG"))
    assert notes == [(f"{path}: Pillow's AVIF encoder writes 8 bits; writing 8 bits of this 16-bit image "
                      "(.heic, .png or .tif keep more)")]
    assert load_image(path).frames[0].dtype == np.uint8


def test_without_pillow_heif_heif_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    existing = tmp_path / "photo.heic"
    save_image(existing, ImageFile([_smooth((16, 16, 3))], "PNG"))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` now raises ImportError
    hint = r"HEIF needs pillow-heif: pip install 'srgan_fast\[heif\]'$"
    with pytest.raises(ImageFileError, match=rf"^{tmp_path / 'out.heic'}: {hint}"):
        save_image(tmp_path / "out.heic", ImageFile([_smooth((16, 16, 3))], "PNG"))
    with pytest.raises(ImageFileError, match=rf"^{existing}: {hint}"):
        load_image(existing)


def test_without_any_avif_library_avif_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setattr("srgan_fast.io.heif._pillow_avif", lambda: False)
    with pytest.raises(ImageFileError, match=r"out.avif: AVIF needs Pillow >= 11.3 built with AVIF "
                                             r"\(pip install -U Pillow\) or pillow-heif < 1.0$"):
        save_image(tmp_path / "out.avif", ImageFile([_smooth((16, 16, 3))], "PNG"))


def test_a_pillow_heif_without_an_hevc_encoder_reads_heif_but_says_why_it_cannot_write_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pillow_heif, "libheif_info", lambda: {"HEIF": "", "AVIF": ""})
    with pytest.raises(ImageFileError, match=r"out.heic: writing HEIF needs an HEVC encoder"):
        save_image(tmp_path / "out.heic", ImageFile([_smooth((16, 16, 3))], "PNG"))
