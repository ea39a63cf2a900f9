"""What an image file carries beside its pixels, for imageio: EXIF orientation, the EXIF and ICC profile worth
carrying into the output, the PNG chunks that hold them, and Pillow's own decompression-bomb limit.
"""
from __future__ import annotations

import contextlib
import threading
import zlib
from typing import Iterator

import numpy as np
import png
from PIL import ExifTags, Image

# EXIF orientation -> the view of an H×W×C array that shows it upright; the same transposes as
# PIL.ImageOps.exif_transpose (2 flips left-right, 6 is Pillow's ROTATE_270 i.e. 90° clockwise, ...).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """An H×W×C array as it is meant to be seen, given its EXIF orientation (1..8; anything else is upright)."""
    view = _UPRIGHT.get(orientation)
    return array if view is None else np.ascontiguousarray(view(array))


# Tags that describe how the source stores its pixels (a TIFF's IFD0 is its EXIF): wrong for any output, and a
# TIFF writer would put the old width and strips over the new ones. XMP and the ICC profile go too: XMP may
# repeat the orientation, and the profile travels on its own.
_SOURCE_LAYOUT_TAGS = [getattr(ExifTags.Base, name) for name in (
    "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
    "PhotometricInterpretation", "FillOrder", "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
    "PlanarConfiguration", "Predictor", "ColorMap", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts",
    "SubIFDs", "ExtraSamples", "SampleFormat", "JPEGTables", "JpegIFOffset", "JpegIFByteCount", "YCbCrSubSampling",
    "ReferenceBlackWhite", "XMLPacket", "InterColorProfile")]


def orientation_and_carried_exif(exif: Image.Exif) -> tuple[int, bytes | None]:
    """The EXIF orientation, and the EXIF to write beside the upscaled pixels (None when nothing is left).

    Orientation is dropped because the pixels are turned upright on read. The thumbnail (IFD1) goes too:
    ``Exif.tobytes`` never writes IFD1, and the thumbnail would show the old picture at the old size. So do the
    pixel dimensions of the Exif IFD and the source's storage layout, which would be wrong after upscaling.
    """
    orientation = exif.pop(ExifTags.Base.Orientation, 1)
    for tag in _SOURCE_LAYOUT_TAGS:
        exif.pop(tag, None)
    if ExifTags.IFD.Exif in exif:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)  # the dict tobytes writes, so edits to it are kept
        exif_ifd.pop(ExifTags.Base.ExifImageWidth, None)
        exif_ifd.pop(ExifTags.Base.ExifImageHeight, None)
    return orientation if isinstance(orientation, int) else 1, exif.tobytes() if len(exif) else None


def png_metadata_chunks(icc_profile: bytes | None, exif: bytes | None) -> list[tuple[bytes, bytes]]:
    """iCCP and eXIf chunks for a PNG written by pypng, which writes neither itself."""
    chunks = []
    if icc_profile:
        # iCCP: a profile name, a NUL, compression method 0 (zlib), the compressed profile.
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(b"Exif\x00\x00")))  # eXIf holds the TIFF data alone
    return chunks


class PngWriterWithChunks(png.Writer):
    """pypng's Writer plus chunks after its header; it has no argument for iCCP or eXIf, and both must precede
    the image data, which ``write_packed`` writes right after ``write_preamble``."""

    def __init__(self, *args, extra_chunks: list[tuple[bytes, bytes]], **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_chunks = extra_chunks

    def write_preamble(self, outfile) -> None:
        super().write_preamble(outfile)
        for tag, data in self.extra_chunks:
            png.write_chunk(outfile, tag, data)


class _PillowLimit:
    """Pillow's bomb limit, raised to a caller's ``max_pixels`` for the duration of a read that needs more.

    Pillow keeps its limit in one module global, ``Image.MAX_IMAGE_PIXELS``, read by ``Image.open`` and by
    plugins while they decode (WebP before it allocates the canvas, GIF frames that grow it, TIFF tiles); there is
    no per-call setting. So a read whose ``max_pixels`` exceeds Pillow's limit raises the global to that
    ``max_pixels`` while it runs, and the last such read in flight puts Pillow's own value back. Reads within
    Pillow's limit (the default) never touch it. Concurrent reads are counted under a lock, so none restores a
    value that another still needs; a value set by someone else meanwhile is left as they set it. The cost: other
    threads' Pillow reads during that window are held to the largest limit a caller asked for instead of
    Pillow's; our own check on the header size still refuses anything above each read's ``max_pixels``.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight: list[int] = []  # max_pixels of the reads that raised the limit and have not finished
        self._pillow_value: int | None = None  # Image.MAX_IMAGE_PIXELS before the first of them
        self._set_value: int | None = None  # what we last set it to

    @contextlib.contextmanager
    def at_least(self, max_pixels: int) -> Iterator[None]:
        with self._lock:
            pillow_value = self._pillow_value if self._in_flight else Image.MAX_IMAGE_PIXELS
            raise_it = pillow_value is not None and max_pixels > pillow_value
            if raise_it:
                if not self._in_flight:
                    self._pillow_value = pillow_value
                self._in_flight.append(max_pixels)
                self._set(max(self._in_flight))
        try:
            yield
        finally:
            if raise_it:
                with self._lock:
                    self._in_flight.remove(max_pixels)
                    self._set(max(self._in_flight) if self._in_flight else self._pillow_value)

    def _set(self, value: int | None) -> None:
        if self._set_value is None or Image.MAX_IMAGE_PIXELS == self._set_value:
            Image.MAX_IMAGE_PIXELS = value
        self._set_value = value if self._in_flight else None


pillow_limit = _PillowLimit()
