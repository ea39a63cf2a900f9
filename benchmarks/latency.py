"""Latency of ``Upscaler.upscale`` for every available backend × precision × input size, side by side.

    python benchmarks/latency.py --sizes 128 512 --repeats 5 [--device cpu] [--json out.json]
    python benchmarks/latency.py --device cuda --backends cuda torch --precisions fp16 --sizes 540x960

Each configuration is warmed up, then the configurations are timed in interleaved rounds (one call of each per
round), so that a change in machine load hits all of them alike; the median per configuration is reported.
Ratios are against the baseline row (torch fp32 channels_last), measured in this same run. Effective GFLOP/s
counts the network's 4.44 MFLOP per input pixel (16 blocks, 64 channels), not the tiling overhead, which is
reported on its own.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.backends import availability, get_backend_class  # noqa: E402
from srgan_fast.weights import (FORMAT, GeneratorWeights, expected_tensor_shapes, load_weights,  # noqa: E402
                                tensors_sha256)

BASELINE = ("torch", "fp32", "channels_last")


def flops_per_input_pixel(weights: GeneratorWeights) -> float:
    """Multiply-adds × 2 of every conv, per input pixel, counting each conv at the resolution it runs at."""
    total = 0.0
    for name, tensor in weights.tensors.items():
        if tensor.ndim != 4:
            continue
        out_ch, in_ch, kh, kw = tensor.shape
        pixels = {"upsample.1": 4, "tail": 16}.get(name.rsplit(".", 2)[0], 1)
        total += 2.0 * out_ch * in_ch * kh * kw * pixels
    return total


def random_weights(num_blocks: int = 16, channels: int = 64) -> GeneratorWeights:
    """The real architecture with random weights: timing does not depend on the values."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in expected_tensor_shapes(num_blocks, channels).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else 1
        tensors[name] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32) if len(shape) == 4 \
            else np.full(shape, 0.1, np.float32)
    metadata = {"format": FORMAT, "name": "random", "num_blocks": str(num_blocks), "channels": str(channels),
                "tensors_sha256": tensors_sha256(tensors)}
    return GeneratorWeights(tensors, metadata)


def configurations(device: str, backends: list[str] | None, precisions: list[str] | None):
    """(backend, precision, variant, backend options) for everything runnable here."""
    rows = []
    for name, reason in availability().items():
        if reason is not None or (backends and name not in backends):
            continue
        cls = get_backend_class(name)
        if device.split(":")[0] not in cls.auto_priority:
            continue
        for precision in cls.supported_precisions(device):
            if precisions and precision not in precisions:
                continue
            if name == "torch":
                rows.append((name, precision, "channels_last", {"channels_last": True}))
                if precision == "fp32":
                    rows.append((name, precision, "nchw", {"channels_last": False}))
            else:
                rows.append((name, precision, "", {}))
    return rows


def parse_size(text: str) -> tuple[int, int]:
    """'512' (square) or 'HxW' (e.g. 540x960, one 4K output frame) -> (h, w)."""
    try:
        h, w = (int(v) for v in text.lower().split("x")) if "x" in text.lower() else (int(text),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size N or HxW (e.g. 512 or 540x960), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return h, w


def machine_description(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        pass
    if device.startswith("cuda"):
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(device)
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True).stdout.strip()
        except Exception as exc:  # noqa: BLE001 - description only
            info["gpu"] = f"unknown ({exc})"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="srresnet",
                        help="shipped model name, .safetensors path, or 'random' (the architecture, random values)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(128, 128), (512, 512)],
                        help="input sizes: N (square) or HxW")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", nargs="*", help="only these backends")
    parser.add_argument("--precisions", nargs="*", help="only these precisions")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tile", type=int, help="tile core size (default: automatic)")
    parser.add_argument("--json", help="write results here (default: benchmarks/results/latency-<host>-<time>.json)")
    args = parser.parse_args(argv)

    weights = random_weights() if args.model == "random" else load_weights(args.model)
    flops = flops_per_input_pixel(weights)
    configs = configurations(args.device, args.backends, args.precisions)
    upscalers = {}
    for backend, precision, variant, options in configs:
        upscalers[(backend, precision, variant)] = Upscaler(weights, backend=backend, device=args.device,
                                                            precision=precision, tile=args.tile, **options)
    results = []
    rng = np.random.default_rng(0)
    for h, w in args.sizes:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        times: dict[tuple, list[float]] = {key: [] for key in upscalers}
        for key, upscaler in upscalers.items():
            for _ in range(args.warmup):
                upscaler.upscale(image)
        for _ in range(args.repeats):
            for key, upscaler in upscalers.items():
                start = time.perf_counter()
                upscaler.upscale(image)
                times[key].append(time.perf_counter() - start)
        for key, samples in times.items():
            ms = statistics.median(samples) * 1e3
            plan = upscalers[key].plan((h, w))
            size = h if h == w else f"{h}x{w}"
            results.append({"backend": key[0], "precision": key[1], "variant": key[2], "size": size,
                            "ms": round(ms, 2), "ms_min": round(min(samples) * 1e3, 2),
                            "megapixels_per_s": round(h * w / ms / 1e3, 4),
                            "output_megapixels_per_s": round(16 * h * w / ms / 1e3, 4),
                            "effective_gflops": round(flops * h * w / ms / 1e6, 1),
                            "tile_windows": plan.num_windows, "tile_window_hw": list(plan.window_hw),
                            "tiling_overhead": round(plan.overhead, 3), "repeats": args.repeats})

    print_table(results)
    report = {"machine": machine_description(args.device), "device": args.device, "model": weights.name,
              "flops_per_input_pixel": flops, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "results": results}
    out = Path(args.json) if args.json else (Path(__file__).parent / "results" /
                                             f"latency-{platform.node()}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(out, json.dumps(report, indent=2).encode())
    print(f"\nwrote {out}")
    return 0


def print_table(results: list[dict]) -> None:
    header = (f"{'size':>9} {'backend':12} {'precision':9} {'variant':14} {'median ms':>10} {'MP/s in':>8} "
              f"{'GFLOP/s':>8} {'vs base':>8} {'windows':>8} {'overhead':>8}")
    print(header)
    print("-" * len(header))
    for size in dict.fromkeys(r["size"] for r in results):
        rows = [r for r in results if r["size"] == size]
        base = next((r["ms"] for r in rows if (r["backend"], r["precision"], r["variant"]) == BASELINE), None)
        for r in sorted(rows, key=lambda r: r["ms"]):
            ratio = f"{base / r['ms']:.2f}x" if base else "-"
            print(f"{size!s:>9} {r['backend']:12} {r['precision']:9} {r['variant']:14} {r['ms']:>10.1f} "
                  f"{r['megapixels_per_s']:>8.3f} {r['effective_gflops']:>8.1f} {ratio:>8} {r['tile_windows']:>8} "
                  f"{r['tiling_overhead']:>8.3f}")


if __name__ == "__main__":
    sys.exit(main())
