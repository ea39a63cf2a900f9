"""What the network does not see: input validation, gray and alpha around the 3-channel RGB model.

Accepted images: NumPy arrays H×W, H×W×1, H×W×3 or H×W×4 of uint8, uint16 or float32 in [0, 1], or PIL images.
The dtype decides the range: uint8 is 0..255, uint16 is 0..65535 (never guessed from the values), float32 is 0..1.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from srgan_fast import architecture

ACCEPTED_DTYPES = (np.uint8, np.uint16, np.float32)
FULL_SCALE = {np.dtype(name): value for name, value in architecture.FULL_SCALE.items()}
# BT.601 luma, the weights PIL uses for RGB -> L: how the model's RGB output returns to gray.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# PIL modes read as arrays directly, and the array dtype they map to.
PIL_MODES = {"L": np.uint8, "RGB": np.uint8, "RGBA": np.uint8, "I;16": np.uint16, "I;16L": np.uint16,
             "I;16B": np.uint16}
# PIL modes converted first: mode -> (the mode the model's input is made in, the mode given back).
PIL_CONVERTED_MODES = {"1": ("L", "L"), "LA": ("RGBA", "LA"), "La": ("LA", "LA"), "P": ("RGB", "RGB"),
                       "PA": ("RGBA", "RGBA"), "RGBa": ("RGBA", "RGBA"), "RGBX": ("RGB", "RGB"),
                       "CMYK": ("RGB", "RGB"), "YCbCr": ("RGB", "RGB"), "HSV": ("RGB", "RGB")}
# Image.info entries that still describe the upscaled image (a resolution in dpi, say, would not).
PIL_METADATA_KEYS = ("icc_profile", "exif")


class InputError(ValueError):
    """An image that srgan_fast cannot upscale; the message names what was received and what is accepted."""


def native_byte_order(image: np.ndarray) -> np.ndarray:
    """An accepted dtype in the other byte order (e.g. '>u2' from a big-endian file) as this machine's."""
    if image.dtype.byteorder not in "=|" and image.dtype.newbyteorder("=") in ACCEPTED_DTYPES:
        return image.astype(image.dtype.newbyteorder("="))
    return image


def validate_array(image: np.ndarray) -> np.ndarray:
    """Check shape, dtype and values; returns the image as H×W×C (C in 1, 3, 4)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a NumPy array or PIL image, got {type(image).__name__}")
    image = native_byte_order(image)
    if image.dtype not in ACCEPTED_DTYPES:
        hint = " (convert with .astype(np.float32))" if image.dtype.kind == "f" else ""
        raise InputError(f"expected dtype uint8, uint16 or float32, got {image.dtype}{hint}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"expected an H×W or H×W×C array with C in {{1, 3, 4}}, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"expected a non-empty image, got shape {image.shape}")
    if image.dtype == np.float32:
        if not np.isfinite(image).all():
            raise InputError(f"float32 image contains NaN or Inf ({int(np.count_nonzero(~np.isfinite(image)))} values)")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"float32 image must be in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    return image


def from_pil(image: Image.Image) -> tuple[np.ndarray, str]:
    """PIL image -> (H×W×C array, mode to give back). Palette, 1-bit and other colour spaces come back as
    RGB(A)/L (``PIL_CONVERTED_MODES``); premultiplied La/RGBa come back straight (LA/RGBA)."""
    mode = image.mode
    if mode in PIL_MODES:
        return np.asarray(image).astype(PIL_MODES[mode]), ("I;16" if PIL_MODES[mode] == np.uint16 else mode)
    if mode in PIL_CONVERTED_MODES:
        target, give_back = PIL_CONVERTED_MODES[mode]
        if mode == "P" and "transparency" in image.info:
            target = give_back = "RGBA"
        if mode == "La":  # Pillow converts La only to LA; LA then goes the LA way
            image, mode, (target, give_back) = image.convert("LA"), "LA", PIL_CONVERTED_MODES["LA"]
        return np.asarray(image.convert(target)), give_back
    if mode == "LAB":
        raise InputError("unsupported PIL image mode 'LAB': CIELAB needs a colour transform to become RGB; "
                         "convert it with PIL.ImageCms first")
    accepted = ", ".join(list(PIL_MODES) + list(PIL_CONVERTED_MODES))
    raise InputError(f"unsupported PIL image mode {mode!r}: expected one of {accepted}")


def to_pil(array: np.ndarray, mode: str) -> Image.Image:
    if mode == "LA":
        return Image.fromarray(array).convert("LA")
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def copy_pil_metadata(source: Image.Image, result: Image.Image) -> None:
    """Carry the colour profile and EXIF of ``source`` onto its upscaled ``result``."""
    for key in PIL_METADATA_KEYS:
        if key in source.info:
            result.info[key] = source.info[key]


def gray_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=2)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 1] of the same dtype, BT.601 luma."""
    gray = rgb.astype(np.float32) @ LUMA_WEIGHTS
    return cast_like(gray[..., None], rgb.dtype)


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values in ``dtype``'s own range (0..255, 0..65535, 0..1) -> that dtype, rounded and clamped."""
    if dtype == np.float32:
        return np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.clip(np.rint(values), 0, FULL_SCALE[np.dtype(dtype)]).astype(dtype)


