"""Load benchmark of ``srgan-fast serve``: closed-loop clients against a server process, beside the offline
throughput of the same Upscaler on the same inputs, measured in the same run.

    python benchmarks/serve_load.py [--model srgan] [--backend native] [--precision fp32]
        [--only efficiency,sweep,fairness,soak] [--soak-requests 10000] [--json benchmarks/results/serve-load.json]

- efficiency: 16 clients of 256² images; images/s against the offline Upscaler (one image per call, and all
  of them as one batch: the better is the reference).
- sweep: concurrency 1, 4, 16, 64 with a mix of 64², 256² and 1024²: images/s, p50/p95/p99 latency, errors.
- fairness: a 64² request's p99 latency alone, then while 2048² requests are in flight.
- soak: many tiny requests at concurrency 64, some of them bad on purpose; every 200 answer must be
  byte-identical to the offline encoding of its input's upscale, every other answer a 400/413/503 with its
  reason; the server's RSS before and after.

The server is a separate process (``srgan-fast serve``), so that the clients' Python does not share its GIL; on
a 2-core machine they still share the cores. Not a timed test: its figures go into notes.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.io.images import ImageFile, decode_image, read_image  # noqa: E402
from srgan_fast.io.save import encode_image  # noqa: E402
from srgan_fast.samples import sample_path  # noqa: E402
from srgan_fast.serve.service import PNG_COMPRESS_LEVEL  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def photo(size: int, seed: int = 0) -> np.ndarray:
    """The bundled photo resized to size² (bicubic), shifted a little per seed so inputs differ."""
    base = Image.fromarray(read_image(sample_path())[:, :, :3])
    picture = np.asarray(base.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
    return np.clip(picture + (seed % 7) - 3, 0, 255).astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    return encode_image(ImageFile([array], "PNG"), "PNG")[0]


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {}
    values = np.percentile(latencies, [50, 95, 99])
    return {"p50_s": round(float(values[0]), 4), "p95_s": round(float(values[1]), 4),
            "p99_s": round(float(values[2]), 4)}


class Server:
    """``srgan-fast serve`` in a subprocess on a free port."""

    def __init__(self, args, *extra: str):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "srgan_fast.cli", "serve", "--port", str(port), "--model", args.model,
                   "--backend", args.backend, *(["--precision", args.precision] if args.precision else []), *extra]
        self.process = subprocess.Popen(command, env={**os.environ, "OMP_WAIT_POLICY": "passive"})
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=300)


def closed_loop(url: str, bodies: list[bytes], concurrency: int, requests: int | None = None,
                duration_s: float | None = None, check=None) -> dict:
    """``concurrency`` clients, each sending the next body as soon as its last answer came back, until
    ``requests`` were sent or ``duration_s`` passed; ``check(index, response)`` may look at each answer."""
    lock = threading.Lock()
    state = {"next": 0, "latencies": [], "statuses": {}, "reasons": {}}
    started = time.perf_counter()

    def take() -> int | None:
        with lock:
            index = state["next"]
            if (requests is not None and index >= requests) or \
                    (duration_s is not None and time.perf_counter() - started > duration_s):
                return None
            state["next"] += 1
            return index

    def client() -> None:
        with httpx.Client(timeout=3600) as session:
            while (index := take()) is not None:
                sent = time.perf_counter()
                answer = session.post(f"{url}/v1/upscale", content=bodies[index % len(bodies)])
                took = time.perf_counter() - sent
                with lock:
                    state["statuses"][answer.status_code] = state["statuses"].get(answer.status_code, 0) + 1
                    if answer.status_code == 200:
                        state["latencies"].append(took)
                    else:
                        reason = answer.json()["error"][:80]
                        state["reasons"][reason] = state["reasons"].get(reason, 0) + 1
                if check is not None:
                    check(index, answer)

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(client)
    wall = time.perf_counter() - started
    ok = state["statuses"].get(200, 0)
    return {"concurrency": concurrency, "requests": state["next"], "ok": ok, "wall_s": round(wall, 2),
            "images_per_s": round(ok / wall, 3), **percentiles(state["latencies"]),
            "statuses": {str(k): v for k, v in sorted(state["statuses"].items())}, "errors": state["reasons"]}


def offline(upscaler: Upscaler, arrays: list[np.ndarray]) -> dict:
    """Images/s of the Upscaler alone: one image per call, and all as one batch (equal sizes only)."""
    upscaler(arrays[0])
    started = time.perf_counter()
    for array in arrays:
        upscaler(array)
    single = len(arrays) / (time.perf_counter() - started)
    started = time.perf_counter()
    upscaler.upscale_batch(np.stack(arrays))
    batch = len(arrays) / (time.perf_counter() - started)
    return {"one_per_call_images_per_s": round(single, 3), "batch_images_per_s": round(batch, 3),
            "reference_images_per_s": round(max(single, batch), 3)}


def run_efficiency(args, server: Server, upscaler: Upscaler) -> dict:
    arrays = [photo(256, seed) for seed in range(16)]
    reference = offline(upscaler, arrays)
    served = closed_loop(server.url, [png(a) for a in arrays], 16, requests=16 * args.efficiency_rounds)
    ratio = served["images_per_s"] / reference["reference_images_per_s"]
    return {"offline": reference, "served": served, "efficiency": round(ratio, 3), "target": 0.9}


def run_sweep(args, server: Server) -> list[dict]:
    # Mostly small requests, a few large: 70% 64², 25% 256², 5% 1024².
    mix = [64] * 14 + [256] * 5 + [1024]
    bodies = [png(photo(size, seed)) for seed, size in enumerate(mix)]
    return [closed_loop(server.url, bodies, c, duration_s=args.sweep_seconds) for c in (1, 4, 16, 64)]


def run_fairness(args, server: Server) -> dict:
    small = [png(photo(64, seed)) for seed in range(8)]
    alone = closed_loop(server.url, small, 1, requests=args.fairness_requests)
    big = png(photo(2048))
    stop = threading.Event()

    def big_client() -> None:
        # Closes its connection when told to stop: the server drops the rest of that request's windows.
        while not stop.is_set():
            try:
                httpx.post(f"{server.url}/v1/upscale", content=big, timeout=30)
            except httpx.TimeoutException:
                pass

    bigs = [threading.Thread(target=big_client, daemon=True) for _ in range(2)]
    for thread in bigs:
        thread.start()
    time.sleep(3)  # both 2048² requests admitted and running
    loaded = closed_loop(server.url, small, 1, requests=args.fairness_requests)
    stop.set()
    for thread in bigs:
        thread.join()
    ratio = loaded["p99_s"] / alone["p99_s"]
    return {"unloaded_64": alone, "with_2048_in_flight": loaded, "p99_ratio": round(ratio, 2), "target": 5.0}


def run_soak(args, upscaler: Upscaler) -> dict:
    rng = np.random.default_rng(0)
    inputs = []
    for i in range(48):  # tiny images of each kind the API takes
        h, w = int(rng.integers(12, 29)), int(rng.integers(12, 29))
        channels, dtype = [(3, np.uint8), (4, np.uint8), (1, np.uint8), (3, np.uint16)][i % 4]
        high = 256 if dtype == np.uint8 else 65536
        inputs.append(rng.integers(0, high, (h, w, channels), dtype=dtype))
    bodies = [png(a) for a in inputs]
    expected = [encode_image(decode_image(b).with_frames([upscaler(decode_image(b).frames[0])]), "PNG",
                             png_compress_level=PNG_COMPRESS_LEVEL)[0] for b in bodies]
    # Every 50th request undecodable (400), every 100th (offset) over --max-pixels (413).
    bad, huge = b"\x89PNG\r\n\x1a\n broken", png(np.zeros((40, 40, 3), np.uint8))
    plan = [bad if i % 50 == 7 else huge if i % 100 == 13 else bodies[i % len(bodies)]
            for i in range(args.soak_requests)]
    server = Server(args, "--max-pixels", str(32 * 32))
    mismatches = []
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            samples.append(round(server.rss_mib(), 1))

    try:
        # At the soak's own concurrency: its worker threads, their allocator arenas and buffers exist after it.
        warm = closed_loop(server.url, bodies, 64, requests=1000)
        before = server.rss_mib()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def check(index: int, answer: httpx.Response) -> None:
            body = plan[index]
            if answer.status_code == 200:
                if body is bad or body is huge or answer.content != expected[index % len(bodies)]:
                    mismatches.append(index)
            elif answer.status_code == 400 and body is bad and "unreadable" in answer.json()["error"]:
                pass
            elif answer.status_code == 413 and body is huge and "exceeds the limit" in answer.json()["error"]:
                pass
            elif answer.status_code != 503:
                mismatches.append(index)

        result = closed_loop(server.url, plan, 64, requests=len(plan), check=check)
        after = server.rss_mib()
        done.set()
        sampler.join()
    finally:
        server.stop()
    return {"warm_up_requests": warm["requests"], **result, "wrong_answers": len(mismatches),
            "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
            "rss_growth_mib": round(after - before, 1), "rss_samples_mib": samples, "target_growth_mib": 50}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="srgan")
    parser.add_argument("--backend", default="native")
    parser.add_argument("--precision")
    parser.add_argument("--only", default="efficiency,sweep,fairness,soak")
    parser.add_argument("--efficiency-rounds", type=int, default=3, help="requests per client (default: 3)")
    parser.add_argument("--sweep-seconds", type=float, default=30)
    parser.add_argument("--fairness-requests", type=int, default=30)
    parser.add_argument("--soak-requests", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=RESULTS / "serve-load.json")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    upscaler = Upscaler(args.model, backend=args.backend, precision=args.precision)
    report = {"machine": f"{os.cpu_count()} cores, {upscaler.describe()}", "model": args.model}
    if parts & {"efficiency", "sweep", "fairness"}:
        server = Server(args)
        try:
            report["lanes"] = httpx.get(f"{server.url}/readyz").json()["lanes"]
            for name, run in (("efficiency", lambda: run_efficiency(args, server, upscaler)),
                              ("sweep", lambda: run_sweep(args, server)),
                              ("fairness", lambda: run_fairness(args, server))):
                if name in parts:
                    report[name] = run()
                    print(json.dumps({name: report[name]}), flush=True)
        finally:
            server.stop()
    if "soak" in parts:
        report["soak"] = run_soak(args, upscaler)
        print(json.dumps({"soak": report["soak"]}), flush=True)
    write_bytes_atomically(args.json, (json.dumps(report, indent=2) + "\n").encode())
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
