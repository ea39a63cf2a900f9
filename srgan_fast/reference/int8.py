"""Integer emulation, in NumPy, of the native engine's int8 3x3 conv (csrc/ops/cpu/int8_kernels.h, weights
packed by csrc/ops/packing_int8.cpp): what the kernel computes, written plainly, for the tests to hold it to.

Activations are codes 0..code_max (255, or wider on AVX2: srgan_fast.backends.native_int8.code_max),
real = scale * (code - zero_point); weights are symmetric codes with one scale per
output channel. The sum over taps and input channels is an exact integer (int64 here, s32 in the kernel), so
the two agree exactly up to it; after it both do the same float32 steps (scale, bias, shuffle, activation,
skip), and a result that lands within float rounding of a code boundary may round to the neighbouring code:
the engine matches this to within 1 code.
"""
from __future__ import annotations

import numpy as np


def quantize(values: np.ndarray, scale: float, zero_point: int, code_max: int = 255) -> np.ndarray:
    """float32 values -> codes 0..code_max (uint8, or uint16 past 255): round half to even of
    values * (1 / scale), plus zero_point, clamped."""
    inv_scale = np.float32(1) / np.float32(scale)
    scaled = np.asarray(values, np.float32) * inv_scale
    return np.clip(np.rint(scaled) + zero_point, 0, code_max).astype(np.uint8 if code_max <= 255 else np.uint16)


def weight_codes(weight: np.ndarray, weight_max: int) -> tuple[np.ndarray, np.ndarray]:
    """[cout, cin, 3, 3] float32 -> (int codes in [-weight_max, weight_max], float32 scale per output channel)."""
    weight = np.asarray(weight, np.float32)
    max_abs = np.abs(weight).reshape(len(weight), -1).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / np.float32(weight_max), np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint(weight / scales[:, None, None, None]), -weight_max, weight_max).astype(np.int64)
    return codes, scales


def _integer_conv3x3(centred: np.ndarray, w_codes: np.ndarray) -> np.ndarray:
    """The exact sums: centred codes [n, h, w, cin] (code - zero point; the padding is real zero) conv weight
    codes [cout, cin, 3, 3] -> int64 [n, h, w, cout]."""
    n, h, w, _ = centred.shape
    padded = np.pad(centred, ((0, 0), (1, 1), (1, 1), (0, 0)))
    acc = np.zeros((n, h, w, len(w_codes)), np.int64)
    for ky in range(3):
        for kx in range(3):
            acc += padded[:, ky:ky + h, kx:kx + w, :] @ w_codes[:, :, ky, kx].T
    return acc


def activation(y: np.ndarray, slopes: np.ndarray | None) -> np.ndarray:
    """PReLU / LeakyReLU by per-channel ``slopes``; none: the identity."""
    return y if slopes is None else np.where(y < 0, y * np.asarray(slopes, np.float32), y)


def conv3x3_int8(codes: np.ndarray, scale: float, zero_point: int, weight: np.ndarray, bias: np.ndarray, *,
                 weight_max: int, shuffle: int = 1, slopes: np.ndarray | None = None,
                 residual: np.ndarray | None = None) -> np.ndarray:
    """One int8 layer: codes [n, h, w, cin] (uint8 or uint16) of its input -> its float32 result
    [n, h*s, w*s, cout/s²].

    The same epilogue order as every engine (srgan_fast.architecture.layers): conv + bias, PixelShuffle(shuffle),
    PReLU (slopes per result channel), + residual. Padding is real zero, i.e. the zero point's code.
    """
    w_codes, w_scales = weight_codes(weight, weight_max)
    acc = _integer_conv3x3(codes.astype(np.int64) - zero_point, w_codes)
    y = acc.astype(np.float32) * (np.float32(scale) * w_scales) + np.asarray(bias, np.float32)
    if shuffle > 1:
        n, h, w, _ = codes.shape
        c = y.shape[-1] // (shuffle * shuffle)
        y = y.reshape(n, h, w, c, shuffle, shuffle).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * shuffle, w * shuffle, c)
    y = activation(y, slopes)
    if residual is not None:
        y = y + np.asarray(residual, np.float32)
    return y.astype(np.float32)


def dense_conv_int8(parts: list[tuple[np.ndarray, float, int]], weight: np.ndarray, bias: np.ndarray, *,
                    weight_max: int, slopes: np.ndarray | None = None) -> np.ndarray:
    """One conv of a fused int8 dense block (csrc/ops/cpu/amx_dense_block_int8_kernels.h, weights packed by
    pack_dense_conv_int8 in csrc/ops/packing_int8.cpp): the concatenation of ``parts``, each (codes [n, h, w, c],
    scale, zero point) with codes of its own -> float32 [n, h, w, cout], conv + bias, then LeakyReLU by ``slopes``.

    Each weight is multiplied by its input channel's scale before the output channel's weights are quantized,
    so the sum over every part is one exact integer: sum of weight code * (code - that part's zero point)."""
    scales = np.concatenate([np.full(codes.shape[-1], scale, np.float32) for codes, scale, _ in parts])
    folded = np.asarray(weight, np.float32) * scales[None, :, None, None]
    w_codes, w_scales = weight_codes(folded, weight_max)
    centred = np.concatenate([codes.astype(np.int64) - zero_point for codes, _, zero_point in parts], axis=-1)
    y = _integer_conv3x3(centred, w_codes).astype(np.float32) * w_scales + np.asarray(bias, np.float32)
    return activation(y, slopes).astype(np.float32)
