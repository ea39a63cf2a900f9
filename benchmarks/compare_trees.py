"""Before/after: the same upscale timed in two source trees (this one and a baseline checkout), alternately.

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/compare_trees.py --baseline /tmp/base --model srresnet --sizes 128 512 --precisions fp32 bf16

Each round runs one subprocess per tree (baseline first, then this tree, then the other way round in the next
round), each loading the model on the native backend, warming up and timing ``--calls`` upscales of a fixed
random image; the medians over all rounds are compared. Alternating whole processes keeps machine load and
thermal drift from favouring either tree. Every timed process imports ``srgan_fast`` from its own tree only.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

THIS_TREE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(THIS_TREE))

from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402

# Runs inside each tree's process: only the public API both trees share.
TIMER = """
import json, sys, time
import numpy as np
import srgan_fast
model, size, precision, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
up = srgan_fast.Upscaler(model, backend="native", device="cpu", precision=precision)
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
up(image)
times = []
for _ in range(calls):
    start = time.perf_counter()
    up(image)
    times.append(time.perf_counter() - start)
print(json.dumps({"file": srgan_fast.__file__, "times": times}))
"""


def time_tree(tree: Path, model: str, size: int, precision: str, calls: int) -> list[float]:
    result = subprocess.run([sys.executable, "-c", TIMER, model, str(size), precision, str(calls)], cwd=tree,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{tree}: the timing process failed: {result.stderr.strip().splitlines()[-1]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if not Path(report["file"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree}: imported srgan_fast from {report['file']}, not from this tree")
    return report["times"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other tree, built in place")
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per process")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    trees = {"baseline": args.baseline.resolve(), "this": THIS_TREE}
    results = []
    for size in args.sizes:
        for precision in args.precisions:
            times: dict[str, list[float]] = {name: [] for name in trees}
            for round_index in range(args.rounds):
                order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
                for name in order:
                    times[name] += time_tree(trees[name], args.model, size, precision, args.calls)
            medians = {name: statistics.median(samples) * 1e3 for name, samples in times.items()}
            row = {"size": size, "precision": precision, "baseline_ms": round(medians["baseline"], 2),
                   "this_ms": round(medians["this"], 2),
                   "speedup": round(medians["baseline"] / medians["this"], 3), "samples": len(times["this"])}
            results.append(row)
            print(f"{size:>5}² {precision:5} baseline {row['baseline_ms']:9.1f} ms   this tree {row['this_ms']:9.1f} ms"
                  f"   {row['speedup']:.3f}x")
    if args.json:
        report = {"model": args.model, "baseline": str(args.baseline), "results": results}
        write_bytes_atomically(args.json, json.dumps(report, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
