"""What the first call costs: a fresh process's first upscale, its steady calls, and a second Upscaler's first.

    python benchmarks/warmup.py [--sizes 256 512] [--precisions fp32 bf16 int8] [--steady 4] [--json out.json]

Each configuration runs in its own new process, so its first call is a real first call (no engine, no feature
maps, no page touched yet). Printed per configuration: the first call, the median of the steady calls after it,
the first call of a second Upscaler of the same model built while the first one lives, and both as ratios of
the steady call, measured in the same process. Targets (issue 21): first / steady <= 1.2, second / steady <= 1.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, statistics, sys, time
import numpy as np
from srgan_fast import Upscaler
size, precision, steady = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
def timed(upscaler):
    start = time.perf_counter(); upscaler(image); return time.perf_counter() - start
first_upscaler = Upscaler("srresnet", backend="native", precision=precision)
first = timed(first_upscaler)
steady_calls = [timed(first_upscaler) for _ in range(steady)]
second = timed(Upscaler("srresnet", backend="native", precision=precision))
print(json.dumps({"first_s": first, "steady_s": statistics.median(steady_calls), "steady_calls_s": steady_calls,
                  "second_upscaler_first_s": second}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", default=None, help="default: every one the native backend runs")
    parser.add_argument("--steady", type=int, default=4, help="steady calls after the first (default: 4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from srgan_fast.backends.native_backend import NativeBackend

    precisions = args.precisions or list(NativeBackend.supported_precisions("cpu"))
    rows = []
    print(f"{'size':>5} {'precision':>9} {'first s':>8} {'steady s':>9} {'2nd s':>7} {'first/steady':>13} "
          f"{'2nd/steady':>11}")
    for size in args.sizes:
        for precision in precisions:
            run = subprocess.run([sys.executable, "-c", CHILD, str(size), precision, str(args.steady)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            row = {"size": size, "precision": precision, **json.loads(run.stdout.strip().splitlines()[-1])}
            row["first_over_steady"] = row["first_s"] / row["steady_s"]
            row["second_over_steady"] = row["second_upscaler_first_s"] / row["steady_s"]
            rows.append(row)
            print(f"{size:>5} {precision:>9} {row['first_s']:8.2f} {row['steady_s']:9.2f} "
                  f"{row['second_upscaler_first_s']:7.2f} {row['first_over_steady']:13.2f} "
                  f"{row['second_over_steady']:11.2f}", flush=True)
    if args.json:
        report = {"benchmark": "warmup", "date": datetime.date.today().isoformat(), "machine": platform.processor()
                  or platform.machine(), "python": platform.python_version(), "rows": rows}
        from srgan_fast.io.atomic import write_bytes_atomically

        write_bytes_atomically(args.json, (json.dumps(report, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
