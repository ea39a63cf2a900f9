"""Image files are never read as less than they are, and transparency never shows the upscaler's fill: an 8-bit
PNG whose data ends before its last row is refused (Pillow fills the rest with black), a 10/12-bit AVIF that only
Pillow's 8-bit decoder could read is refused, and alpha written to a format without it is laid over the
background colour. Every file is made here.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from srgan_fast.io import heif, png_files
from srgan_fast.io.images import ImageFile, ImageFileError, decode_image, load_image, read_image
from srgan_fast.io.save import save_image
from srgan_fast.tiler.channels import flatten_alpha


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_rows(width, height, colour_type, rows_present, depth=8) -> bytes:
    """A well-formed PNG (every chunk and CRC right, zlib stream complete) whose data holds only some rows."""
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + bytes(index % 256 for index in range(7, 7 + (width * samples * depth + 7) // 8))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    palette = chunk(b"PLTE", bytes(range(48))) if colour_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + palette
            + chunk(b"IDAT", zlib.compress(row * rows_present)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type", [0, 2, 3, 4, 6])
def test_an_8bit_png_with_missing_rows_is_refused_not_filled_with_black(colour_type):
    whole = png_with_rows(9, 6, colour_type, 6)
    assert decode_image(whole).frames[0].shape[:2] == (6, 9)
    with pytest.raises(ImageFileError) as error:
        decode_image(png_with_rows(9, 6, colour_type, 3), name="cut.png")
    assert str(error.value) == "cut.png: unreadable or truncated image (image data ends after 3 of 6 rows)"


def test_an_interlaced_png_is_checked_pass_by_pass():
    rows = np.random.default_rng(0).integers(0, 256, (7, 5 * 3), dtype=np.uint8)
    buffer = io.BytesIO()
    png.Writer(5, 7, greyscale=False, interlace=True).write(buffer, rows.tolist())
    whole = buffer.getvalue()
    assert np.array_equal(decode_image(whole).frames[0].reshape(7, 15), rows)
    # The same file with its image data cut short, the zlib stream ending cleanly.
    start = whole.index(b"IDAT") - 4
    length = struct.unpack(">I", whole[start:start + 4])[0]
    data = zlib.decompress(whole[start + 8:start + 8 + length])
    cut = whole[:start] + chunk(b"IDAT", zlib.compress(data[:len(data) // 2])) + chunk(b"IEND", b"")
    with pytest.raises(ImageFileError, match=rf"image data ends after {len(data) // 2} of {len(data)} bytes "
                                             r"\(interlaced\)"):
        decode_image(cut)


@pytest.mark.parametrize("mode, size", [("RGB", (33, 17)), ("L", (1, 1)), ("RGBA", (40, 3)), ("P", (7, 64)),
                                        ("1", (13, 5)), ("LA", (8, 8))])
def test_whole_pngs_of_every_kind_read_as_before(tmp_path, mode, size):
    rgb = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as image:
        expected = np.asarray(image.convert("RGBA" if "A" in mode else "L" if mode == "L" else "RGB"))
    assert np.array_equal(read_image(tmp_path / "x.png").reshape(expected.shape), expected)


def avif_claiming(bits: int) -> bytes:
    """An 8-bit AVIF written by Pillow, its av1C box made to say ``bits``: the header is all the check reads."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 60)).save(buffer, "AVIF")
    data = bytearray(buffer.getvalue())
    flags = data.index(b"av1C") + 6
    data[flags] |= 0x40 | (0x20 if bits == 12 else 0)
    return bytes(data)


@pytest.mark.skipif(heif.library("AVIF") != "Pillow", reason="the check is for Pillow's 8-bit AVIF decoder")
@pytest.mark.parametrize("bits", [10, 12])
def test_a_deep_avif_is_refused_where_only_pillow_reads_avif(tmp_path, bits):
    path = tmp_path / "deep.avif"
    path.write_bytes(avif_claiming(bits))
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    assert str(error.value) == (
        f"{path}: a {bits}-bit AVIF, which Pillow's AVIF decoder (the only one installed) would read at 8 bits; "
        f"install pillow-heif < 1.0 (pip install 'pillow-heif<1') to read its {bits} bits, or convert it to a "
        "16-bit PNG")


@pytest.mark.skipif(heif.library("AVIF") is None, reason="no AVIF library here")
def test_the_bit_depth_of_an_avif_is_read_from_its_header():
    assert heif.av1_bit_depth(io.BytesIO(avif_claiming(10))) == 10
    assert heif.av1_bit_depth(io.BytesIO(avif_claiming(12))) == 12
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "AVIF")
    assert heif.av1_bit_depth(buffer) == 8
    assert decode_image(buffer.getvalue()).frames[0].shape == (8, 8, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_flattening_lays_the_image_over_the_background_exactly(dtype):
    top = np.iinfo(dtype).max
    rgba = np.zeros((1, 4, 4), dtype)
    rgba[0, :, :3] = [top, 0, top // 5]
    rgba[0, :, 3] = [0, top, top // 2, top // 4]
    flat = flatten_alpha(rgba, (16, 128, 255)).astype(np.float64)
    background = np.array([16, 128, 255]) * (top / 255)
    alpha = rgba[0, :, 3:] / top
    expected = rgba[0, :, :3] * alpha + background * (1 - alpha)
    assert flat.dtype == np.float64 and np.abs(flat[0] - expected).max() <= 0.5 + 1e-9
    assert np.array_equal(flat[0, 0], background)  # fully transparent: the background, whatever the colour under


def half_transparent(height=16, width=16) -> np.ndarray:
    """Red on the left, transparent on the right with green under it (as the upscaler's fill might leave)."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[:, :, 1] = 255
    rgba[:, : width // 2] = [255, 0, 0, 255]
    return rgba


@pytest.mark.parametrize("suffix, tolerance", [(".bmp", 0), (".jpg", 8)])
def test_alpha_into_a_format_without_it_is_laid_over_the_background(tmp_path, suffix, tolerance):
    out = tmp_path / f"out{suffix}"
    notes = save_image(out, ImageFile([half_transparent()], "PNG"), background=(32, 32, 32), quality=95)
    assert notes == [f"{out}: {'BMP' if suffix == '.bmp' else 'JPEG'} has no alpha channel; transparent areas laid "
                     "over #202020"]
    pixels = read_image(out).astype(int)
    assert np.abs(pixels[:, 12:] - 32).max() <= tolerance  # the background, not the green under the transparency
    assert np.abs(pixels[:, :4] - [255, 0, 0]).max() <= tolerance


def test_jpeg_quality_is_passed_to_the_encoder(tmp_path):
    image = ImageFile([np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)], "PNG")
    save_image(tmp_path / "low.jpg", image, quality=20)
    save_image(tmp_path / "high.jpg", image, quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size / 2


VALID_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 40), height=st.integers(1, 40), colour_type=st.sampled_from(sorted(VALID_DEPTHS)),
       data=st.data())
def test_missing_rows_are_found_for_every_size_colour_type_and_depth(width, height, colour_type, data):
    depth = data.draw(st.sampled_from(VALID_DEPTHS[colour_type]))
    present = data.draw(st.integers(0, height))
    reason = png_files.missing_rows(io.BytesIO(png_with_rows(width, height, colour_type, present, depth)))
    assert reason == (None if present == height else f"image data ends after {present} of {height} rows")
