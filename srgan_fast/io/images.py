"""Image files in and out for the CLI: 8- and 16-bit, gray/RGB/alpha, animations, EXIF and ICC, guarded reads,
atomic writes.

Pillow reads and writes everything except 16-bit colour PNG and TIFF, which Pillow cannot hold without
dropping to 8 bits; those go through pypng (``srgan_fast.io.png_files``) and tifffile. HEIF and AVIF, where
installed, go through ``srgan_fast.io.heif`` (pillow-heif, or Pillow's own 8-bit AVIF), their 10 and 12 bits
kept; a 10/12-bit AVIF that only Pillow could read is refused rather than read at 8 bits. Reads refuse images
above ``max_pixels`` before decoding them (decompression bombs), turn photos upright by their EXIF orientation,
and report any file that fails to decode, or whose image data ends early (which Pillow would fill with black),
as ``ImageFileError`` with the path and the reason. Writes keep what the format can hold (16 bits, alpha,
frames, ICC profile, EXIF) and say what they had to drop.
"""
from __future__ import annotations

import dataclasses
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from srgan_fast.io import heif, png_files
from srgan_fast.io.atomic import atomic_output
from srgan_fast.tiler.channels import flatten_alpha, rescale_levels
from srgan_fast.io.metadata import orientation_and_carried_exif, pillow_limit, upright

DEFAULT_MAX_PIXELS = 50_000_000  # input pixels, all frames together; the ×4 output is 16× that
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP", ".gif": "GIF", **heif.suffixes()}
READ_SUFFIXES = set(WRITE_FORMATS) | {".ppm", ".pgm", ".tga"}
MULTI_FRAME_FORMATS = {"GIF": ".gif", "PNG": ".png (APNG)", "WEBP": ".webp", "TIFF": ".tif (pages)"}
_TIMED_FORMATS = {"GIF", "PNG", "WEBP"}  # the multi-frame formats that hold frame durations and a loop count
_ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "HEIF", "AVIF"}
_EXIF_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "HEIF", "AVIF"}
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
        raise ImageFileError(f"{path}: no such file")
    return _load(lambda: open(path, "rb"), path, max_pixels)


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
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: unreadable or truncated image (not in any format Pillow knows)") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{path}: exceeds the limit of {max_pixels} pixels ({one_line(exc)}; "
                             "raise --max-pixels to allow it)") from None
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
    return _same_channels(frames), durations if image.format in _TIMED_FORMATS else None


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
    notes: list[str] = []
    frames = [_fit_format(path, fmt, frame, image.animated, notes, background) for frame in image.frames]
    icc_profile, exif = image.icc_profile, image.exif
    if icc_profile and fmt not in _ICC_FORMATS:
        notes.append(f"{path}: ICC profile dropped: {fmt} cannot hold one")
        icc_profile = None
    if exif and fmt not in _EXIF_FORMATS:
        notes.append(f"{path}: EXIF dropped: {fmt} cannot hold it")
        exif = None
    if image.animated and image.durations_ms and fmt not in _TIMED_FORMATS:
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
        if fmt in _TIMED_FORMATS:
            if image.durations_ms:
                options["duration"] = image.durations_ms
            # GIF without a loop count plays once; APNG and WebP need 1 for that.
            if image.loop is not None or fmt != "GIF":
                options["loop"] = 1 if image.loop is None else image.loop
    pictures[0].save(tmp, format=fmt, **options)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A still image file -> H×W×C array (C in 1, 3, 4) of uint8, or uint16 for 16-bit files; upright."""
    image = load_image(path, max_pixels)
    if image.animated:
        raise ImageFileError(f"{path}: has {len(image.frames)} frames; read it with load_image")
    return image.frames[0]


def write_image(path: str | os.PathLike, array: np.ndarray, *, icc_profile: bytes | None = None,
                exif: bytes | None = None) -> None:
    """Write one H×W×C uint8/uint16 array atomically, as ``save_image`` does; what it drops is a warning."""
    image = ImageFile([array], _output_format(Path(path)), icc_profile, exif)
    for message in save_image(path, image):
        warnings.warn(message, stacklevel=2)
