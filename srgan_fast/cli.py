"""The ``srgan-fast`` command: upscale files and folders, a demo picture, and what this machine can run."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from pathlib import Path

from srgan_fast.api import DEFAULT_MEMORY_BUDGET, format_bytes
from srgan_fast.backends import BackendUnavailable
from srgan_fast.channels import InputError
from srgan_fast.imageio import (DEFAULT_MAX_PIXELS, READ_SUFFIXES, WRITE_FORMATS, ImageFileError, load_image,
                                read_image, save_image, write_image)
from srgan_fast.signals import Stopped, stop_on_signals
from srgan_fast.weights import DEFAULT_MODEL, WeightsError

# Subcommands that live beside the parts they drive; each module has register_cli(subparsers).
PLUGIN_MODULES = ("srgan_fast.onnx_export", "srgan_fast.tensorrt.cli", "srgan_fast.video.cli",
                  "srgan_fast.backends.cuda_backend")
USER_ERRORS = (InputError, ImageFileError, WeightsError, BackendUnavailable, ValueError, OSError)
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])i?)?b?", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TILE = re.compile(r"(\d+)(?:\s*[x×]\s*(\d+))?", re.IGNORECASE | re.ASCII)


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5GiB', '64k' or '1000000' -> bytes; K, M, G and T are powers of 1024, as for memory."""
    match = _SIZE.fullmatch(text.strip())
    if match:
        count = int(float(match[1]) * _SIZE_UNITS[match[2] and match[2].lower()])
        if count > 0:
            return count
    raise argparse.ArgumentTypeError(f"expected a size such as 2G, 512M, 1.5GiB or a number of bytes, got {text!r}")


def parse_tile(text: str) -> int | tuple[int, int] | None:
    """'auto' -> None (sized from the memory budget), '256' -> 256, '256x384' -> (256, 384) as rows × columns."""
    if text.strip().lower() == "auto":
        return None
    match = _TILE.fullmatch(text.strip())
    if match and int(match[1]) > 0 and (match[2] is None or int(match[2]) > 0):
        return int(match[1]) if match[2] is None else (int(match[1]), int(match[2]))
    raise argparse.ArgumentTypeError(f"expected auto, a tile size in input pixels such as 256, or ROWSxCOLS such "
                                     f"as 256x384, all above 0, got {text!r}")


def add_upscaler_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that builds an Upscaler shares (also used by the video command)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or a .safetensors path "
                        "(default: %(default)s)")
    parser.add_argument("--backend", default="auto", help="auto, torch, native, cuda, tensorrt, onnxruntime")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if present)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"])
    parser.add_argument("--tile", type=parse_tile, default=None, metavar="auto|N|ROWSxCOLS",
                        help="tile core size in input pixels (default: auto, from the memory budget)")
    defaults = ", ".join(f"{format_bytes(size)} on {kind}" for kind, size in DEFAULT_MEMORY_BUDGET.items())
    parser.add_argument("--memory-budget", type=parse_size, metavar="SIZE",
                        help=f"working memory the tiler may use, e.g. 2G or 512M (default: {defaults})")


def make_upscaler(args: argparse.Namespace):
    from srgan_fast.api import Upscaler

    return Upscaler(args.model, backend=args.backend, device=args.device, precision=args.precision, tile=args.tile,
                    memory_budget=args.memory_budget)


def image_files(folder: Path, output: Path) -> list[Path]:
    """The images under ``folder``, sorted. Hidden files and folders are skipped (this tool's own temporary
    files among them), and so is ``output`` where it lies inside ``folder``: a second run must not upscale the
    first run's results."""
    output = output.resolve()
    found = []
    for parent, folders, files in os.walk(folder):
        here = Path(parent)
        folders[:] = [name for name in folders if not name.startswith(".") and (here / name).resolve() != output]
        found += [here / name for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in READ_SUFFIXES]
    return sorted(found)


