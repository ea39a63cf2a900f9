"""What bounds the AMX int8 dense block's multiplies: amx_tile_loop.cpp, built here and run on one core.

    python benchmarks/amx_tile_loop.py [--rounds 5] [--json out.json]

The fused block's 2 x 2 tile loop, walked as ESRGAN's residual dense block walks it, with its operands where the
kernel has them (the codes in the ring, the weights packed per conv) and with either or both held in L1; also
the ring in chunk-major order and every tile row 16 bytes off its cache line. Printed: each variant's int8 TOP/s
on one core (median of interleaved rounds) and its share of TDPBUSD's own rate with its operands in tiles.
Needs a CPU and OS that grant AMX-INT8 and a compiler with -mamx-int8 (GCC 11 or later).
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_details, cpu_name  # noqa: E402

SOURCE = Path(__file__).with_suffix(".cpp")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every variant (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if "amx_int8" not in cpu_details().get("cpu_flags", []):
        print(f"amx_tile_loop: {cpu_name()} has no AMX-INT8; nothing to measure", file=sys.stderr)
        return 1
    compiler = shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        print("amx_tile_loop: no C++ compiler (g++ or clang++) on PATH", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        binary = Path(folder) / "amx_tile_loop"
        built = subprocess.run([compiler, "-O2", "-std=c++17", "-mamx-tile", "-mamx-int8", str(SOURCE), "-o",
                                str(binary)], capture_output=True, text=True)
        if built.returncode != 0:
            print(f"amx_tile_loop: {compiler} could not build {SOURCE.name}:\n{built.stderr}", file=sys.stderr)
            return 1
        run = subprocess.run([str(binary), str(args.rounds)], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"amx_tile_loop: {run.stderr.strip()}", file=sys.stderr)
            return 1
    rates = json.loads(run.stdout)["top_s_one_core"]
    peak = rates["tdpbusd_only"]
    print(f"{cpu_name()}, one core, int8 TOP/s (median of {args.rounds} interleaved rounds):")
    for name, rate in rates.items():
        print(f"  {name:40s} {rate:6.2f}  {rate / peak:5.2f} of TDPBUSD alone")
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "amx_tile_loop", "date": datetime.date.today().isoformat(), "cpu": cpu_name(),
            **cpu_details(), "threads": 1, "rounds": args.rounds, "top_s_one_core": rates,
            "share_of_tdpbusd_alone": {name: round(rate / peak, 3) for name, rate in rates.items()},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
