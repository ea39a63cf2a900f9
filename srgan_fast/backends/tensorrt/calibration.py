"""Activation ranges for int8/fp8 engines, from a folder of sample images, with the result cached as a table.

TensorRT 11 removed implicit (calibrator-driven) int8; engines now take explicit Quantize/DequantizeLinear
nodes whose scales we compute ourselves (this also works on TensorRT 10). The ranges are measured by running
the fp32 graph in onnxruntime with the input of every quantized conv exposed as an output, and chosen by the
shared calibration (srgan_fast.backends.calibration), symmetric:

  int8  entropy calibration (see calibration.entropy_threshold).
  fp8   the largest |x| seen: E4M3's floating-point grid already keeps small values fine, so nothing is clipped.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srgan_fast.backends.calibration import ActivationStats, calibration_tiles, image_files, images_sha256
from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.architecture import int8_convs
from srgan_fast.backends.onnx_graph import build_onnx_model
from srgan_fast.backends.tensorrt.cache import CacheWarning, cache_key
from srgan_fast.weights import GeneratorWeights

# 2: the convs quantized are srgan_fast.architecture.int8_convs (were all but the first and last).
CALIBRATION_REVISION = 2


def measure_activation_amax(weights: GeneratorWeights, tiles: np.ndarray, kind: str, *, bins: int = 2048,
                            batch: int = 8, progress: bool = False) -> dict[str, float]:
    """Conv name -> amax for its input, from fp32 runs over ``tiles`` ([n, h, w, 3] float32 in [0, 1]).

    progress: a bar over the tiles of each pass on stderr (the full model over 64 tiles of 128² takes minutes).
    """
    import onnxruntime

    names = int8_convs(weights.network)
    model = build_onnx_model(weights, tile=tiles.shape[1:3], precision="fp32", io="float", expose=names)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()][1:]
    method = "minmax" if kind == "fp8" else "entropy"
    passes = 1 if method == "minmax" else 2
    bar = tqdm(total=passes * len(tiles), desc=f"calibrating {kind}", unit="tile", disable=not progress,
               leave=False, dynamic_ncols=True)

    def activations():
        for start in range(0, len(tiles), batch):
            x = np.ascontiguousarray(tiles[start:start + batch].transpose(0, 3, 1, 2))
            values = dict(zip(names, session.run(output_names, {"image": x})))
            bar.update(len(x))
            yield values

    stats = ActivationStats(symmetric=True, bins=bins)
    with bar:
        for values in activations():
            for name in names:
                stats.add_extremes(name, values[name])
        if method != "minmax":
            for values in activations():  # second pass: histograms over the now known range
                for name in names:
                    stats.add_histogram(name, values[name])
    return {name: stats.range(name, method)[1] for name in names}


def table_sha256(amax: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(amax, sort_keys=True).encode()).hexdigest()


def calibrate(weights: GeneratorWeights, images: str | Path, tile: tuple[int, int], kind: str,
              cache_dir: Path, *, max_tiles: int = 64, seed: int = 0, progress: bool = False) -> dict[str, float]:
    """The activation amax table for ``kind`` ("int8" | "fp8"), from the cache when the same inputs made one;
    progress: a bar while it is measured (see measure_activation_amax)."""
    if kind not in ("int8", "fp8"):
        raise ValueError(f"calibration kind must be int8 or fp8, got {kind!r}")
    files = image_files(images)
    fields = {"revision": CALIBRATION_REVISION, "kind": kind, "weights_sha256": weights.sha256,
              "images_sha256": images_sha256(files), "tile": list(tile), "max_tiles": max_tiles, "seed": seed}
    key = cache_key(fields)
    path = Path(cache_dir) / f"calibration-{key}.json"
    names = set(int8_convs(weights.network))
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
    amax = measure_activation_amax(weights, calibration_tiles(files, tile, max_tiles, seed), kind, progress=progress)
    amax = {k: v if v > 0 else 1.0 for k, v in amax.items()}  # an all-zero input: any scale codes it exactly
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, json.dumps({"key": key, "fields": fields, "amax": amax}, indent=1).encode())
    return amax
