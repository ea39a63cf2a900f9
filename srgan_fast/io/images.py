"""Image files in: 8- and 16-bit, gray/RGB/alpha, animations, EXIF and ICC, guarded reads; the ``ImageFile``
they give, and the formats both directions know (writes: ``srgan_fast.io.save``).

Pillow reads everything except 16-bit colour PNG and TIFF, which Pillow cannot hold without dropping to
8 bits; those go through pypng (``srgan_fast.io.png_files``) and tifffile. HEIF and AVIF, where
installed, go through ``srgan_fast.io.heif`` (pillow-heif, or Pillow's own 8-bit AVIF), their 10 and 12 bits
kept; a 10/12-bit AVIF that only Pillow could read is refused rather than read at 8 bits. Reads refuse images
above ``max_pixels`` before decoding them (decompression bombs), turn photos upright by their EXIF orientation,
and report any file that fails to decode, or whose image data ends early (which Pillow would fill with black),
as ``ImageFileError`` with the path and the reason.
"""
from __future__ import annotations

import dataclasses
import errno
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from srgan_fast.io import heif, png_files
from srgan_fast.io.metadata import orientation_and_carried_exif, pillow_limit, upright

DEFAULT_MAX_PIXELS = 50_000_000  # input pixels, all frames together; the ×4 output is 16× that
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP", ".gif": "GIF", **heif.suffixes()}
READ_SUFFIXES = set(WRITE_FORMATS) | {".ppm", ".pgm", ".tga"}
MULTI_FRAME_FORMATS = {"GIF": ".gif", "PNG": ".png (APNG)", "WEBP": ".webp", "TIFF": ".tif (pages)"}
TIMED_FORMATS = {"GIF", "PNG", "WEBP"}  # the multi-frame formats that hold frame durations and a loop count
WHITE = (255, 255, 255)  # what transparency is laid over in formats without alpha, unless told otherwise


class ImageFileError(ValueError):
    """An image file that cannot be read or written; the message names the file and why."""


class ImageTooLarge(ImageFileError):
    """An image over the ``max_pixels`` limit, refused before it is decoded (a server answers 413 for it)."""


@dataclass
class ImageFile:
    """The pixels of an image file, still or animated, and the metadata worth carrying into an upscaled copy."""

    frames: list[np.ndarray]  # each H×W×C (C in 1, 3, 4) uint8 or uint16; one element for a still image
    format: str  # Pillow's name for the source's format: "PNG", "JPEG", "GIF", "WEBP", "TIFF", ...
    icc_profile: bytes | None = None
    exif: bytes | None = None  # without orientation (the frames are upright) or thumbnail; None if none
    durations_ms: list[int] | None = None  # per frame, animations only
    loop: int | None = None  # animations only: 0 = forever, None = played once
    # A 10- or 12-bit source (HEIF, AVIF), its frames uint16 over the full range; HEIF/AVIF outputs keep it.
    # None where the dtype tells the depth.
    bit_depth: int | None = None

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1

    def with_frames(self, frames: list[np.ndarray]) -> ImageFile:
        """The same metadata around new pixels (the upscaled frames)."""
        return dataclasses.replace(self, frames=frames)


def _check_size(path: Path, width: int, height: int, max_pixels: int, frames: int = 1) -> None:
    pixels = width * height * frames
    if pixels > max_pixels:
        size = f"{frames} frames of {width}x{height}" if frames > 1 else f"{width}x{height}"
        raise ImageTooLarge(f"{path}: {size} = {pixels} pixels exceeds the limit of {max_pixels} "
                             "(a decompression bomb or a very large image; raise --max-pixels to allow it)")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFile:
    """An image file, every frame upright, as H×W×C arrays (C in 1, 3, 4) of uint8, or uint16 for 16-bit files
    and for 10/12-bit HEIF and AVIF (scaled to the full 16-bit range, ``bit_depth`` saying how many they had).

    ``max_pixels`` bounds all frames together, since they are all held (and upscaled) at once; it is the only
    limit: Pillow's own is raised for the read when ``max_pixels`` exceeds it. Any failure to decode becomes
    ``ImageFileError``; ``MemoryError`` is let through for the caller to report with its memory budget.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(broken_link(path) or f"{path}: no such file")
    return _load(lambda: open(path, "rb"), path, max_pixels)


def broken_link(path: Path) -> str | None:
    """Why a link cannot be read through (a loop, a missing target), as an error line; None for anything else."""
    try:
        os.stat(path)
        return None
    except OSError as exc:
        if not path.is_symlink():
            return None
        if exc.errno == errno.ELOOP:
            return f"{path}: a symbolic link loop (it leads back to itself through {os.readlink(path)})"
        return f"{path}: a broken symbolic link (to {os.readlink(path)}, which does not exist)"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> ImageFile:
    """``load_image`` of an image file's bytes (an upload, say); ``name`` stands for the path in messages."""
    return _load(lambda: io.BytesIO(data), name, max_pixels)


