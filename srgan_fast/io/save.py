"""Image files out: atomic writes that keep what the format can hold (16 bits, alpha, frames, ICC profile,
EXIF) of an ``ImageFile`` (srgan_fast.io.images) and say what they had to drop; and the same bytes in memory
for a server's answer.

Pillow writes everything except 16-bit colour PNG and TIFF, which go through pypng (``srgan_fast.io.png_files``)
and tifffile; HEIF and AVIF go through ``srgan_fast.io.heif``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from srgan_fast.io import heif, png_files
from srgan_fast.io.atomic import atomic_output
from srgan_fast.io.images import (MULTI_FRAME_FORMATS, TIMED_FORMATS, WHITE, WRITE_FORMATS, ImageFile,
                                  ImageFileError, one_line)
from srgan_fast.tiler.channels import flatten_alpha, rescale_levels

ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "HEIF", "AVIF"}
EXIF_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "HEIF", "AVIF"}


def _output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in heif.SUFFIXES and heif.library(heif.SUFFIXES[suffix], writing=True) is None:
        raise ImageFileError(f"{path}: {heif.missing(heif.SUFFIXES[suffix], writing=True)}")
    fmt = WRITE_FORMATS.get(suffix)
    if fmt is None:
        raise ImageFileError(f"{path}: unknown output format {path.suffix!r}; expected one of "
                             f"{', '.join(sorted(WRITE_FORMATS))}")
    return fmt


def save_image(path: str | os.PathLike, image: ImageFile, *, replace: bool = True, quality: int | None = None,
               background: tuple[int, int, int] = WHITE) -> list[str]:
    """Write an image file atomically (temp file in the same folder, then rename); returns the warnings.

    16-bit and alpha are kept where the format can hold them (PNG and TIFF: both, 16-bit colour TIFF through
    tifffile; HEIF, and AVIF through pillow-heif: alpha and 10 bits, 12 for a 12-bit source; WebP and
    Pillow's AVIF: alpha; GIF: alpha as a transparent colour); elsewhere 16-bit is reduced to 8 and the image
    is laid over ``background`` (r, g, b of 0..255). Frames go into GIF, APNG, WebP or TIFF pages; any other
    format refuses more than one. The ICC profile and the EXIF go wherever the format holds them. Each thing
    dropped is one warning, as a string, for the caller to show. ``quality``: JPEG and WebP (default 95).
    ``replace=False``: ``FileExistsError`` where a file is at ``path`` when the write is done, which stays.
    """
    path = Path(path)
    write, notes = _encoder(path, _output_format(path), image, quality, background)
    try:
        with atomic_output(path, suffix=path.suffix, replace=replace) as tmp:
            write(tmp)
    except (MemoryError, FileExistsError):
        raise
    except Exception as exc:  # encoders fail with any exception type
        raise ImageFileError(f"{path}: could not write ({one_line(exc)})") from None
    return notes


def encode_image(image: ImageFile, fmt: str, *, quality: int | None = None, png_compress_level: int | None = None,
                 name: str = "image") -> tuple[bytes, list[str]]:
    """The bytes of the file ``save_image`` writes, in Pillow's format ``fmt`` ("PNG", "JPEG", "WEBP", ...), and
    its warnings; ``quality``: JPEG and WebP quality (default 95); ``png_compress_level``: zlib's 0..9 for PNG
    (default: the writers' own, 6; a server answering at once may take 1, ~4x faster for ~15% more bytes).
    ``name`` stands for the path in messages."""
    formats = sorted(set(WRITE_FORMATS.values()))
    if fmt not in formats:
        raise ImageFileError(f"{name}: unknown output format {fmt!r}; expected one of {', '.join(formats)}")
    write, notes = _encoder(name, fmt, image, quality, png_compress_level=png_compress_level)
    buffer = io.BytesIO()
    try:
        write(buffer)
    except MemoryError:
        raise
    except Exception as exc:  # encoders fail with any exception type
        raise ImageFileError(f"{name}: could not encode ({one_line(exc)})") from None
    return buffer.getvalue(), notes


def _encoder(path: Path | str, fmt: str, image: ImageFile, quality: int | None = None,
             background: tuple[int, int, int] = WHITE, png_compress_level: int | None = None):
    """(write(target), warnings): what ``fmt`` can hold of ``image`` decided, ready to write to a path or a
    binary file object; ``write`` adds any warning it finds while writing."""
    if not image.frames:
        raise ImageFileError(f"{path}: no frames to write")
    if image.animated and fmt not in MULTI_FRAME_FORMATS:
        raise ImageFileError(f"{path}: the source has {len(image.frames)} frames and {fmt} holds one; write "
                             f"{', '.join(MULTI_FRAME_FORMATS.values())} to keep them")
    sizes = sorted({f"{frame.shape[1]}x{frame.shape[0]}" for frame in image.frames if frame.ndim >= 2})
    if len(sizes) > 1:  # each writer would handle them its own way: GIF crops, APNG and WebP differ again
        raise ImageFileError(f"{path}: frames of {len(sizes)} sizes ({', '.join(sizes)}); an animation's frames "
                             "share one canvas size")
    notes: list[str] = []
    frames = [_fit_format(path, fmt, frame, image.animated, notes, background) for frame in image.frames]
    icc_profile, exif = image.icc_profile, image.exif
    if icc_profile and fmt not in ICC_FORMATS:
        notes.append(f"{path}: ICC profile dropped: {fmt} cannot hold one")
        icc_profile = None
    if exif and fmt not in EXIF_FORMATS:
        notes.append(f"{path}: EXIF dropped: {fmt} cannot hold it")
        exif = None
    if image.animated and image.durations_ms and fmt not in TIMED_FORMATS:
        notes.append(f"{path}: frame durations dropped: {fmt} pages have none")
    bits = _heif_bits(path, fmt, frames[0], image.bit_depth, notes) if fmt in heif.FORMATS else None

    def write(target) -> None:
        if fmt == "PNG" and frames[0].dtype == np.uint16 and frames[0].shape[2] > 1:
            png_files.write_16bit(target, frames[0], icc_profile, exif, png_compress_level)
        elif fmt == "TIFF" and frames[0].dtype == np.uint16 and frames[0].shape[2] > 1:
            if exif:
                notes.append(f"{path}: EXIF dropped: the 16-bit colour TIFF writer does not carry it")
            _write_tiff16(target, frames, icc_profile)
        elif fmt in heif.FORMATS:
            heif.encode(target, fmt, frames[0], bits, icc_profile, exif)
        else:
            _write_pillow(target, fmt, frames, image, icc_profile, exif, quality, png_compress_level)
    return write, notes


def _fit_format(path: Path, fmt: str, frame: np.ndarray, animated: bool, notes: list[str],
                background: tuple[int, int, int]) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or frame.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"{path}: expected H×W×C uint8 or uint16 frames with C in 1, 3, 4, got shape "
                             f"{frame.shape} {frame.dtype}")
    keeps_16bit = (fmt == "PNG" and not animated) or fmt == "TIFF" or heif.holds_deep(fmt)
    keeps_alpha = fmt in ("PNG", "WEBP", "TIFF", "GIF", "HEIF", "AVIF")
    if frame.shape[2] == 4 and not keeps_alpha:  # laid over the background at full depth, then reduced
        _note(notes, f"{path}: {fmt} has no alpha channel; transparent areas laid over "
                     f"#{''.join(f'{value:02x}' for value in background)}")
        frame = flatten_alpha(frame, background)
    if frame.dtype == np.uint16 and not keeps_16bit:
        if fmt == "AVIF":  # the format holds 12 bits, the encoder installed here 8
            _note(notes, f"{path}: Pillow's AVIF encoder writes 8 bits; writing 8 bits of this 16-bit image "
                         "(.heic, .png or .tif keep more)")
        else:
            _note(notes, f"{path}: {fmt} cannot hold this 16-bit {'animation' if animated else 'image'}; "
                         "writing 8 bits")
        frame = rescale_levels(frame, 65535, 255, np.uint8)
    return frame


def _heif_bits(path: Path, fmt: str, frame: np.ndarray, source_bits: int | None, notes: list[str]) -> int:
    """The bit depth of a HEIF/AVIF output: 8 for uint8; 12 for a 12-bit source, else 10, which every
    10-bit decoder takes (HEVC Main 10, AV1 Main)."""
    if frame.dtype == np.uint8:
        return 8
    bits = 12 if source_bits == 12 else 10
    if source_bits is None or source_bits > bits:
        notes.append(f"{path}: writing this 16-bit image as {bits}-bit {fmt} (.png or .tif keep 16 bits)")
    return bits


def _note(notes: list[str], message: str) -> None:
    if message not in notes:  # once per file, not once per frame
        notes.append(message)


def _write_tiff16(tmp: Path, frames: list[np.ndarray], icc_profile: bytes | None) -> None:
    """16-bit RGB(A) TIFF pages, deflate-compressed, alpha as unassociated extra samples, with the ICC profile."""
    import tifffile

    extratags = [(34675, 7, len(icc_profile), icc_profile, True)] if icc_profile else []  # InterColorProfile
    with tifffile.TiffWriter(tmp) as tiff:
        for frame in frames:
            alpha = ("unassalpha",) * (frame.shape[2] - 3)
            tiff.write(frame, photometric="rgb", compression="zlib", extrasamples=alpha, extratags=extratags)


def _write_pillow(tmp: Path, fmt: str, frames: list[np.ndarray], image: ImageFile, icc_profile: bytes | None,
                  exif: bytes | None, quality: int | None = None, png_compress_level: int | None = None) -> None:
    # Pillow maps uint16 H×W to its 16-bit gray mode "I;16" by itself.
    pictures = [Image.fromarray(frame[:, :, 0] if frame.shape[2] == 1 else frame) for frame in frames]
    options = {"quality": quality or 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG" and png_compress_level is not None:
        options["compress_level"] = png_compress_level
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif:
        options["exif"] = exif
    if len(pictures) > 1:
        options.update(save_all=True, append_images=pictures[1:])
        if fmt in TIMED_FORMATS:
            if image.durations_ms:
                options["duration"] = image.durations_ms
            # GIF without a loop count plays once; APNG and WebP need 1 for that.
            if image.loop is not None or fmt != "GIF":
                options["loop"] = 1 if image.loop is None else image.loop
    pictures[0].save(tmp, format=fmt, **options)


def write_image(path: str | os.PathLike, array: np.ndarray, *, icc_profile: bytes | None = None,
                exif: bytes | None = None) -> None:
    """Write one H×W×C uint8/uint16 array atomically, as ``save_image`` does; what it drops is a warning."""
    image = ImageFile([array], _output_format(Path(path)), icc_profile, exif)
    for message in save_image(path, image):
        warnings.warn(message, stacklevel=2)
