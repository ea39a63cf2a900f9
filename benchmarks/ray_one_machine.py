"""`srgan-fast upscale` on one machine, as a user runs it: the local command against `--ray` (no cluster) and
`--ray local` (a Ray instance started for the run), each a fresh process, rounds interleaved so that the
machine's drift falls on every row alike; wall time per run, every output checked byte for byte against the
local command's.

    python benchmarks/ray_one_machine.py [--count 20] [--size 256x256] [--rounds 3] [--before /tree] [--json out]

--before: a checkout of srgan_fast (its package folder's parent, with the native extension in place) whose
`--ray` runs as one more row, e.g. the commit before a change, for a before/after in one session.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.distributed import make_folder  # noqa: E402
from benchmarks.machine import cpu_details, cpu_name  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.options import parse_size  # noqa: E402


def images_under(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def timed_run(arguments: list[str], environment: dict, output: Path) -> tuple[float, str]:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-m", "srgan_fast.cli", *arguments], env=environment,
                              capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return seconds, finished.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="HxW of each image")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another srgan_fast checkout whose --ray is one more row")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    # Never a cluster that RAY_ADDRESS names: the question is this machine alone.
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    environment.setdefault("OMP_WAIT_POLICY", "passive")
    here = str(Path(__file__).resolve().parents[1])
    rows = {"local": ([], {**environment, "PYTHONPATH": here}, []),
            "--ray": ([], {**environment, "PYTHONPATH": here}, ["--ray"]),
            "--ray local": ([], {**environment, "PYTHONPATH": here}, ["--ray", "local"])}
    if args.before:
        rows[f"--ray ({args.before})"] = ([], {**environment, "PYTHONPATH": str(args.before.resolve())}, ["--ray"])
    root = Path(tempfile.mkdtemp(prefix="srgan-fast-ray-one-machine-"))
    try:
        folder = root / "in"
        folder.mkdir()
        make_folder(folder, args.count, args.size)
        expected = None
        for _ in range(args.rounds):
            for index, (name, (seconds, env, extra)) in enumerate(rows.items()):
                output = root / f"out{index}"
                took, last = timed_run(["upscale", str(folder), "-o", str(output), "-q", *extra], env, output)
                seconds.append(took)
                written = images_under(output)
                expected = expected if expected is not None else written
                if written != expected or len(written) != args.count:
                    raise SystemExit(f"{name}: outputs differ from the local command's")
                print(f"{name:24} {took:6.1f} s  {last}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    details = cpu_details()
    cpu = f"{cpu_name()} (family {details.get('cpu_family')}, model {details.get('cpu_model')})"
    print(f"{args.count} images of {args.size[1]}x{args.size[0]}, default model, on {cpu} ({os.cpu_count()} CPUs), "
          f"{args.rounds} interleaved rounds; outputs byte-identical in every run")
    summary = {}
    for name, (seconds, _, _) in rows.items():
        summary[name] = {"seconds": seconds, "median": statistics.median(seconds)}
        runs = ", ".join(f"{took:.1f}" for took in seconds)
        print(f"  {name:24} median {statistics.median(seconds):6.1f} s  (runs {runs})")
    if args.json:
        report = {"cpu": cpu, "cpus": os.cpu_count(), "count": args.count, "size": list(args.size), "rows": summary}
        write_bytes_atomically(args.json, json.dumps(report, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
