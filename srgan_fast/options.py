"""One vocabulary: each option users give as text is parsed here, once, and carried as a value afterwards.

A device ("cpu", "cuda", "cuda:N"), a precision, a tile ("auto", "256", "256x384"), a size ("540x960"), a
byte count ("2G", "512MiB"), an output scale, a colour ("white", "#202020"), an encoder quality and an output name
template ("{stem}_x4"). Every parser raises ``ValueError`` with one line naming what it got and what it
accepts, so the API and both command lines refuse the same things with the same words. Numbers given as values
may be of any numeric type (Python's, NumPy's scalars, ``fractions.Fraction``): ``real`` and ``integer`` say
which count; a bool never does, since ``True`` passed as a size is a mistake, not 1.
"""
from __future__ import annotations

import math
import numbers
import re
import string
from dataclasses import dataclass

DEVICE_KINDS = ("cpu", "cuda")
# Every precision some backend runs; which ones a backend runs on a device is its own supported_precisions.
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")
# Weights and activations in one float type; the quantized ones keep some layers in a float type beside them.
FLOAT_PRECISIONS = ("fp32", "fp16", "bf16")
# Memory sizes: K, M, G and T are powers of 1024 with or without the "i", as memory is counted.
_BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def real(value) -> float | None:
    """Any real number but a bool (int, float, NumPy's scalars, Fraction, ...) as a float; None for anything else."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def integer(value) -> int | None:
    """Any integer but a bool (int, NumPy's integer scalars, ...) as an int; None for anything else (a float too)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def parse_positive_int(value, what: str) -> int:
    """A count or a size in pixels: any integer above 0, a value of any integer type or its decimal text, as an
    int (``what`` names the option in the refusal)."""
    count = int(value) if isinstance(value, str) and value.strip().isdecimal() else integer(value)
    if count is None or count <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return count


def parse_number(value, what: str) -> float:
    """A finite real number given as a value (an output scale, say), as a float; the caller bounds it."""
    number = real(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{what} must be a number (an int or float, NumPy's too; not a bool), got {value!r}")
    return number


# Backend options reach compiled code, whose binding refuses a wrong type with every argument printed (the
# weights among them: 320 KB): they are checked here first. The engine's thread count is a C int; more than
# this is a typo, not a machine.
MAX_THREADS = 4096
# The native engine's kernel paths ("auto": the fastest this CPU and build run); which run here is its own check.
CPU_PATHS = ("auto", "amx", "avx512", "avx2", "scalar", "reference", "amx_emulated")


def parse_threads(value) -> int:
    """A backend's thread count given as a value: 0 (one per core) to MAX_THREADS, as an int."""
    count = integer(value)
    if count is None or not 0 <= count <= MAX_THREADS:
        raise ValueError(f"threads must be an int from 0 (one per core) to {MAX_THREADS}, got {value!r}")
    return count


def parse_cpu_path(value) -> str:
    """The native engine's kernel path: one of CPU_PATHS."""
    if value not in CPU_PATHS or not isinstance(value, str):
        raise ValueError(f"unknown cpu path {value!r}: expected {', '.join(map(repr, CPU_PATHS[:-1]))} or "
                         f"{CPU_PATHS[-1]!r}")
    return value


@dataclass(frozen=True)
class Device:
    kind: str                 # "cpu" or "cuda"
    index: int | None = None  # the GPU's number; None: the default one (or the CPU)

    @property
    def gpu_index(self) -> int:
        return self.index or 0

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str | Device) -> Device:
    if isinstance(text, Device):
        return text
    kind, colon, index = str(text).strip().lower().partition(":")
    if kind in DEVICE_KINDS and not colon:
        return Device(kind)
    if kind == "cuda" and index.isdigit():
        return Device(kind, int(index))
    raise ValueError(f"unknown device {text!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def parse_precision(text: str, accepted: tuple[str, ...] = PRECISIONS, what: str = "precision") -> str:
    """'BF16' -> 'bf16'; ``accepted`` narrows the list for a part that runs fewer (``what`` names that part)."""
    precision = str(text).strip().lower()
    if precision not in accepted:
        known = "" if precision in PRECISIONS else "unknown "
        raise ValueError(f"{known}{what} {text!r}: expected one of {', '.join(accepted)}")
    return precision


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 540x960) or 'N' (square) -> (height, width), both positive."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*", str(text).lower(), re.ASCII)
    if not match:
        raise ValueError(f"expected a size N or HxW (e.g. 512 or 540x960), got {text!r}")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) is not None else h
    if h <= 0 or w <= 0:
        raise ValueError(f"expected positive sizes, got {text!r}")
    return h, w


