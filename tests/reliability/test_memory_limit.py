"""Out of memory is one file's failure, not the batch's: under an address-space limit (RLIMIT_AS) a folder of
small, big, small gives one error line for the big file, naming the memory budget and how to lower it, and
the small ones are written.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import random_generator_weights
from srgan_fast.weights import save_weights

pytestmark = [pytest.mark.native,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")]

MARGIN = 128 << 20  # address space above the measured peak of a run over the small files
BIG = 2048  # its ×4 RGB output alone is 192 MiB, more than MARGIN; the small ones need a few KiB


def cli(*arguments, preexec_fn=None, program=None):
    command = [sys.executable, "-c", program] if program else [sys.executable, "-m", "srgan_fast.cli"]
    return subprocess.run([*command, *arguments], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_WAIT_POLICY": "passive"}, preexec_fn=preexec_fn)


PEAK_AFTER_A_RUN = """\
import sys
from srgan_fast.cli.main import main
main(sys.argv[1:])
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmPeak:")))
"""


@pytest.mark.slow
def test_a_memory_error_fails_one_file_and_the_batch_goes_on(tmp_path):
    import resource

    weights = random_generator_weights(1, 4)
    save_weights(tmp_path / "tiny.safetensors", weights.tensors, weights.metadata)
    shots = tmp_path / "shots"
    shots.mkdir()
    for name, seed in (("a_small.png", 0), ("c_small.png", 1)):
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(shots / name)
    big = (np.arange(BIG * BIG * 3).reshape(BIG, BIG, 3) % 251).astype(np.uint8)  # compresses: a small file
    Image.fromarray(big).save(shots / "b_big.png")
    # A fixed tile keeps the engine's working set small, so the big file's own output array is what fails.
    options = ["--model", str(tmp_path / "tiny.safetensors"), "--backend", "native", "--device", "cpu",
               "--tile", "64", "--memory-budget", "512M"]

    baseline = cli("upscale", str(shots / "a_small.png"), str(shots / "c_small.png"), "-o", str(tmp_path / "ref"),
                   *options, program=PEAK_AFTER_A_RUN)
    assert baseline.returncode == 0, baseline.stderr
    limit = int(baseline.stdout.split()[-1]) + MARGIN

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = tmp_path / "out"
    run = cli("upscale", str(shots), "-o", str(out), *options, preexec_fn=limit_address_space)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith(f"error: {shots / 'b_big.png'}: out of memory upscaling 2048×2048×3 uint8")
    assert "memory budget of 512.0 MiB" in errors[0] and "--memory-budget" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["a_small.png", "c_small.png"]
    assert "srgan-fast: 2 written, 0 skipped, 1 failed in " in run.stderr
