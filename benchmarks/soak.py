"""Soak: many ``upscale`` calls on one Upscaler, watching resident memory, alone and from several threads.

    python benchmarks/soak.py [--calls 10000] [--threads 1 4] [--size 32] [--model srgan] [--json out.json]

RSS is sampled every ``--sample-every`` calls (all threads together). Growth is reported from the first
sample, taken after a warm-up, so that one-time allocations (packed weights, the engine's feature maps, the
per-thread gather buffers) are not counted as a leak. A flat RSS over 10,000 calls means nothing leaks per
call; every result is also compared with the first single-threaded result, so a soak that silently returned
wrong pixels fails loudly. Not a timed test: its figures go into notes.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402

WARMUP_CALLS = 20


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak(upscaler: Upscaler, image: np.ndarray, expected: np.ndarray, calls: int, threads: int,
         sample_every: int) -> dict:
    """``calls`` upscales shared out over ``threads`` threads; RSS sampled every ``sample_every`` calls."""
    done = 0
    mismatches = 0
    samples: list[tuple[int, int]] = [(0, rss_bytes())]
    lock = threading.Lock()

    def work(count: int) -> None:
        nonlocal done, mismatches
        for _ in range(count):
            same = np.array_equal(upscaler(image), expected)
            with lock:
                done += 1
                mismatches += not same
                if done % sample_every == 0:
                    samples.append((done, rss_bytes()))

    shares = [calls // threads + (i < calls % threads) for i in range(threads)]
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    rss = [value for _, value in samples]
    return {"threads": threads, "calls": done, "mismatches": mismatches, "seconds": round(seconds, 2),
            "calls_per_s": round(done / seconds, 1), "rss_start_mib": round(rss[0] / 2**20, 1),
            "rss_end_mib": round(rss[-1] / 2**20, 1), "rss_max_mib": round(max(rss) / 2**20, 1),
            "rss_growth_mib": round((rss[-1] - rss[0]) / 2**20, 1),
            "samples": [(count, round(value / 2**20, 1)) for count, value in samples]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4], help="one soak per thread count")
    parser.add_argument("--size", type=int, default=32, help="square input side in pixels")
    parser.add_argument("--model", default="srgan")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision")
    parser.add_argument("--tile", type=int, help="tile core size (a small one makes every call tiled)")
    parser.add_argument("--sample-every", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    upscaler = Upscaler(args.model, backend=args.backend, device="cpu", precision=args.precision, tile=args.tile)
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    expected = upscaler(image)
    for _ in range(WARMUP_CALLS):
        upscaler(image)
    print(f"soak: {upscaler.describe()}, {args.size}x{args.size} RGB uint8, tiles per call "
          f"{upscaler.plan(image.shape[:2]).num_windows}")
    results = []
    for threads in args.threads:
        result = soak(upscaler, image, expected, args.calls, threads, args.sample_every)
        results.append(result)
        print(f"  {threads} thread(s): {result['calls']} calls in {result['seconds']} s "
              f"({result['calls_per_s']} calls/s), RSS {result['rss_start_mib']} -> {result['rss_end_mib']} MiB "
              f"(growth {result['rss_growth_mib']} MiB, max {result['rss_max_mib']}), "
              f"mismatches {result['mismatches']}")
    if args.json:
        report = {"describe": upscaler.describe(), "size": args.size, "tile": args.tile, "results": results}
        write_bytes_atomically(args.json, json.dumps(report, indent=1).encode())
    return 1 if any(r["mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
