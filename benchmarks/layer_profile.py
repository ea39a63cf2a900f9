"""Where the native engine's time goes, layer by layer, in achieved GFLOP/s and, on AMX, as a share of the tile
unit's measured peak (the issue's "3x3 trunk convs at >= 45% of the bf16 tile peak").

    python benchmarks/layer_profile.py --model srresnet --size 128 --precision bf16 --path amx --peak

Each step of the engine is timed inside one call (`Engine.run_profiled`, uint8 [1, size, size, 3] in); the
median over --repeats calls is reported per layer, with its FLOPs (2 x multiply-adds, from the description) at
the resolution it runs at. --peak measures the tile unit's rate first (`_C.amx_peak`: four independent
accumulators, operands held in tiles, every core), which only runs where the CPU and OS grant AMX. Steps that
run together report together: a quantize step (int8) is counted with the layer it encodes, the banded last
upsampler with the tail, the image store as its own row.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name  # noqa: E402
from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.architecture import ARCHITECTURES, build  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.weights import load_weights, random_weights  # noqa: E402


def layer_flops(network, size: int) -> dict[int, float]:
    """FLOPs of each layer on a size x size input (the image store: none)."""
    pixels = size * size
    return {i: 2.0 * conv.multiply_adds_per_input_pixel() * pixels for i, conv in enumerate(network.layers)}


def profile(upscaler: Upscaler, size: int, repeats: int) -> dict[int, float]:
    """Median seconds per layer over ``repeats`` calls, after one warm-up call."""
    engine = upscaler.backend.engine
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    engine.run_profiled(image)
    samples: dict[int, list[float]] = defaultdict(list)
    for _ in range(repeats):
        per_layer: dict[int, float] = defaultdict(float)
        for layer, seconds in engine.run_profiled(image)[1]:
            per_layer[layer] += seconds
        for layer, seconds in per_layer.items():
            samples[layer].append(seconds)
    return {layer: statistics.median(values) for layer, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="srresnet", help="shipped model, .safetensors path, or 'random'")
    parser.add_argument("--architecture", default="srresnet", choices=sorted(ARCHITECTURES),
                        help="the architecture of --model random (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="input side in pixels (default: %(default)s)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    parser.add_argument("--path", default="auto", help="the native kernel path (default: auto)")
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak", action="store_true", help="measure the AMX tile peak and report shares of it")
    parser.add_argument("--calibration-images", help="int8: a folder of sample images for a model with no table")
    parser.add_argument("--json", help="write results here (default: benchmarks/results/layer-profile-<cpu>-...)")
    args = parser.parse_args(argv)

    weights = random_weights(build(args.architecture, {})) if args.model == "random" else load_weights(args.model)
    calibration = {"calibration_images": args.calibration_images} if args.calibration_images else {}
    upscaler = Upscaler(weights, backend="native", precision=args.precision, tile=args.size, path=args.path,
                        threads=args.threads, **calibration)
    engine = upscaler.backend.engine
    peak = None
    if args.peak:
        from srgan_fast import _C

        try:
            peak = _C.amx_peak(args.precision, engine.threads)
        except ValueError as exc:
            print(f"no tile peak: {exc}", file=sys.stderr)
    seconds = profile(upscaler, args.size, args.repeats)
    flops = layer_flops(weights.network, args.size)
    rows, pending = [], []  # layers run inside a later step (the banded upsampler) count with that step
    for layer in [*range(len(weights.network.layers)), -1]:
        if layer not in seconds:
            pending.append(layer)
            continue
        together, pending = pending + [layer], []
        time = seconds[layer]
        conv = weights.network.layers[layer] if layer >= 0 else None
        work = sum(flops.get(k, 0.0) for k in together)
        names = [weights.network.layers[k].name if k >= 0 else "image store" for k in together]
        row = {"layer": layer, "name": " + ".join(names), "ms": round(time * 1e3, 3),
               "gflop_per_s": round(work / time / 1e9, 1) if work else None}
        if conv:
            row["conv"] = f"{conv.kernel}x{conv.kernel} {conv.in_channels}->{conv.out_channels} at x{conv.level}"
        if peak and work:
            row["share_of_peak"] = round(work / time / peak, 3)
        rows.append(row)
    total = sum(seconds.values())
    print(f"{weights.network.describe()}\n{upscaler.backend.describe()}, {args.size}x{args.size} input, "
          f"{cpu_name()}" + (f", tile peak {peak / 1e12:.2f} TOP/s" if peak else ""))
    print(f"{'layer':>5} {'name':28s} {'conv':28s} {'ms':>9} {'GFLOP/s':>9} {'of peak':>8}")
    for row in rows:
        share = f"{row['share_of_peak']:.1%}" if "share_of_peak" in row else ""
        gflops = f"{row['gflop_per_s']:.1f}" if row["gflop_per_s"] else ""
        print(f"{row['layer']:>5} {row['name'][:28]:28s} {row.get('conv', ''):28s} {row['ms']:>9.3f} {gflops:>9} "
              f"{share:>8}")
    print(f"total {total * 1e3:.1f} ms, {sum(flops.values()) / total / 1e9:.1f} GFLOP/s effective")

    slug = re.sub(r"[^a-z0-9]+", "-", cpu_name().lower()).strip("-")
    # A weights file's stem: its path would put the result outside results/.
    model = f"{args.architecture}-random" if args.model == "random" else Path(args.model).stem
    path = Path(args.json or Path(__file__).parent / "results" /
                f"layer-profile-{slug}-{model}-{args.precision}-{engine.path}.json")
    from srgan_fast import _C

    features = {k: v for k, v in _C.cpu_info().items() if isinstance(v, bool)}
    result = {"cpu": cpu_name(), "cpu_features": features, "engine": upscaler.backend.describe(),
              "network": weights.network.describe(), "size": args.size, "repeats": args.repeats,
              "tile_peak_ops_per_s": peak, "total_ms": round(total * 1e3, 2),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "layers": rows}
    write_bytes_atomically(path, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