def parse_tile(text: str | int | tuple[int, int] | None) -> int | tuple[int, int] | None:
    """'auto' or None -> None (sized from the memory budget); '256' -> 256; '256x384' -> (256, 384)."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "auto"):
        return None
    side = integer(text)
    if side is not None:
        if side <= 0:
            raise ValueError(f"tile must be 'auto' or a positive size, got {text}")
        return side
    if isinstance(text, tuple):
        sides = tuple(map(integer, text))
        if len(sides) != 2 or not all(side is not None and side > 0 for side in sides):
            raise ValueError(f"tile must be (rows, cols) of positive ints, got {text!r}")
        return sides
    try:
        h, w = parse_size(text)
    except ValueError:
        raise ValueError(f"tile must be 'auto', N or HxW (e.g. 256 or 256x384), got {text!r}") from None
    return h if "x" not in str(text).lower() and "×" not in str(text) else (h, w)


def parse_bytes(text: str | int) -> int:
    """'2G', '512M', '1.5GiB', '64k', '3000000' -> a positive number of bytes (K, M, G, T: powers of 1024)."""
    count = integer(text)
    if count is None:
        count = 0
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])i?)?b?\s*", str(text).lower(), re.ASCII)
        if match:
            count = int(float(match.group(1)) * _BYTE_UNITS[match.group(2) or ""])
    if count <= 0:
        raise ValueError(f"expected a positive size in bytes such as 2G, 512M, 1.5GiB or 3000000, got {text!r}")
    return count


def parse_outscale(text: str | float) -> float:
    """'2.5' -> 2.5: the output's size over the input's, at least 1 (a smaller result is never an upscale)."""
    if isinstance(text, str):
        try:
            value = float(text)
        except ValueError:
            value = None
    else:
        value = real(text)
    if value is None or not (math.isfinite(value) and value >= 1):
        raise ValueError(f"expected an output scale of 1 or more (e.g. 2 or 2.5), got {text!r}")
    return value


def parse_color(text: str) -> tuple[int, int, int]:
    """'white', '#ffffff', '#fff', 'rgb(255,255,255)' or any CSS colour name -> (r, g, b) of 0..255, opaque."""
    from PIL import ImageColor

    try:
        colour = ImageColor.getrgb(str(text).strip())
    except ValueError:
        colour = None
    if colour is None or len(colour) != 3:
        raise ValueError(f"expected an opaque colour such as white, black, '#808080', '#888' or 'rgb(128,128,128)', "
                         f"got {text!r}")
    return colour


def parse_quality(text: str | int) -> int:
    """'90' -> 90: a JPEG/WebP encoder quality, 1 (smallest) to 100 (best)."""
    value = integer(text)
    if value is None:
        value = int(text) if isinstance(text, str) and text.strip().isdecimal() else 0
    if not 1 <= value <= 100:
        raise ValueError(f"expected a quality from 1 to 100, got {text!r}")
    return value


NAME_FIELDS = ("stem", "ext")


def parse_name(text: str) -> str:
    """An output name template: '{stem}_x4' -> itself, once it is known to give a file name from {stem} (the
    input's name without its extension) and {ext} (that extension, without the dot); the format's suffix follows."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        sample = text.format(stem="photo", ext="jpg")
    except (ValueError, KeyError, IndexError):
        fields, sample = {"?"}, ""
    # A name starting with a dot would be hidden, and skipped by the next run's folder walk.
    if fields - set(NAME_FIELDS) or not sample.strip(". ") or sample.startswith(".") or "/" in sample or \
            "\\" in sample:
        raise ValueError(f"expected a file name from {{stem}} and {{ext}} without folders, e.g. '{{stem}}_x4' or "
                         f"'{{stem}}_{{ext}}', got {text!r}")
    return text


def format_bytes(count: float) -> str:
    """A byte count as people read it: 512 B, 3.0 GiB (the inverse of parse_bytes, to one decimal), up to EiB:
    what an absurd output size would need is told too."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if count < 1024 or unit == "EiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