def collect_jobs(inputs: list[str], output: str, suffix: str | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) pairs, and an error line for each input folder without images.

    Several inputs or a folder need an output folder; one file may name a file (any name with an extension
    that is not an existing folder). Raises ValueError when the output names a file the inputs cannot go to.
    """
    out = Path(output)
    folders = [item for item in map(Path, inputs) if item.is_dir()]
    if out.suffix and not out.is_dir():
        if len(inputs) == 1 and not folders:
            return [(Path(inputs[0]), out)], []
        received = f"{len(inputs)} inputs" if len(inputs) > 1 else f"the folder {folders[0]}"
        raise ValueError(f"-o {output} names a file, which takes one input file; got {received} (give an output "
                         "folder: an existing one or a name without an extension)")
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    problems = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = image_files(item, out)
            if not files:
                problems.append(f"{item}: no images found (looked for {', '.join(sorted(READ_SUFFIXES))}; hidden "
                                "files and the output folder are skipped)")
            sources += [(f, f.relative_to(item)) for f in files]
        else:
            sources.append((item, Path(item.name)))
    jobs = []
    for source, relative in sources:
        name = relative.with_suffix(suffix or relative.suffix)
        if relative.suffix.lower() not in WRITE_FORMATS and not suffix:
            name = relative.with_suffix(".png")
        jobs.append((source, out / name))
    return jobs, problems


def upscale_file(upscaler, source: Path, destination: Path, args: argparse.Namespace) -> list[str]:
    """One file, every frame, written atomically; returns the warnings. A call of its own, so that one
    file's pixels are freed before the next file is read."""
    if destination.exists() and not args.overwrite:
        raise ImageFileError(f"{destination}: exists (pass --overwrite to replace it)")
    if destination.resolve() == source.resolve():
        raise ImageFileError(f"{destination}: would overwrite its own input")
    loaded = load_image(source, max_pixels=args.max_pixels)
    result = loaded.with_frames([upscaler.upscale(frame) for frame in loaded.frames])
    destination.parent.mkdir(parents=True, exist_ok=True)
    return save_image(destination, result)


def failure_line(source: Path, error: Exception, memory_budget: int) -> str:
    """One line naming the file and the cause, whatever failed."""
    message = " ".join(str(error).split())
    if isinstance(error, MemoryError):
        if "--memory-budget" in message:  # the Upscaler's own, which already names the budget and what to lower
            return f"{source}: {message}"
        cause = f" ({message})" if message else ""
        return (f"{source}: out of memory{cause} with a memory budget of {format_bytes(memory_budget)}: lower it "
                "with --memory-budget or pass a smaller --tile")
    if isinstance(error, ImageFileError):
        return message  # names the file itself
    if isinstance(error, (InputError, OSError)):
        return f"{source}: {message}"
    return f"{source}: {type(error).__name__}: {message}"


def run_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

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
                notes = upscale_file(upscaler, source, destination, args)
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


def run_demo(args: argparse.Namespace) -> int:
    """bicubic | model | original of the bundled sample, side by side, so a newcomer sees what it does."""
    import numpy as np

    from srgan_fast.degradation import bicubic_downscale, bicubic_upscale
    from srgan_fast.samples import sample_path

    try:
        original = read_image(sample_path())[:, :, :3]
        low = bicubic_downscale(original)
        model = make_upscaler(args).upscale(low)
        gap = np.full((original.shape[0], 8, 3), 255, dtype=np.uint8)
        write_image(args.output, np.concatenate([bicubic_upscale(low), gap, model, gap, original], axis=1))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: bicubic | {args.model} | original (input {low.shape[1]}x{low.shape[0]})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import srgan_fast
    from srgan_fast.backends import availability
    from srgan_fast.weights import available_models

    print(f"srgan_fast {srgan_fast.__version__}")
    print("models:")
    for name, entry in available_models().items():
        print(f"  {name:10s} {entry.get('description', '')}")
    print("backends:")
    for name, reason in availability().items():
        print(f"  {name:12s} {'available' if reason is None else 'unavailable: ' + reason}")
    try:
        from srgan_fast import _C

        print("native build:", _C.build_info())
    except ImportError as exc:
        print(f"native build: not built ({exc})")
    return 0


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other refusal: a command's full usage would bury the line that matters."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="srgan-fast", description="Fast ×4 super-resolution (SRGAN/SRResNet).")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="upscale image files or folders ×4")
    up.add_argument("inputs", nargs="+", help="image files or folders (searched recursively, skipping hidden files, "
                    "hidden folders and the output folder)")
    up.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    up.add_argument("--format", help="output format for folders, e.g. png (default: the input's)")
    up.add_argument("--overwrite", action="store_true", help="replace existing output files")
    up.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger inputs")
    add_upscaler_options(up)
    up.set_defaults(func=run_upscale)

    demo = sub.add_parser("demo", help="write bicubic | model | original of a bundled sample")
    demo.add_argument("-o", "--output", default="srgan_fast_demo.png")
    add_upscaler_options(demo)
    demo.set_defaults(func=run_demo)

    info = sub.add_parser("info", help="models, backends available here and why others are not")
    info.set_defaults(func=run_info)

    for module_name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue  # that part is not in this installation
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; SIGTERM and SIGHUP stop a command as Ctrl-C does, with the shell's 128 + N status."""
    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals():
            return args.func(args)
    except KeyboardInterrupt as interrupt:  # a command without its own summary of what it had done
        stop = Stopped.from_interrupt(interrupt)
        print(f"srgan-fast: stopped by {stop.signal_name}", file=sys.stderr)
        return stop.exit_status


if __name__ == "__main__":
    sys.exit(main())
