"""``srgan-fast upscale INPUTS... -o OUT``: image files and folders, planned whole before any work, one line per
file, one failure never ends the batch, and a summary of what was written, skipped and failed."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from srgan_fast.cli.common import USER_ERRORS, add_upscaler_options, argument_type, make_upscaler
from srgan_fast.io.signals import report_stop
from srgan_fast.cli.progress import Progress
from srgan_fast.cli.ray import register_ray_options, run_upscale_on_ray
from srgan_fast.io.atomic import remove_stale_temporaries
from srgan_fast.io.batch import DEFAULT_NAME, AppearedMeanwhile, collect_jobs, failure_line, upscale_file
from srgan_fast.io.images import DEFAULT_MAX_PIXELS, WHITE
from srgan_fast.options import parse_color, parse_name, parse_quality


def register(subparsers) -> None:
    """Adds ``upscale INPUTS... -o OUT`` with the Upscaler's and Ray's options."""
    up = subparsers.add_parser("upscale", help="upscale image files or folders ×4")
    up.add_argument("inputs", nargs="+", help="image files or folders (searched recursively, skipping hidden files, "
                    "hidden folders and the output folder; several folders keep their names under -o)")
    up.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    up.add_argument("--format", help="output format for folders, e.g. png (default: the input's)")
    up.add_argument("--name", type=argument_type(parse_name), default=DEFAULT_NAME, metavar="TEMPLATE",
                    help="output names from {stem} and {ext}, the input's name without extension and its extension, "
                         "e.g. {stem}_x4 or {stem}_{ext} (default: %(default)s); the format's extension follows")
    existing = up.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument("--skip-existing", action="store_true",
                          help="keep existing outputs and count them as done: a stopped batch is finished by running "
                               "it again (with --ray this is the default)")
    up.add_argument("--quality", type=argument_type(parse_quality), metavar="1-100",
                    help="JPEG and WebP quality (default: 95)")
    up.add_argument("--background", type=argument_type(parse_color), default=WHITE, metavar="COLOR",
                    help="colour that transparent areas are laid over in formats without alpha (JPEG, BMP), e.g. "
                         "black or '#202020' (default: white)")
    up.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger inputs")
    up.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bars and no line per written file; errors, warnings and the summary remain")
    add_upscaler_options(up)
    register_ray_options(up)
    up.set_defaults(func=run_upscale)


def _unwritable(output: Path, output_is_file: bool) -> str | None:
    """Why nothing can be written under the output, checked once instead of failing every file."""
    folder = output.parent if output_is_file else output
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"-o {output}: cannot create the folder {folder} ({exc.strerror or exc})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"-o {output}: the folder {folder} is not writable"
    return None


class _Tally:
    def __init__(self):
        self.written = self.skipped = self.failed = 0
        self.megapixels = self.seconds = 0.0
        self.started = time.perf_counter()

    def line(self) -> str:
        rate = f"; {self.megapixels:.3g} output MP at {self.megapixels / self.seconds:.3g} MP/s" if self.seconds else ""
        return (f"srgan-fast: {self.written} written, {self.skipped} skipped, {self.failed} failed in "
                f"{time.perf_counter() - self.started:.1f} s{rate}")


def run_upscale(args: argparse.Namespace) -> int:
    """0 when every input was written or skipped, 1 when any failed, 2 for a usage error (nothing done)."""
    if args.ray is not None:
        return run_upscale_on_ray(args)
    started = time.time()
    tally = _Tally()
    try:
        batch = collect_jobs(args.inputs, args.output, args.format and "." + args.format.lstrip("."), args.name)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tally.failed += len(batch.problems)  # inputs refused while planning count as failed in the summary
    pending = []
    for source, destination in batch.jobs:
        if not args.overwrite and os.path.lexists(destination):
            if args.skip_existing:
                tally.skipped += 1
                continue
            batch.problems.append(f"{destination}: exists (pass --overwrite to replace it or --skip-existing to "
                                  "keep it)")
            tally.failed += 1
        else:
            pending.append((source, destination))
    refusal = pending and _unwritable(Path(args.output), batch.output_is_file)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    progress = Progress(args.quiet)
    for line in batch.notes:
        progress.say(f"note: {line}")
    for line in batch.problems:
        progress.say(f"error: {line}")
    for path in remove_stale_temporaries([destination.parent for _, destination in batch.jobs], started):
        progress.tell(f"note: removed {path}, the temporary file of an earlier run that was killed")
    try:
        if pending:
            try:
                upscaler = make_upscaler(args)
            except USER_ERRORS as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            progress.tell(f"srgan-fast: {upscaler.describe()}")
            _run(upscaler, pending, args, progress, tally)
    except KeyboardInterrupt as interrupt:
        progress.close()
        return report_stop(interrupt, f"{tally.written} of {len(pending)} images written, no partial files left")
    progress.close()
    print(tally.line(), file=sys.stderr)
    return 1 if tally.failed else 0


def _run(upscaler, pending, args: argparse.Namespace, progress: Progress, tally: _Tally) -> None:
    progress.start(len(pending))
    upscale = progress.upscale_call(upscaler)
    for source, destination in pending:
        try:
            written = upscale_file(upscaler, source, destination, overwrite=args.overwrite,
                                   max_pixels=args.max_pixels, upscale=upscale, quality=args.quality,
                                   background=args.background)
        except Exception as exc:  # noqa: BLE001 - no failure of one file ends the batch; signals still do
            if isinstance(exc, AppearedMeanwhile) and args.skip_existing:
                tally.skipped += 1  # as at planning: another run of the same batch finished it first
                progress.tell(f"note: {destination}: written by something else meanwhile; kept (--skip-existing)")
            else:
                tally.failed += 1
                progress.say(f"error: {failure_line(source, exc, upscaler.memory_budget)}")
            progress.image_done()
            continue
        tally.written += 1
        tally.megapixels += written.megapixels
        tally.seconds += written.seconds
        for note in written.notes:
            progress.say(f"warning: {note}")
        height, width = written.output_hw
        frames = f", {written.frames} frames" if written.frames > 1 else ""
        progress.tell(f"wrote {destination} ({width}x{height}{frames} in {written.seconds:.1f} s, "
                      f"{written.megapixels / max(written.seconds, 1e-9):.3g} MP/s)")
        progress.image_done()