def _load(open_file, path: Path | str, max_pixels: int) -> ImageFile:
    """The body of ``load_image`` for a binary file that ``open_file()`` opens; ``path`` names it in messages."""
    try:
        with pillow_limit.at_least(max_pixels), open_file() as file:
            head = file.read(64)
            if not head:
                raise ImageFileError(f"{path}: unreadable or truncated image (empty file)")
            file.seek(0)
            container = heif.container_format(head)
            if container is not None and heif.library(container) != "Pillow":
                loaded, orientation = _decode_heif(path, file, container, max_pixels), 1
            else:
                refusal = heif.pillow_avif_refusal(file) if container == "AVIF" else None
                if refusal:
                    raise ImageFileError(f"{path}: {refusal}")
                with Image.open(file) as image:
                    loaded, orientation = _decode(path, file, image, max_pixels)
    except (ImageFileError, MemoryError):
        raise
    except PermissionError:  # from opening the file: say so, not that the image is broken
        raise ImageFileError(f"{path}: permission denied (this user may not read it)") from None
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: unreadable or truncated image (not in any format Pillow knows)") from None
    except Image.DecompressionBombError as exc:
        # Pillow's refusal quotes its own limit (twice its MAX_IMAGE_PIXELS, raised to at least max_pixels for the
        # read): the one that applies is max_pixels, so only the image's size is taken from it.
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{pixels.group(1)} pixels" if pixels else "the image"
        raise ImageTooLarge(f"{path}: {size} exceeds the limit of {max_pixels} (a decompression bomb or a very "
                            "large image; raise --max-pixels to allow it)") from None
    except Exception as exc:  # a broken file fails anywhere in the decoders, with any exception type
        raise ImageFileError(f"{path}: unreadable or truncated image ({one_line(exc)})") from None
    # Turned upright after the decoder is closed, so that its copy of the pixels is gone by then.
    for index, frame in enumerate(loaded.frames):
        loaded.frames[index] = upright(frame, orientation)
    return loaded


def _decode(path: Path, file, image: Image.Image, max_pixels: int) -> tuple[ImageFile, int]:
    """The frames and metadata of an opened file, and its EXIF orientation (not applied yet)."""
    # An MPO is a camera JPEG whose further pictures are previews or a stereo view, not frames to play.
    frame_count = 1 if image.format == "MPO" else getattr(image, "n_frames", 1)
    _check_size(path, image.width, image.height, max_pixels, frame_count)
    durations = None
    if image.format == "PNG" and frame_count == 1 and png_files.bit_depth(file) == 16:
        frames = [_expand_gray_alpha(png_files.read_16bit(file))]
    elif image.format == "TIFF" and _is_16bit_colour_tiff(image):
        frames = _read_tiff16(file, frame_count)
    else:
        missing = png_files.missing_rows(file) if image.format == "PNG" else None
        if missing:
            raise ValueError(missing)  # Pillow would fill the missing rows with black
        frames, durations = _decode_frames(path, image, frame_count, max_pixels)
    # Pillow's PNG getexif() decodes the image to look for an eXIf chunk after the pixels; a PNG decoded here by
    # Pillow already has it in info, and one decoded by pypng is not decoded a second time for it.
    exif = image.getexif() if image.format != "PNG" or "exif" in image.info else Image.Exif()
    orientation, carried_exif = orientation_and_carried_exif(exif)
    loop = image.info.get("loop") if frame_count > 1 else None
    return ImageFile(frames, image.format, image.info.get("icc_profile") or None, carried_exif, durations,
                     loop), orientation


