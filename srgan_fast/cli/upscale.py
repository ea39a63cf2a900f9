"""``srgan-fast upscale INPUTS... -o OUT``: image files and folders, one line per file, one failure never ends
the batch."""
from __future__ import annotations

import argparse
import sys

from srgan_fast.cli.common import USER_ERRORS, add_upscaler_options, make_upscaler
from srgan_fast.cli.ray import register_ray_options, run_upscale_on_ray
from srgan_fast.io.batch import collect_jobs, failure_line, upscale_file
from srgan_fast.io.images import DEFAULT_MAX_PIXELS
from srgan_fast.io.signals import Stopped


def register(subparsers) -> None:
    """Adds ``upscale INPUTS... -o OUT`` with the Upscaler's and Ray's options."""
    up = subparsers.add_parser("upscale", help="upscale image files or folders ×4")
    up.add_argument("inputs", nargs="+", help="image files or folders (searched recursively, skipping hidden files, "
                    "hidden folders and the output folder)")
    up.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    up.add_argument("--format", help="output format for folders, e.g. png (default: the input's)")
    up.add_argument("--overwrite", action="store_true", help="replace existing output files")
    up.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger inputs")
    add_upscaler_options(up)
    register_ray_options(up)
    up.set_defaults(func=run_upscale)


def run_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.ray is not None:
        return run_upscale_on_ray(args)

    def say(line: str) -> None:
        tqdm.write(line, file=sys.stderr)  # above the progress bar, not through it

    try:
        jobs, problems = collect_jobs(args.inputs, args.output, args.format and "." + args.format.lstrip("."))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        say(f"error: {line}")
    if not jobs:
        return 1
    written = failures = 0
    try:
        try:
            upscaler = make_upscaler(args)
        except USER_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        say(f"srgan-fast: {upscaler.describe()}")
        for source, destination in tqdm(jobs, disable=len(jobs) < 2, unit="image", file=sys.stderr):
            try:
                notes = upscale_file(upscaler, source, destination, overwrite=args.overwrite,
                                     max_pixels=args.max_pixels)
            except Exception as exc:  # noqa: BLE001 - no failure of one file ends the batch; signals still do
                failures += 1
                say(f"error: {failure_line(source, exc, upscaler.memory_budget)}")
                continue
            written += 1
            for note in notes:
                say(f"warning: {note}")
            say(f"wrote {destination}")
    except KeyboardInterrupt as interrupt:
        stop = Stopped.from_interrupt(interrupt)
        print(f"srgan-fast: stopped by {stop.signal_name}; {written} of {len(jobs)} images written, no partial "
              "files left", file=sys.stderr)
        return stop.exit_status
    if failures:
        print(f"srgan-fast: {failures} of {len(jobs)} images failed", file=sys.stderr)
    return 1 if failures or problems else 0
