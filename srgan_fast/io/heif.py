"""HEIF and AVIF for imageio: which installed library reads and writes them, and their pixels and metadata.

pillow-heif (libheif; the ``heif`` extra) reads and writes HEIF at 8, 10 and 12 bits. AVIF goes through
pillow-heif where it still has an AV1 codec (before 1.0, which dropped AVIF), since it keeps 10 and 12 bits,
and otherwise through Pillow's own plugin (Pillow >= 11.3), which decodes and encodes 8 bits only. Deep pixels
are uint16 over the full 16-bit range, as everywhere in srgan_fast: a 10-bit v is round(v * 65535 / 1023).
libheif applies the files' rotation and mirroring (irot/imir) when it decodes, so the pixels come upright and
their EXIF orientation, which in HEIF only repeats irot/imir for EXIF readers, must not be applied again.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, features

from srgan_fast.tiler.channels import rescale_levels

SUFFIXES = {".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF"}
FORMATS = frozenset(SUFFIXES.values())
# At 90 both encoders beat JPEG at 95 (38.8 dB PSNR) on the astronaut sample: x265 at 4:2:0 41 dB, where its
# chroma subsampling is the limit, aom at 4:4:4 40.5 dB in 70% of the JPEG's size. An upscaler's output is an
# archive copy, kept for its detail: lower settings soften exactly what the network added.
QUALITY = 90
# AVIF is decoded in software everywhere, so full-resolution chroma costs no compatibility. HEIC keeps x265's
# 4:2:0 (HEVC Main and Main 10): phones' and operating systems' HEVC decoders take 4:4:4 only here and there.
_CHROMA = {"AVIF": "444", "HEIF": None}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_MISSING = {"HEIF": "HEIF needs pillow-heif: pip install 'srgan_fast[heif]'",
            "AVIF": "AVIF needs Pillow >= 11.3 built with AVIF (pip install -U Pillow) or pillow-heif < 1.0"}


def container_format(head: bytes) -> str | None:
    """"AVIF" or "HEIF" from a file's first bytes (its ftyp box: major and compatible brands), else None."""
    if head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[offset:offset + 4] for offset in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:  # an AVIF says mif1 too
        return "AVIF"
    return "HEIF" if brands & _HEIF_BRANDS else None


def suffixes() -> dict[str, str]:
    """Suffix -> format for the HEIF/AVIF suffixes that some installed library may handle.

    A cheap look at what is installed, for the suffix lists; ``library`` is the exact answer when a file is read
    or written (it imports pillow-heif, which loads libheif, only then).
    """
    heif = importlib.util.find_spec("pillow_heif") is not None
    avif = heif or _pillow_avif()
    return {suffix: fmt for suffix, fmt in SUFFIXES.items() if (heif if fmt == "HEIF" else avif)}


def _pillow_avif() -> bool:
    # Pillow before 11.3 has no "avif" module and would warn about an unknown feature.
    return "avif" in features.modules and features.check_module("avif")


def _pillow_heif():
    try:
        import pillow_heif
    except ImportError:
        return None
    return pillow_heif


def library(fmt: str, writing: bool = False) -> str | None:
    """What reads (or writes) ``fmt`` here: "pillow-heif", "Pillow" (AVIF at 8 bits), or None if nothing does."""
    pillow_heif = _pillow_heif()
    if pillow_heif is not None:
        encoders = pillow_heif.libheif_info()  # each format's encoder, empty where libheif was built without one
        if fmt == "HEIF" and (encoders.get("HEIF") or not writing):
            return "pillow-heif"
        # pillow-heif's wheels carry an AV1 encoder and decoder together, or (from 1.0) neither.
        if fmt == "AVIF" and encoders.get("AVIF"):
            return "pillow-heif"
    if fmt == "AVIF" and _pillow_avif():
        return "Pillow"
    return None


def missing(fmt: str, writing: bool = False) -> str:
    """Why nothing here handles ``fmt``, and what to install."""
    if fmt == "HEIF" and writing and _pillow_heif() is not None:
        return "writing HEIF needs an HEVC encoder and this pillow-heif has none (its PyPI wheels bring x265)"
    return _MISSING[fmt]