def _decode_heif(path: Path, file, fmt: str, max_pixels: int) -> ImageFile:
    """A HEIF/AVIF file's primary image through pillow-heif, upright already: libheif applies irot/imir."""
    if heif.library(fmt) is None:
        raise ImageFileError(f"{path}: {heif.missing(fmt)}")
    pixels, bits, icc_profile, exif_bytes = heif.decode(
        file, lambda width, height: _check_size(path, width, height, max_pixels))
    exif = Image.Exif()
    if exif_bytes:
        exif.load(exif_bytes)
    _, carried_exif = orientation_and_carried_exif(exif)  # the orientation says what libheif has done
    return ImageFile([_expand_gray_alpha(pixels)], fmt, icc_profile, carried_exif,
                     bit_depth=bits if 8 < bits < 16 else None)


def _is_16bit_colour_tiff(image: Image.Image) -> bool:
    """Pillow decodes 16-bit RGB(A) TIFFs to 8 bits; those go through tifffile instead (16-bit gray Pillow keeps)."""
    bits = image.tag_v2.get(258, (8,))  # BitsPerSample
    return image.mode not in ("I;16", "I;16B", "I;16L", "I") and tuple(bits)[:1] == (16,) and len(tuple(bits)) > 1


def _read_tiff16(file, frame_count: int) -> list[np.ndarray]:
    import tifffile

    file.seek(0)
    with tifffile.TiffFile(file) as tiff:
        return [_expand_gray_alpha(tiff.pages[index].asarray()) for index in range(frame_count)]


def _decode_frames(path: Path, image: Image.Image, frame_count: int,
                   max_pixels: int) -> tuple[list[np.ndarray], list[int] | None]:
    frames, durations = [], []
    for index in range(frame_count):
        if index:
            image.seek(index)
            # A GIF frame may grow the canvas past the size checked at open.
            _check_size(path, image.width, image.height, max_pixels, frame_count)
        frames.append(_expand_gray_alpha(_pil_to_array(image)))
        durations.append(round(image.info.get("duration") or 0))  # WebP sets it only once the frame is loaded
    if frame_count == 1:
        return frames, None
    return _same_channels(_on_full_canvas(frames)), durations if image.format in TIMED_FORMATS else None


def _on_full_canvas(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Every frame of an animation on its full canvas, as browsers show it, so that every output format gets one
    size: a GIF frame may reach past the canvas, which Pillow grows from that frame on (only right and down, GIF
    offsets being unsigned). An earlier frame is placed at the top left of the full canvas; the area not painted
    yet is transparent."""
    height, width = max(frame.shape[0] for frame in frames), max(frame.shape[1] for frame in frames)
    for index, frame in enumerate(frames):
        if frame.shape[:2] != (height, width):
            rgb = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[:, :, :3]
            opaque = np.iinfo(frame.dtype).max
            alpha = frame[:, :, 3:] if frame.shape[2] == 4 else np.full(frame.shape[:2] + (1,), opaque, frame.dtype)
            canvas = np.zeros((height, width, 4), frame.dtype)
            canvas[:frame.shape[0], :frame.shape[1]] = np.concatenate([rgb, alpha], axis=2)
            frames[index] = canvas
    return frames


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":  # 32-bit integer gray: 16-bit files from some Pillow readers
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    has_alpha = "A" in image.mode or (image.mode == "P" and "transparency" in image.info)
    if image.mode in ("L", "RGB", "RGBA", "LA"):
        return np.asarray(image)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))  # CMYK, YCbCr, palette, 1-bit, ...


def _expand_gray_alpha(array: np.ndarray) -> np.ndarray:
    """Gray+alpha (C=2) becomes RGBA, the nearest layout the upscaler accepts; H×W becomes H×W×1."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.shape[2] == 2:
        return np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
    return array


def _same_channels(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames of one animation in one layout: a GIF's first frame may be gray or opaque and later ones not."""
    channels = max(frame.shape[2] for frame in frames)
    for index, frame in enumerate(frames):
        if frame.shape[2] == 1 and channels > 1:
            frame = np.repeat(frame, 3, axis=2)
        if frame.shape[2] == 3 and channels == 4:
            frame = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, frame.dtype)], axis=2)
        frames[index] = frame
    return frames


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A still image file -> H×W×C array (C in 1, 3, 4) of uint8, or uint16 for 16-bit files; upright."""
    image = load_image(path, max_pixels)
    if image.animated:
        raise ImageFileError(f"{path}: has {len(image.frames)} frames; read it with load_image")
    return image.frames[0]