def rescale_levels(array: np.ndarray, from_max: int, to_max: int, dtype) -> np.ndarray:
    """Integer levels 0..from_max -> 0..to_max of ``dtype``, rounded to nearest, exactly (integer arithmetic),
    in blocks of rows so that the uint32 temporaries stay small (e.g. 16 -> 8 bits, 10 bits -> full 16)."""
    result = np.empty(array.shape, dtype=dtype)
    step = max(1, (1 << 22) // max(1, array[0].size))
    for start in range(0, len(array), step):
        block = array[start:start + step].astype(np.uint32)
        result[start:start + step] = (block * to_max + from_max // 2) // from_max
    return result


def flatten_alpha(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """H×W×4 uint8/uint16 -> H×W×3 of the same dtype: the image laid over an opaque ``background`` (0..255 per
    channel), for formats without alpha. Fully transparent pixels become the background, so the colour the
    upscaler gave them (``fill_transparent``) never shows. Integer arithmetic, rounded, in blocks of rows."""
    top = int(np.iinfo(rgba.dtype).max)
    colour = np.array(background, dtype=np.uint64) * (top // 255)  # 8-bit levels at this depth (x257 for 16 bits)
    result = np.empty(rgba.shape[:2] + (3,), dtype=rgba.dtype)
    step = max(1, (1 << 20) // max(1, rgba[0].size))
    for start in range(0, len(rgba), step):
        block = rgba[start:start + step].astype(np.uint64)
        alpha = block[..., 3:]
        result[start:start + step] = (block[..., :3] * alpha + colour * (top - alpha) + top // 2) // top
    return result


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give fully transparent pixels the colour of their visible neighbourhood (push-pull over a pyramid).

    The colour stored under alpha = 0 is arbitrary, often black. The network mixes colours over ~40 pixels,
    so black there would bleed into the visible edge as a dark fringe; filling it with nearby visible colour
    removes that. Visible pixels (alpha > 0) keep their colour exactly.
    rgb: [H, W, 3] any accepted dtype; alpha: [H, W] same dtype. Returns a new rgb of that dtype.
    """
    weight = alpha.astype(np.float32) / FULL_SCALE[alpha.dtype]
    if weight.min() > 0 or weight.max() == 0:
        return rgb
    colour = rgb.astype(np.float32)
    filled = _push_pull(colour * weight[..., None], weight)
    out = np.where((weight > 0)[..., None], colour, filled)
    return cast_like(out, rgb.dtype)


def _push_pull(weighted: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Colours of weighted sums; where the weight is zero, the colour of the next coarser level."""
    safe = np.maximum(weight, 1e-12)[..., None]
    colour = weighted / safe
    h, w = weight.shape
    if (weight > 0).all() or (h == 1 and w == 1):
        return colour
    pad = ((0, h % 2), (0, w % 2))
    weighted_even = np.pad(weighted, pad + ((0, 0),))
    weight_even = np.pad(weight, pad)
    hh, ww = weight_even.shape[0] // 2, weight_even.shape[1] // 2
    coarse_weighted = weighted_even.reshape(hh, 2, ww, 2, 3).sum(axis=(1, 3))
    coarse_weight = weight_even.reshape(hh, 2, ww, 2).sum(axis=(1, 3))
    coarse = _push_pull(coarse_weighted, coarse_weight)
    up = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w]
    return np.where((weight > 0)[..., None], colour, up)


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """[H, W] -> [sH, sW] of the same dtype: bicubic in float, clamped (alpha has no texture to invent)."""
    values = Image.fromarray(alpha.astype(np.float32) / FULL_SCALE[alpha.dtype])  # mode "F"
    h, w = alpha.shape
    up = np.asarray(values.resize((scale * w, scale * h), Image.Resampling.BICUBIC))
    return cast_like(up * FULL_SCALE[alpha.dtype], alpha.dtype)