def av1_bit_depth(file) -> int:
    """The coded bit depth of an AVIF file, from its av1C boxes (AV1 codec configuration): 8, 10 or 12.

    Read from the header alone, before any pixel is decoded; the deepest of the file's images (the colour and
    an alpha plane may each have one). A file without the box reads as 8 bits, as its decoder would.
    """
    file.seek(0)
    head = file.read(1 << 16)  # the meta box, which holds av1C, comes before the coded image in AVIF files
    bits, start = 8, 0
    while (found := head.find(b"av1C", start)) >= 4 and found + 7 <= len(head):
        flags = head[found + 6]  # seq_tier_0, high_bitdepth, twelve_bit, ... after marker/version and profile/level
        if flags & 0x40:
            bits = max(bits, 12 if flags & 0x20 else 10)
        start = found + 4
    return bits


def pillow_avif_refusal(file) -> str | None:
    """Why Pillow's AVIF decoder may not read this file: it decodes a 10- or 12-bit AVIF to 8 bits without a word."""
    bits = av1_bit_depth(file)
    file.seek(0)
    if bits <= 8:
        return None
    return (f"a {bits}-bit AVIF, which Pillow's AVIF decoder (the only one installed) would read at 8 bits; install "
            f"pillow-heif < 1.0 (pip install 'pillow-heif<1') to read its {bits} bits, or convert it to a 16-bit PNG")


def holds_deep(fmt: str) -> bool:
    """Whether ``fmt`` is written here at 10 or 12 bits (pillow-heif); Pillow's AVIF encoder holds 8."""
    return fmt in FORMATS and library(fmt, writing=True) == "pillow-heif"


def decode(file, check_size: Callable[[int, int], None]) -> tuple[np.ndarray, int, bytes | None, bytes | None]:
    """The primary image of a HEIF/AVIF file through pillow-heif, upright; ``check_size(width, height)`` runs
    before the pixels are decoded. Returns H×W[×C] pixels (uint8, or uint16 over the full range for 10/12-bit),
    the coded bit depth, the ICC profile and the EXIF (whose orientation is already applied)."""
    import pillow_heif

    # pillow-heif's own 16-bit conversion shifts left (1023 becomes 65472, short of white); the raw 10/12-bit
    # values are rescaled here instead.
    heif_file = pillow_heif.open_heif(file, convert_hdr_to_8bit=False, hdr_to_16bit=False)
    check_size(*heif_file.size)
    decoded = np.asarray(heif_file)
    bits = int(heif_file.info["bit_depth"])
    if decoded.dtype == np.uint16 and bits < 16:
        pixels = rescale_levels(decoded, (1 << bits) - 1, 65535, np.uint16)
    else:  # a copy: before 1.0, pillow-heif's array views libheif's buffer, which is freed along with heif_file
        pixels = decoded.copy()
    return pixels, bits, heif_file.info.get("icc_profile") or None, heif_file.info.get("exif") or None


def encode(tmp: Path, fmt: str, frame: np.ndarray, bits: int, icc_profile: bytes | None,
           exif: bytes | None) -> None:
    """One H×W×C frame as HEIF or AVIF at QUALITY: uint8 as 8 bits, uint16 as ``bits`` (10 or 12)."""
    metadata = {key: value for key, value in (("icc_profile", icc_profile), ("exif", exif)) if value}
    colour = frame.shape[2] > 1
    if library(fmt, writing=True) == "Pillow":  # imageio has reduced uint16 to 8 bits for it
        picture = Image.fromarray(frame if colour else frame[:, :, 0])
        chroma = {"subsampling": "4:4:4"} if colour else {}  # gray is 4:0:0 by itself
        picture.save(tmp, format="AVIF", quality=QUALITY, **chroma, **metadata)
        return
    import pillow_heif

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[frame.shape[2]]
    if frame.dtype == np.uint16:
        mode, frame = f"{mode};{bits}", rescale_levels(frame, 65535, (1 << bits) - 1, np.uint16)
    chroma = {"chroma": _CHROMA[fmt]} if colour and _CHROMA[fmt] else {}
    data = frame.astype(frame.dtype.newbyteorder("<"), copy=False).tobytes()  # libheif takes little-endian
    pillow_heif.from_bytes(mode, (frame.shape[1], frame.shape[0]), data).save(
        tmp, format=fmt, quality=QUALITY, **chroma, **metadata)
