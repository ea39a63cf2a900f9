"""Calibration tables for the native engine's int8 precision: one code range per layer output that an int8
conv reads (which convs those are is ``srgan_fast.architecture.int8_convs``, shared with TensorRT), measured by
the fp32 engine itself (torch-free) on crops of sample images. The engine runs int8 exactly the convs whose
input has codes.

Where a table comes from, in order:
  1. ``calibration_images`` given: calibrated from them, unless the cached table of these weights was made
     from the same images;
  2. a table shipped in the package (srgan_fast/pretrained/*.int8.json) for these weights;
  3. the cached table of these weights, from an earlier calibration;
otherwise int8 is refused on one line saying how to calibrate. The cache holds one table per weights hash:
``<cache>/native/int8-<weights sha256>.json`` (``SRGAN_FAST_CACHE_DIR``, else ``XDG_CACHE_HOME/srgan_fast``,
else ``~/.cache/srgan_fast``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from srgan_fast.backends.calibration import ActivationStats, calibration_tiles, image_files, images_sha256
from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.architecture import Network, int8_convs
from srgan_fast.weights import GeneratorWeights

TABLE_REVISION = 1
# Chosen on the validation split and the banding check (benchmarks/int8_quality.py): every method costs about
# 0.005 dB PSNR-Y, but clipping ones (percentile, mse) let smooth saturated gradients band by up to 20 levels
# of 8 bits; the extremes seen, widened by HEADROOM for content brighter or darker than the samples, 2.7.
METHOD = "minmax"
HEADROOM = 1.25
# With codes wider than u8 (AVX2, see code_max) the range can be wider at no visible cost: a saturated 16-bit
# gradient through srgan still met values past 1.25x the samples' (5.5 levels of 8 bits of banding) and none
# past 2x (0.5 levels), and 2x the range over 7339 codes is still steps 14x finer than 1.25x over 255.
WIDE_HEADROOM = 2.0
TILE = (96, 96)       # calibration crops: a few receptive fields wide, small enough to keep every map in memory
MAX_TILES = 48
_PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"


def cache_dir() -> Path:
    root = os.environ.get("SRGAN_FAST_CACHE_DIR")
    if root:
        return Path(root) / "native"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "srgan_fast" / "native"


def quant_for_range(low: float, high: float, code_max: int = 255) -> tuple[float, int]:
    """(scale, zero point) of codes 0..code_max covering HEADROOM x [low, high] (WIDE_HEADROOM past 255 codes),
    widened to hold 0 (the padding must be a code)."""
    headroom = HEADROOM if code_max <= 255 else WIDE_HEADROOM
    low, high = headroom * min(low, 0.0), headroom * max(high, 0.0)
    if high <= low:
        return 1.0, 0
    scale = (high - low) / code_max
    return scale, int(np.clip(round(-low / scale), 0, code_max))


def code_max(weights: GeneratorWeights, path: str = "auto") -> int:
    """The widest codes the int8 convs of ``path`` sum exactly for this network: 255 where the kernels take u8
    codes (AVX-512 VNNI); on AVX2, whose integer Winograd multiplies in s16 anyway, up to 13 bits (7339 at 64
    input channels) at no cost in instructions, 28x finer steps than 255 (see int8_winograd_kernels.h)."""
    from srgan_fast import _C

    by_name = {conv.name: conv for conv in weights.network.layers}
    widest = max((by_name[name].in_channels for name in int8_convs(weights.network)), default=1)
    return _C.int8_code_max(widest, path)


def build_engine(weights: GeneratorWeights, precision: str, int8_outputs=None, threads: int = 0,
                 int8_code_max: int = 255, path: str = "auto", **engine_options):
    """The bare engine (no tiler) at ``precision``, int8 with these codes (see int8_outputs); ``engine_options``:
    the other keywords of ``_C.Engine`` (fuse_dense_blocks, ...)."""
    from srgan_fast import _C
    from srgan_fast.backends.base import engine_layers

    network = weights.network
    return _C.Engine(engine_layers(weights), network.scale, network.image_skip or "none", precision=precision,
                     threads=threads, path=path, int8_outputs=int8_outputs, int8_code_max=int8_code_max,
                     **engine_options)


def coded_layers(network: Network) -> list[str]:
    """Names of the layers whose output an int8 conv reads as codes: the ones a table must cover (each part of a
    concatenation keeps its own codes)."""
    by_name = {conv.name: conv for conv in network.layers}
    return sorted({source for name in int8_convs(network) for source in by_name[name].inputs},
                  key=list(by_name).index)


def measure_ranges(weights: GeneratorWeights, tiles: np.ndarray, method: str = METHOD,
                   threads: int = 0) -> dict[str, list[float]]:
    """Layer name -> [low, high] of its output, from fp32 runs of the native engine on ``tiles`` [n, h, w, 3]."""
    names = coded_layers(weights.network)
    layers = weights.network.layers
    engine = build_engine(weights, "fp32", threads=threads)
    channels = [layer.result_channels for layer in layers]
    wanted = {i for i, layer in enumerate(layers) if layer.name in names}
    stats = ActivationStats(symmetric=False)

    def run(add):
        for tile in tiles:
            engine.run_observed(np.ascontiguousarray(tile[None]), channels,
                                lambda i, values, codes: add(layers[i].name, values) if i in wanted else None)

    run(stats.add_extremes)
    if method != "minmax":
        run(stats.add_histogram)
    return {name: [float(v) for v in stats.range(name, method)] for name in names}


def _read(path: Path, weights: GeneratorWeights) -> dict | None:
    """The table at ``path`` when it is this revision's, for these weights, covers them and holds finite ranges."""
    try:
        table = json.loads(path.read_text())
        ranges = table["ranges"]
        if (table["revision"] == TABLE_REVISION and table["weights_sha256"] == weights.sha256
                and set(ranges) == set(coded_layers(weights.network))
                and all(len(r) == 2 and all(math.isfinite(v) for v in r) for r in ranges.values())):
            return table
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def calibrate(weights: GeneratorWeights, images: str | Path | list[Path], method: str = METHOD,
              threads: int = 0) -> dict:
    """A table from the images in the folder ``images``, or a list of image files (the crops are random but
    seeded: reproducible)."""
    files = list(images) if isinstance(images, list) else image_files(images)
    return table_from_tiles(weights, calibration_tiles(files, TILE, MAX_TILES), method, threads,
                            images_sha256(files), len(files))


