"""The ``srgan-fast`` command: upscale files and folders, a demo picture, and what this machine can run."""
from __future__ import annotations

import argparse
import importlib
import sys

from srgan_fast.api import DEFAULT_MEMORY_BUDGET, format_bytes
from srgan_fast.backends import BackendUnavailable, backend_names
from srgan_fast.channels import InputError
from srgan_fast.batch import collect_jobs, failure_line, upscale_file
from srgan_fast.imageio import DEFAULT_MAX_PIXELS, ImageFileError, read_image, write_image
from srgan_fast.distributed.cli import register_ray_options
from srgan_fast.options import PRECISIONS, parse_bytes, parse_device, parse_tile
from srgan_fast.signals import Stopped, stop_on_signals
from srgan_fast.weights import DEFAULT_MODEL, WeightsError

# Subcommands that live beside the parts they drive; each module has register_cli(subparsers).
PLUGIN_MODULES = ("srgan_fast.commands.export_onnx", "srgan_fast.tensorrt.cli", "srgan_fast.video.cli",
                  "srgan_fast.commands.cuda_profile", "srgan_fast.convert")
USER_ERRORS = (InputError, ImageFileError, WeightsError, BackendUnavailable, ValueError, OSError)


def _argument(parse):
    """An options.py parser as an argparse type: its ValueError becomes argparse's one-line usage error."""
    def parse_argument(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse_argument.__name__ = parse.__name__
    return parse_argument


def add_upscaler_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that builds an Upscaler shares (also used by the video command)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name, or a path to weights: ours "
                        "(.safetensors) or another project's (.pth, .safetensors) (default: %(default)s)")
    parser.add_argument("--backend", default="auto", choices=["auto", *backend_names()],
                        help="default: the fastest available for the device")
    parser.add_argument("--device", type=_argument(lambda text: str(parse_device(text))),
                        help="cpu, cuda or cuda:N (default: a GPU if present)")
    parser.add_argument("--precision", choices=PRECISIONS, help="as the backend supports (default: fp16 on GPUs, "
                        "fp32 on CPUs)")
    parser.add_argument("--tile", type=_argument(parse_tile), default=None, metavar="auto|N|ROWSxCOLS",
                        help="tile core size in input pixels (default: auto, from the memory budget)")
    defaults = ", ".join(f"{format_bytes(size)} on {kind}" for kind, size in DEFAULT_MEMORY_BUDGET.items())
    parser.add_argument("--memory-budget", type=_argument(parse_bytes), metavar="SIZE",
                        help=f"working memory the tiler may use, e.g. 2G or 512M (default: {defaults})")
    parser.add_argument("--tta", action="store_true", help="self-ensemble: average the 8 flipped and rotated runs "
                        "(about 8x the time, a little sharper and more exact)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("-s", "--outscale", type=float, help="output scale (e.g. 2.5; default: the model's); the "
                      "model's result is resized with Lanczos")
    size.add_argument("--width", type=int, help="output width in pixels, aspect ratio kept")
    size.add_argument("--height", type=int, help="output height in pixels, aspect ratio kept")


def make_upscaler(args: argparse.Namespace):
    from srgan_fast.api import Upscaler

    return Upscaler(args.model, backend=args.backend, device=args.device, precision=args.precision, tile=args.tile,
                    memory_budget=args.memory_budget, tta=args.tta, outscale=args.outscale, width=args.width,
                    height=args.height)


def run_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.ray is not None:
        from srgan_fast.distributed.cli import run_upscale_on_ray

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


def run_demo(args: argparse.Namespace) -> int:
    """bicubic | model | original of the bundled sample, side by side, so a newcomer sees what it does."""
    import numpy as np

    from srgan_fast.degradation import bicubic_downscale, bicubic_upscale
    from srgan_fast.samples import sample_path

    try:
        original = read_image(sample_path())[:, :, :3]
        low = bicubic_downscale(original)
        model = make_upscaler(args).upscale(low, size=original.shape[:2])  # side by side with the original
        gap = np.full((original.shape[0], 8, 3), 255, dtype=np.uint8)
        write_image(args.output, np.concatenate([bicubic_upscale(low), gap, model, gap, original], axis=1))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: bicubic | {args.model} | original (input {low.shape[1]}x{low.shape[0]})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import srgan_fast
    from srgan_fast.architecture import ARCHITECTURES
    from srgan_fast.backends import availability
    from srgan_fast.weights import available_models

    print(f"srgan_fast {srgan_fast.__version__}")
    print("models:")
    for name, entry in available_models().items():
        print(f"  {name:10s} {entry.get('description', '')}")
    print("architectures (for other projects' weights; see srgan-fast convert):")
    for name, build in ARCHITECTURES.items():
        print(f"  {name:14s} {build().describe()}")
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
    register_ray_options(up)
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
