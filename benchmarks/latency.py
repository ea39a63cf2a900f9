"""Latency of ``Upscaler.upscale`` for every available backend × precision × input size, side by side.

    python benchmarks/latency.py --sizes 128 512 --repeats 5 [--device cpu] [--json out.json]
    python benchmarks/latency.py --device cuda --backends cuda torch --precisions fp16 --sizes 540x960

Each configuration is warmed up, then the configurations are timed in interleaved rounds (one call of each per
round), so that a change in machine load hits all of them alike; the median per configuration is reported.
Ratios are against the baseline row (torch fp32 channels_last on CPUs; on GPUs the strongest torch anchor of
the same precision, see below), measured in this same run. Effective GFLOP/s counts the network's FLOPs per input
pixel from its description (4.44 MFLOP for SRResNet-16, 64 channels), not the tiling overhead, which is reported
on its own.

On a GPU, torch runs as a user who cares about speed would run it too: channels_last alone, with
``torch.backends.cudnn.benchmark`` on (set around that configuration's calls only), and through
``torch.compile(mode="max-autotune")`` (CUDA graphs on), each warmed up before timing. Every GPU row reports
both host-to-host ``Upscaler.upscale`` (``ms``) and the GPU time of the forward alone (``gpu_forward_ms``:
CUDA events around the model on a device tensor for torch; the engine's own graph-replay timing for cuda).

On a CPU, OpenVINO runs beside the backends where it is installed (``pip install openvino``; a benchmark
dependency only): the project's ONNX graph with io="uint8" (uint8 in and out, as the other rows), reshaped to
each size and compiled at fp32 and at bf16 (``benchmarks/int8_cpu.py``'s ``openvino_paths``; a bf16 that
OpenVINO does not honour on this CPU is labelled with what it ran as), on the whole image. ``--backends`` and
``--precisions`` select its rows by the name ``openvino``. Every row records ``peak_rss_mib``: the whole
process's peak RSS during its calls (the kernel's high-water mark, reset before each call; Linux), which
counts what the other rows hold resident: run one row per process (``--backends native --precisions fp32``)
for a configuration's own peak.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.int8_cpu import openvino_paths  # noqa: E402
from benchmarks.machine import cpu_details, cpu_name  # noqa: E402
from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.architecture import ARCHITECTURES, build  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.backends import availability, get_backend_class  # noqa: E402
from srgan_fast.backends.onnx_graph import build_onnx_model  # noqa: E402
from srgan_fast.options import parse_size  # noqa: E402
from srgan_fast.tiler.plan import plan_tiles  # noqa: E402
from srgan_fast.tiler.seams import SeamGeometry  # noqa: E402
from srgan_fast.weights import load_weights, random_weights  # noqa: E402

BASELINE = ("torch", "fp32", "channels_last")
CUDNN_BENCHMARK = "channels_last+cudnn.benchmark"
TORCH_GPU_ANCHORS = ("channels_last", CUDNN_BENCHMARK, "compile-max-autotune")


@contextlib.contextmanager
def cudnn_benchmark(variant: str):
    """cuDNN autotuning on for the configuration that asks for it, off for every other (it is a global flag)."""
    import torch

    torch.backends.cudnn.benchmark = variant == CUDNN_BENCHMARK
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = False


class WholeImage:
    """A peer that runs outside Upscaler (OpenVINO) on the whole image, with the two Upscaler methods used here."""

    device = "cpu"

    def __init__(self, run):
        self.run = run  # uint8 [1, h, w, 3] -> uint8 [1, 4h, 4w, 3]

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.run(image[None])[0]

    def plan(self, image_hw: tuple[int, int]):
        return plan_tiles(image_hw, image_hw, SeamGeometry.plain(0))  # one window


def openvino_runs(weights, hw: tuple[int, int], precisions: list[str] | None) -> dict:
    """OpenVINO at fp32 and bf16 on our uint8 ONNX graph reshaped to hw: key -> WholeImage (what cannot run is
    printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(build_onnx_model(weights, io="uint8").SerializeToString())
        paths = openvino_paths(onnx_path, weights.network, None, hw, os.cpu_count() or 1, {})
    runs = {}
    for name, run in paths.items():
        if not callable(run):
            print(f"{name}: {run}")
            continue
        backend, precision, *ran_as = name.split(" ", 2)  # "openvino bf16 (ran as f32)"
        if not precisions or precision in precisions:
            runs[(backend, precision, "".join(ran_as).strip("()"))] = WholeImage(run)
    return runs


def reset_peak_rss() -> bool:
    """Restart the kernel's count of this process's peak RSS (VmHWM) from its RSS now; False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM) since the last reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def timed_upscale(key: tuple, upscaler: Upscaler, image: np.ndarray) -> tuple[float, int | None]:
    """Seconds of one host-to-host ``upscale``, and the process's peak RSS during it (bytes; None off Linux)."""
    context = cudnn_benchmark(key[2]) if key[0] == "torch" and upscaler.device.startswith("cuda") \
        else contextlib.nullcontext()
    reset = reset_peak_rss()
    with context:
        start = time.perf_counter()
        upscaler.upscale(image)
        seconds = time.perf_counter() - start
    return seconds, peak_rss_bytes() if reset else None


def gpu_forward_ms(key: tuple, upscaler: Upscaler, h: int, w: int, repeats: int) -> float | None:
    """Median GPU time of the forward alone on an h x w input already on the device, or None where there
    is no such timing (CPU rows, tensorrt)."""
    if not upscaler.device.startswith("cuda"):
        return None
    backend = upscaler.backend
    if key[0] == "cuda":
        return backend._engine.profile(1, h, w, repeats)["forward_ms"]
    if key[0] != "torch":
        return None
    import torch

    x = torch.rand(1, 3, h, w, device=upscaler.device).to(backend._dtype).contiguous(
        memory_format=backend._memory_format)
    samples = []
    with cudnn_benchmark(key[2]), torch.inference_mode():
        backend.model(x)  # warm-up (compiled models: already compiled for this shape by the upscale warm-up)
        for _ in range(repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            backend.model(x)
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop))
    return statistics.median(samples)