def table_from_tiles(weights: GeneratorWeights, tiles: np.ndarray, method: str = METHOD, threads: int = 0,
                     images_digest: str = "", images: int = 0) -> dict:
    """A table from crops already made ([n, h, w, 3] float32 in [0, 1]); images_digest and images say where they
    came from (images_sha256 of the files, and how many)."""
    return {"revision": TABLE_REVISION, "weights_sha256": weights.sha256, "model": weights.name, "method": method,
            "images_sha256": images_digest, "images": images, "tiles": len(tiles), "tile": list(tiles.shape[1:3]),
            "ranges": measure_ranges(weights, tiles, method, threads)}


def cached_table_path(weights: GeneratorWeights) -> Path:
    """Where the cache keeps the table of these weights."""
    return cache_dir() / f"int8-{weights.sha256}.json"


def write_table(path: str | Path, table: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, (json.dumps(table, indent=1) + "\n").encode())


def shipped_table(weights: GeneratorWeights) -> dict | None:
    for path in sorted(_PRETRAINED.glob("*.int8.json")):
        table = _read(path, weights)
        if table is not None:
            return table
    return None


def table_for(weights: GeneratorWeights, calibration_images: str | Path | None = None) -> dict:
    """The table int8 runs with (see the module docstring for the order); ValueError, one line, when none."""
    cached_path = cached_table_path(weights)
    cached = _read(cached_path, weights) if cached_path.exists() else None
    if calibration_images is not None:
        if cached is not None and cached["images_sha256"] == images_sha256(image_files(calibration_images)):
            return cached
        table = calibrate(weights, calibration_images)
        write_table(cached_path, table)
        return table
    table = shipped_table(weights) or cached
    if table is None:
        raise ValueError(f"int8 needs a calibration table for model {weights.name!r}, and none is shipped or cached "
                         "for these weights: give a folder of sample images (calibration_images=DIR, CLI "
                         "--calibration-images DIR)")
    return table


def int8_outputs(weights: GeneratorWeights, table: dict, code_max: int = 255) -> list[tuple[float, int] | None]:
    """The engine's int8_outputs: per layer, (scale, zero point) of its output's codes 0..code_max, or None."""
    return [quant_for_range(*table["ranges"][layer.name], code_max) if layer.name in table["ranges"] else None
            for layer in weights.network.layers]


def engine_options(weights: GeneratorWeights, table: dict, path: str = "auto") -> dict:
    """The int8 options of the engine on ``path``: the widest codes it sums exactly, and each layer's codes."""
    widest = code_max(weights, path)
    return {"int8_outputs": int8_outputs(weights, table, widest), "int8_code_max": widest}
