"""PNG beyond what Pillow does: 16-bit colour through pypng (Pillow holds 8 bits per colour channel), and the
check that an 8-bit PNG's image data is whole.

Pillow decodes a PNG whose compressed data ends cleanly before the last row (a cut-short download that kept
its IEND, a buggy writer) and fills the missing rows with black, without a word. ``missing_rows`` inflates the
data once more, counting bytes without keeping them, and says what is missing; pypng stops as quietly, so the
16-bit reader counts its rows. Both raise ``ValueError``, which the image reader reports as a truncated file.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib

import numpy as np
import png

from srgan_fast.io.metadata import PngWriterWithChunks, png_metadata_chunks

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # samples per pixel of each colour type
# Adam7: (first row, first column, row step, column step) of each of the seven passes.
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
_INFLATE_STEP = 1 << 20  # decompressed bytes looked at per step: the count needs no copy of the image


def bit_depth(file) -> int:
    file.seek(24)  # IHDR's bit depth: after the 8-byte signature, chunk length and type, width and height
    return file.read(1)[0]


def _filtered_size(width: int, height: int, depth: int, samples: int) -> int:
    """Bytes of one image's filtered rows: a filter byte and the packed samples per row."""
    return height * (1 + (width * samples * depth + 7) // 8) if width and height else 0


def _expected_size(width: int, height: int, depth: int, samples: int, interlaced: bool) -> int:
    if not interlaced:
        return _filtered_size(width, height, depth, samples)
    return sum(_filtered_size((width - column + step_c - 1) // step_c, (height - row + step_r - 1) // step_r,
                              depth, samples) for row, column, step_r, step_c in _ADAM7)


def missing_rows(file) -> str | None:
    """Why the PNG in ``file`` holds less image data than its header promises, or None when it is whole.

    A file this cannot follow (a damaged chunk or zlib stream) is left to the decoder, which reports it.
    """
    file.seek(0)
    if file.read(8) != _SIGNATURE:
        return None
    inflater, inflated, header = zlib.decompressobj(), 0, None
    try:
        while not inflater.eof:
            chunk_header = file.read(8)
            if len(chunk_header) < 8:
                break  # the file ends without its IEND chunk
            length, kind = struct.unpack(">I4s", chunk_header)
            data = file.read(length)
            cut = len(data) < length  # the file ends inside this chunk
            file.seek(4, os.SEEK_CUR)  # the CRC, which the decoder checks
            if kind == b"IHDR" and len(data) >= 13:
                header = struct.unpack(">IIBBBBB", data[:13])
            elif kind == b"IDAT":
                while data:
                    inflated += len(inflater.decompress(data, _INFLATE_STEP))
                    data = inflater.unconsumed_tail
            if kind == b"IEND" or cut:
                break
        inflated += len(inflater.flush())
    except zlib.error:
        return None
    if header is None or header[3] not in _SAMPLES:
        return None
    width, height, depth, colour_type, _, _, interlace = header
    expected = _expected_size(width, height, depth, _SAMPLES[colour_type], interlace == 1)
    if inflated >= expected:
        return None
    if interlace == 1:
        return f"image data ends after {inflated} of {expected} bytes (interlaced)"
    return f"image data ends after {inflated // (expected // height)} of {height} rows"


def read_16bit(file) -> np.ndarray:
    """A 16-bit PNG as H×W×planes uint16 (planes 1 to 4, gray+alpha as 2)."""
    file.seek(0)
    width, height, rows, info = png.Reader(file=file).asDirect()
    array = np.empty((height, width * info["planes"]), dtype=np.uint16)  # filled row by row: no second copy
    count = 0
    for count, row in enumerate(rows, start=1):
        array[count - 1] = row
    if count != height:  # pypng stops quietly where the image data ends
        raise ValueError(f"image data ends after {count} of {height} rows")
    return array.reshape(height, width, info["planes"])


def write_16bit(target, array: np.ndarray, icc_profile: bytes | None, exif: bytes | None,
                compress_level: int | None = None) -> None:
    """An H×W×3 or H×W×4 uint16 array as a 16-bit PNG, to a path or a binary file object (zlib level
    ``compress_level``, default pypng's)."""
    height, width, planes = array.shape
    writer = PngWriterWithChunks(width, height, bitdepth=16, greyscale=False, alpha=planes == 4,
                                 extra_chunks=png_metadata_chunks(icc_profile, exif), compression=compress_level)
    with open(target, "wb") if isinstance(target, (str, os.PathLike)) else contextlib.nullcontext(target) as file:
        # Packed big-endian rows, one at a time: pypng's own per-value packing is slow on large images.
        writer.write_packed(file, (row.astype(">u2").tobytes() for row in array.reshape(height, width * planes)))
