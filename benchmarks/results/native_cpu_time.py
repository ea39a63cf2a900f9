"""CPU time (not wall clock) of the native engine and torch channels_last, one thread each, side by side.

    PYTHONPATH=. python benchmarks/results/native_cpu_time.py SIZE REPEATS

On a machine shared with other jobs, wall-clock time partly measures each process's share of the CPU;
time.process_time counts only the cycles the process ran, so the ratios are robust to that. Random weights
of the real architecture (16 blocks, 64 channels), a uint8 SIZE x SIZE input; medians of interleaved runs.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import random_generator_weights  # noqa: E402

from srgan_fast import _C  # noqa: E402
from srgan_fast.backends.torch_backend import TorchBackend  # noqa: E402

torch.set_num_threads(1)
size, reps = int(sys.argv[1]), int(sys.argv[2])
w = random_generator_weights(16, 64, seed=1)
x = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
runs = {"native fp32": _C.Engine(w.tensors, 16, 64, precision="fp32", threads=1).run,
        "native bf16": _C.Engine(w.tensors, 16, 64, precision="bf16", threads=1).run,
        "torch fp32 CL": TorchBackend(w, "cpu", "fp32").run,
        "torch bf16 CL": TorchBackend(w, "cpu", "bf16").run}
for f in runs.values():
    f(x)
times = {k: [] for k in runs}
for _ in range(reps):
    for k, f in runs.items():
        start = time.process_time()
        f(x)
        times[k].append(time.process_time() - start)
med = {k: float(np.median(v)) for k, v in times.items()}
flop = 4.44e6 * size * size
for k, m in med.items():
    print(f"{k:14s} {m * 1e3:8.1f} ms CPU  {flop / m / 1e9:6.1f} effective GFLOP/s")
print("native fp32 vs torch fp32 CL:", round(med["torch fp32 CL"] / med["native fp32"], 2))
print("best native vs torch bf16 CL:", round(med["torch bf16 CL"] / min(med["native fp32"], med["native bf16"]), 2))
