"""An animated GIF whose later frame reaches past its logical screen: Pillow grows the canvas from that frame on,
so its frames came out of different sizes, and the output was cropped to the first frame's size as GIF, kept the
grown size as APNG and was refused as WebP. Every frame is now on the full canvas, in every format.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from conftest import noise_image as noise
from PIL import Image

from srgan_fast.cli.main import main
from srgan_fast.io.images import load_image

pytestmark = pytest.mark.native


def _sub_blocks(data: bytes, position: int) -> int:
    """Where the GIF data sub-blocks starting at ``position`` end (past their 0 terminator)."""
    while data[position]:
        position += 1 + data[position]
    return position + 1


def _frame(array: np.ndarray, x: int, y: int) -> bytes:
    """A graphic control extension (100 ms) and an image at (x, y) with its own colour table: Pillow's encoding
    of ``array`` alone, its image descriptor moved."""
    buffer = io.BytesIO()
    Image.fromarray(array).quantize(16).save(buffer, "GIF")
    data = buffer.getvalue()
    table_bits = data[10] & 7
    table = data[13:13 + 3 * 2 ** (table_bits + 1)] if data[10] & 0x80 else b""
    position = 13 + len(table)
    while data[position] == 0x21:  # Pillow's own extensions
        position = _sub_blocks(data, position + 2)
    pixels = data[position + 10:_sub_blocks(data, position + 11)]  # LZW minimum code size, then the data
    height, width = array.shape[:2]
    return (b"\x21\xf9\x04\x00" + struct.pack("<H", 10) + b"\x00\x00" + b"\x2c"
            + struct.pack("<HHHHB", x, y, width, height, 0x80 | table_bits) + table + pixels)


def growing_gif(first: np.ndarray, second: np.ndarray, offset: tuple[int, int]) -> bytes:
    """Two frames on a logical screen of the first's size; the second, at ``offset`` (x, y), reaches past it."""
    height, width = first.shape[:2]
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    return header + _frame(first, 0, 0) + _frame(second, *offset) + b"\x3b"


@pytest.fixture
def gif(tmp_path):
    path = tmp_path / "grows.gif"
    path.write_bytes(growing_gif(noise(20, 20, seed=1), noise(24, 24, seed=2), (10, 10)))
    return path


def test_every_frame_is_read_on_the_full_canvas(gif):
    with Image.open(gif) as image:
        first = np.asarray(image.convert("RGB"))
        image.seek(1)
        second, grown = np.asarray(image.convert("RGB")), image.size
    assert first.shape == (20, 20, 3) and grown == (34, 34)  # Pillow's own frames: two sizes

    frames = load_image(gif).frames
    assert [frame.shape for frame in frames] == [(34, 34, 4), (34, 34, 4)]
    # The first frame at the top left, the canvas it had not reached yet transparent, as a browser shows it.
    assert np.array_equal(frames[0][:20, :20, :3], first) and (frames[0][:20, :20, 3] == 255).all()
    assert (frames[0][20:, :, 3] == 0).all() and (frames[0][:, 20:, 3] == 0).all()
    assert np.array_equal(frames[1][..., :3], second) and (frames[1][..., 3] == 255).all()


def test_gif_apng_and_webp_outputs_have_one_size(gif, tiny_model_path, capsys):
    options = ["--model", tiny_model_path, "--backend", "native", "--device", "cpu"]
    sizes = {}
    for suffix in (".gif", ".png", ".webp"):
        out = gif.with_name(f"out{suffix}")
        assert main(["upscale", str(gif), "-o", str(out), *options]) == 0, capsys.readouterr().err
        with Image.open(out) as image:
            sizes[suffix] = []
            for index in range(image.n_frames):
                image.seek(index)
                sizes[suffix].append(image.size)
    assert sizes == {suffix: [(136, 136), (136, 136)] for suffix in (".gif", ".png", ".webp")}
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_frames_of_different_sizes_are_refused_by_every_writer(tmp_path, suffix):
    from srgan_fast.io.images import ImageFile, ImageFileError
    from srgan_fast.io.save import save_image

    animation = ImageFile([noise(8, 8), noise(12, 10)], "GIF", durations_ms=[100, 100], loop=0)
    with pytest.raises(ImageFileError) as refusal:
        save_image(tmp_path / f"a{suffix}", animation)
    assert str(refusal.value) == (f"{tmp_path / f'a{suffix}'}: frames of 2 sizes (10x12, 8x8); an animation's "
                                  "frames share one canvas size")
    assert list(tmp_path.iterdir()) == []