def configurations(device: str, backends: list[str] | None, precisions: list[str] | None, compile_torch: bool):
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
                if device.startswith("cuda") and precision != "fp32":
                    rows.append((name, precision, CUDNN_BENCHMARK, {"channels_last": True}))
                    if compile_torch:
                        rows.append((name, precision, "compile-max-autotune",
                                     {"channels_last": True, "compile_mode": "max-autotune"}))
            else:
                rows.append((name, precision, "", {}))
    return rows


def size_argument(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def machine_description(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": platform.processor()}
    info["cpu"] = cpu_name()
    info.update(cpu_details())
    try:
        root = Path(__file__).resolve().parents[1]
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        cwd=root).stdout.strip()
        # The engine that ran is the extension on disk, which may have been built from uncommitted sources.
        info["uncommitted_engine_sources"] = subprocess.run(
            ["git", "status", "--porcelain", "--", "csrc", "CMakeLists.txt", "setup.py"], capture_output=True,
            text=True, cwd=root).stdout.split("\n")[:-1]
    except OSError:
        pass
    with contextlib.suppress(ImportError):
        from srgan_fast import _C

        built = Path(_C.__file__)
        when = datetime.datetime.fromtimestamp(built.stat().st_mtime, datetime.timezone.utc)
        info["extension"] = {"sha256": hashlib.sha256(built.read_bytes()).hexdigest()[:16],
                             "built": when.isoformat(timespec="seconds")}
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
                        help="shipped model name, .safetensors path, or 'random' (--architecture, random values)")
    parser.add_argument("--architecture", default="srresnet", choices=sorted(ARCHITECTURES),
                        help="the architecture of --model random, at its default parameters (default: %(default)s)")
    parser.add_argument("--sizes", type=size_argument, nargs="+", default=[(128, 128), (512, 512)],
                        help="input sizes: N (square) or HxW")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", nargs="*", help="only these backends (and openvino on CPUs)")
    parser.add_argument("--precisions", nargs="*", help="only these precisions")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tile", type=int, help="tile core size (default: automatic)")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile anchor on GPUs (its autotuning takes minutes per shape)")
    parser.add_argument("--json", help="write results here (default: benchmarks/results/latency-<host>-<time>.json)")
    args = parser.parse_args(argv)

    machine = machine_description(args.device)  # before the runs: the extension as loaded
    weights = random_weights(build(args.architecture, {})) if args.model == "random" else load_weights(args.model)
    flops = weights.network.flops_per_input_pixel()
    configs = configurations(args.device, args.backends, args.precisions, compile_torch=not args.no_compile)
    upscalers = {}
    for backend, precision, variant, options in configs:
        upscalers[(backend, precision, variant)] = Upscaler(weights, backend=backend, device=args.device,
                                                            precision=precision, tile=args.tile, **options)
    results = []
    rng = np.random.default_rng(0)
    with_openvino = args.device == "cpu" and (not args.backends or "openvino" in args.backends)
    for h, w in args.sizes:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        runs = {**upscalers, **(openvino_runs(weights, (h, w), args.precisions) if with_openvino else {})}
        times: dict[tuple, list[float]] = {key: [] for key in runs}
        peaks: dict[tuple, list[int | None]] = {key: [] for key in runs}
        for key, upscaler in runs.items():
            for _ in range(args.warmup):
                timed_upscale(key, upscaler, image)
        for _ in range(args.repeats):
            for key, upscaler in runs.items():
                seconds, peak = timed_upscale(key, upscaler, image)
                times[key].append(seconds)
                peaks[key].append(peak)
        for key, samples in times.items():
            ms = statistics.median(samples) * 1e3
            plan = runs[key].plan((h, w))
            size = h if h == w else f"{h}x{w}"
            results.append({"backend": key[0], "precision": key[1], "variant": key[2], "size": size,
                            "ms": round(ms, 2), "ms_min": round(min(samples) * 1e3, 2),
                            "megapixels_per_s": round(h * w / ms / 1e3, 4),
                            "output_megapixels_per_s": round(16 * h * w / ms / 1e3, 4),
                            "effective_gflops": round(flops * h * w / ms / 1e6, 1),
                            "tile_windows": plan.num_windows, "tile_window_hw": list(plan.window_hw),
                            "tiling_overhead": round(plan.overhead, 3), "repeats": args.repeats,
                            "runs_ms": [round(t * 1e3, 1) for t in samples],
                            "peak_rss_mib": None if None in peaks[key] else round(max(peaks[key]) / 2**20)})
            forward = gpu_forward_ms(key, runs[key], h, w, args.repeats)
            if forward is not None:
                results[-1]["gpu_forward_ms"] = round(forward, 3)

    print_table(results)
    report = {"machine": machine, "device": args.device, "model": weights.name,
              "network": weights.network.describe(),
              "flops_per_input_pixel": flops, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "results": results}
    out = Path(args.json) if args.json else (Path(__file__).parent / "results" /
                                             f"latency-{platform.node()}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(out, json.dumps(report, indent=2).encode())
    print(f"\nwrote {out}")
    return 0


def baseline_ms(rows: list[dict], precision: str, field: str) -> float | None:
    """The anchor a row is compared with: on GPUs the fastest torch anchor of its precision (or of fp16 for
    precisions torch does not run there), else torch fp32 channels_last."""
    gpu = any("gpu_forward_ms" in r for r in rows)
    if not gpu:
        return next((r.get(field) for r in rows if (r["backend"], r["precision"], r["variant"]) == BASELINE), None)
    anchors = [r[field] for r in rows if r["backend"] == "torch" and r["variant"] in TORCH_GPU_ANCHORS
               and field in r and r["precision"] == precision]
    if not anchors and precision != "fp16":
        return baseline_ms(rows, "fp16", field)
    return min(anchors, default=None)


def print_table(results: list[dict]) -> None:
    header = (f"{'size':>9} {'backend':12} {'precision':9} {'variant':30} {'median ms':>10} {'GPU fwd ms':>10} "
              f"{'MP/s in':>8} {'GFLOP/s':>8} {'vs base':>8} {'fwd vs':>8} {'windows':>8} {'overhead':>8} "
              f"{'peak MiB':>8}")
    print(header)
    print("-" * len(header))
    for size in dict.fromkeys(r["size"] for r in results):
        rows = [r for r in results if r["size"] == size]
        for r in sorted(rows, key=lambda r: r["ms"]):
            base = baseline_ms(rows, r["precision"], "ms")
            base_forward = baseline_ms(rows, r["precision"], "gpu_forward_ms")
            ratio = f"{base / r['ms']:.2f}x" if base else "-"
            forward = r.get("gpu_forward_ms")
            forward_ratio = f"{base_forward / forward:.2f}x" if forward and base_forward else "-"
            print(f"{size!s:>9} {r['backend']:12} {r['precision']:9} {r['variant']:30} {r['ms']:>10.1f} "
                  f"{forward if forward is not None else '-':>10} {r['megapixels_per_s']:>8.3f} "
                  f"{r['effective_gflops']:>8.1f} {ratio:>8} {forward_ratio:>8} {r['tile_windows']:>8} "
                  f"{r['tiling_overhead']:>8.3f} {r['peak_rss_mib'] if r['peak_rss_mib'] is not None else '-':>8}")


if __name__ == "__main__":
    sys.exit(main())
