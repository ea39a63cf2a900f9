"""Image files in and out for the CLI: 8- and 16-bit, gray/RGB/alpha, guarded reads, atomic writes.

Pillow reads and writes everything except 16-bit colour PNG, which Pillow cannot hold without dropping to
8 bits; those go through pypng. Reads refuse images above ``max_pixels`` before decoding them (decompression
bombs) and report truncated or unreadable files as ``ImageFileError`` with the path and the reason.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import png
from PIL import Image, UnidentifiedImageError

from srgan_fast.atomic import atomic_output

DEFAULT_MAX_PIXELS = 50_000_000  # input pixels; the ×4 output is 16× that
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}
READ_SUFFIXES = set(WRITE_FORMATS) | {".gif", ".ppm", ".pgm", ".tga"}


class ImageFileError(ValueError):
    """An image file that cannot be read or written; the message names the file and why."""


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageFileError(f"{path}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                             "(a decompression bomb or a very large image; raise --max-pixels to allow it)")


def _read_png16(path: Path, max_pixels: int) -> np.ndarray | None:
    """A 16-bit PNG as uint16 H×W×C, or None when the PNG is 8-bit or less (Pillow reads those)."""
    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()
    if info["bitdepth"] != 16:
        return None
    _check_size(path, width, height, max_pixels)
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, planes)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file -> H×W×C array (C in 1, 2→4, 3, 4) of uint8, or uint16 for 16-bit files."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".png":
            array = _read_png16(path, max_pixels)
            if array is not None:
                return _expand_gray_alpha(array)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(path, image.width, image.height, max_pixels)
                image.load()
                return _expand_gray_alpha(_pil_to_array(image))
    except ImageFileError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageFileError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, png.Error) as exc:
        raise ImageFileError(f"{path}: unreadable or truncated image ({exc})") from None


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":  # 32-bit integer gray: 16-bit files from some Pillow readers
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    has_alpha = "A" in image.mode or (image.mode == "P" and "transparency" in image.info)
    if image.mode in ("L", "RGB", "RGBA", "LA"):
        return np.asarray(image)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _expand_gray_alpha(array: np.ndarray) -> np.ndarray:
    """Gray+alpha (C=2) becomes RGBA, the nearest layout the upscaler accepts; H×W becomes H×W×1."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.shape[2] == 2:
        return np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
    return array


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write H×W×C uint8/uint16 atomically (temp file in the same folder, then rename).

    16-bit and alpha are kept where the format can hold them (PNG: both; TIFF: 16-bit gray, 8-bit alpha;
    WebP: alpha); elsewhere 16-bit is reduced to 8 and alpha is dropped, with a warning.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageFileError(f"{path}: unknown output format {path.suffix!r}; expected one of "
                             f"{', '.join(sorted(WRITE_FORMATS))}")
    array = _fit_format(path, fmt, array)
    try:
        with atomic_output(path, suffix=path.suffix) as tmp:
            if fmt == "PNG" and array.dtype == np.uint16 and array.shape[2] > 1:
                height, width, planes = array.shape
                writer = png.Writer(width, height, bitdepth=16, greyscale=False, alpha=planes == 4)
                with open(tmp, "wb") as f:
                    writer.write(f, array.reshape(height, width * planes))
            else:
                # Pillow maps uint16 H×W to its 16-bit gray mode "I;16" by itself.
                image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
                image.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    except (OSError, ValueError) as exc:
        raise ImageFileError(f"{path}: could not write ({exc})") from None


def _fit_format(path: Path, fmt: str, array: np.ndarray) -> np.ndarray:
    keeps_16bit = fmt == "PNG" or (fmt == "TIFF" and array.shape[2] == 1)
    keeps_alpha = fmt in ("PNG", "WEBP", "TIFF")
    if array.dtype == np.uint16 and not keeps_16bit:
        warnings.warn(f"{path}: {fmt} cannot hold this 16-bit image; writing 8 bits")
        array = (array.astype(np.uint32) * 255 + 32767) // 65535
        array = array.astype(np.uint8)
    if array.shape[2] == 4 and not keeps_alpha:
        warnings.warn(f"{path}: {fmt} has no alpha channel; dropping it")
        array = np.ascontiguousarray(array[:, :, :3])
    return array
