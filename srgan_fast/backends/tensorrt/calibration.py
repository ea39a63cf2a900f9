"""Activation ranges for int8/fp8 engines, from a folder of sample images, with the result cached as a table.

TensorRT 11 removed implicit (calibrator-driven) int8; engines now take explicit Quantize/DequantizeLinear
nodes whose scales we compute ourselves (this also works on TensorRT 10). The ranges are measured by running
the fp32 graph in onnxruntime with the input of every quantized conv exposed as an output:

  int8  entropy calibration: the clipping threshold T that minimises KL(P || Q), where P is the histogram of
        |x| with everything beyond T folded into its last bin, and Q is P's in-range part merged into 128
        levels (what a symmetric int8 code can represent) and spread back over the bins P uses.
  fp8   the largest |x| seen: E4M3's floating-point grid already keeps small values fine, so nothing is clipped.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.backends.onnx_graph import build_onnx_model, quantized_conv_names
from srgan_fast.backends.tensorrt.cache import CacheWarning, cache_key
from srgan_fast.weights import GeneratorWeights

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CALIBRATION_REVISION = 1
INT8_LEVELS = 128  # magnitudes 0..127 of a symmetric int8 code


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"calibration images: expected a folder of images, got {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration images: no {', '.join(IMAGE_SUFFIXES)} files in {folder}")
    return files


def images_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def calibration_tiles(files: list[Path], tile: tuple[int, int], max_tiles: int = 64,
                      seed: int = 0) -> np.ndarray:
    """Random tile-sized RGB crops from the images, spread evenly over them: [n, h, w, 3] float32 in [0, 1]."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = tile
    per_image = max(1, math.ceil(max_tiles / len(files)))
    crops = []
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        # Images smaller than a tile are mirrored out to it, as the tiler pads image borders.
        pad_h, pad_w = max(0, h - pixels.shape[0]), max(0, w - pixels.shape[1])
        if pad_h or pad_w:
            pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        for _ in range(per_image):
            top = rng.integers(0, pixels.shape[0] - h + 1)
            left = rng.integers(0, pixels.shape[1] - w + 1)
            crops.append(pixels[top:top + h, left:left + w])
    return np.stack(crops[:max_tiles])


def entropy_threshold(hist: np.ndarray, bin_width: float, levels: int = INT8_LEVELS) -> float:
    """The |x| clipping threshold that loses least information when |x| is coded on ``levels`` uniform steps.

    hist: counts of |x| in equal bins of ``bin_width`` starting at 0.
    """
    hist = np.asarray(hist, dtype=np.float64)
    if len(hist) <= levels or hist.sum() == 0:
        return len(hist) * bin_width
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = hist[i:].sum()
    best_bins, best_kl = len(hist), math.inf
    for n in range(levels, len(hist) + 1):
        kept = hist[:n]
        p = kept.copy()
        if n < len(hist):
            p[-1] += tail[n]
        edges = np.round(np.linspace(0, n, levels + 1)).astype(np.int64)
        group = np.repeat(np.arange(levels), np.diff(edges))
        used = p > 0
        group_mass = np.bincount(group, weights=kept, minlength=levels)
        group_used = np.bincount(group, weights=used, minlength=levels)
        q = np.where(used, group_mass[group] / np.maximum(group_used[group], 1), 0.0)
        # Where P has mass and Q none (only the folded outliers can do that), a tiny Q keeps KL finite but large.
        q = np.where(used & (q == 0), 1e-9 * p.sum(), q)
        p_norm, q_norm = p[used] / p.sum(), q[used] / q.sum()
        kl = float(np.sum(p_norm * np.log(p_norm / q_norm)))
        if kl < best_kl:
            best_bins, best_kl = n, kl
    return best_bins * bin_width


def measure_activation_amax(weights: GeneratorWeights, tiles: np.ndarray, kind: str, *, bins: int = 2048,
                            batch: int = 8) -> dict[str, float]:
    """Conv name -> amax for its input, from fp32 runs over ``tiles`` ([n, h, w, 3] float32 in [0, 1])."""
    import onnxruntime

    names = quantized_conv_names(weights.network)
    model = build_onnx_model(weights, tile=tiles.shape[1:3], precision="fp32", io="float", expose=names)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()][1:]

    def activations():
        for start in range(0, len(tiles), batch):
            x = np.ascontiguousarray(tiles[start:start + batch].transpose(0, 3, 1, 2))
            yield dict(zip(names, session.run(output_names, {"image": x})))

    absmax = dict.fromkeys(names, 0.0)
    for values in activations():
        for name in names:
            absmax[name] = max(absmax[name], float(np.abs(values[name]).max()))
    if kind == "fp8":
        return absmax
    hists = {name: np.zeros(bins, np.int64) for name in names}
    for values in activations():  # second pass: histograms over the now known range
        for name in names:
            hists[name] += np.histogram(np.abs(values[name]), bins=bins, range=(0.0, absmax[name] or 1.0))[0]
    return {name: entropy_threshold(hists[name], (absmax[name] or 1.0) / bins) for name in names}


def table_sha256(amax: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(amax, sort_keys=True).encode()).hexdigest()


def calibrate(weights: GeneratorWeights, images: str | Path, tile: tuple[int, int], kind: str,
              cache_dir: Path, *, max_tiles: int = 64, seed: int = 0) -> dict[str, float]:
    """The activation amax table for ``kind`` ("int8" | "fp8"), from the cache when the same inputs made one."""
    if kind not in ("int8", "fp8"):
        raise ValueError(f"calibration kind must be int8 or fp8, got {kind!r}")
    files = image_files(images)
    fields = {"revision": CALIBRATION_REVISION, "kind": kind, "weights_sha256": weights.sha256,
              "images_sha256": images_sha256(files), "tile": list(tile), "max_tiles": max_tiles, "seed": seed}
    key = cache_key(fields)
    path = Path(cache_dir) / f"calibration-{key}.json"
    names = set(quantized_conv_names(weights.network))
    if path.exists():
        try:
            table = json.loads(path.read_text())
            amax = {k: float(v) for k, v in table["amax"].items()}
            if table["key"] == key and set(amax) == names and all(math.isfinite(v) and v > 0 for v in amax.values()):
                return amax
            reason = "it does not match these weights/images or holds invalid ranges"
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"unreadable ({exc})"
        warnings.warn(f"calibration table {path} is unusable: {reason}; recalibrating", CacheWarning, stacklevel=2)
    amax = measure_activation_amax(weights, calibration_tiles(files, tile, max_tiles, seed), kind)
    amax = {k: v if v > 0 else 1.0 for k, v in amax.items()}  # an all-zero input: any scale codes it exactly
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, json.dumps({"key": key, "fields": fields, "amax": amax}, indent=1).encode())
    return amax
