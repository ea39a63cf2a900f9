"""What every sub-command shares: the Upscaler's options, how they become an Upscaler, and one-line errors.

A leaf of the cli package: the command modules import it, it imports none of them.
"""
from __future__ import annotations

import argparse

from srgan_fast.api import DEFAULT_MEMORY_BUDGET
from srgan_fast.backends import BackendUnavailable, backend_names
from srgan_fast.io.images import ImageFileError
from srgan_fast.options import (PRECISIONS, format_bytes, parse_bytes, parse_device, parse_outscale,
                                parse_positive_int, parse_precision, parse_tile)
from srgan_fast.tiler.channels import InputError
from srgan_fast.weights import DEFAULT_MODEL, WeightsError

# What a user can get wrong (a file, a model, an option): reported on one line, never as a traceback.
USER_ERRORS = (InputError, ImageFileError, WeightsError, BackendUnavailable, ValueError, OSError)


def argument_type(parse):
    """An options.py parser as an argparse type: its ValueError becomes argparse's one-line usage error."""
    def parse_argument(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse_argument.__name__ = parse.__name__
    return parse_argument


def missing_module(module: str, what: str, extra: str) -> str | None:
    """The one line saying that ``what`` needs ``module`` and how to install it, or None where it is there."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return None
    return f"{what} needs the {module} package, which is not installed: pip install 'srgan_fast[{extra}]'"


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other refusal: a command's full usage would bury the line that matters."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_upscaler_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that builds an Upscaler shares (also used by the video command)."""
    add_model_options(parser)
    add_output_options(parser)


def add_model_options(parser: argparse.ArgumentParser, many: bool = False) -> None:
    """The model, backend, device, precision, tile and memory budget; ``many``: --model may be repeated (a list)."""
    if many:
        parser.add_argument("--model", action="append", help="shipped model name, or a path to weights; repeat it "
                            f"to load several, the first is the default (default: {DEFAULT_MODEL})")
    else:
        parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name, or a path to weights: ours "
                            "(.safetensors) or another project's (.pth, .safetensors) (default: %(default)s)")
    parser.add_argument("--backend", default="auto", choices=["auto", *backend_names()],
                        help="default: the fastest available for the device")
    parser.add_argument("--device", type=argument_type(lambda text: str(parse_device(text))),
                        help="cpu, cuda or cuda:N (default: a GPU if present)")
    parser.add_argument("--precision", type=argument_type(parse_precision), metavar="|".join(PRECISIONS),
                        help="as the backend supports (default: fp16 on GPUs, "
                        "fp32 on CPUs)")
    parser.add_argument("--calibration-images", metavar="DIR",
                        help="int8: a folder of sample images to calibrate the model from (the shipped models "
                             "need none; the table is cached for the weights)")
    parser.add_argument("--tile", type=argument_type(parse_tile), default=None, metavar="auto|N|ROWSxCOLS",
                        help="tile core size in input pixels (default: auto, from the memory budget)")
    defaults = ", ".join(f"{format_bytes(size)} on {kind}" for kind, size in DEFAULT_MEMORY_BUDGET.items())
    parser.add_argument("--memory-budget", type=argument_type(parse_bytes), metavar="SIZE",
                        help=f"working memory the tiler may use, e.g. 2G or 512M (default: {defaults})")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Self-ensemble and the output size."""
    parser.add_argument("--tta", action="store_true", help="self-ensemble: average the 8 flipped and rotated runs "
                        "(about 8x the time, a little sharper and more exact)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("-s", "--outscale", type=argument_type(parse_outscale), metavar="SCALE",
                      help="output scale, 1 or more (e.g. 2.5; default: the model's); the model's result is resized "
                           "with Lanczos")
    size.add_argument("--width", type=argument_type(lambda text: parse_positive_int(text, "width")), metavar="PIXELS",
                      help="output width in pixels, aspect ratio kept")
    size.add_argument("--height", type=argument_type(lambda text: parse_positive_int(text, "height")),
                      metavar="PIXELS", help="output height in pixels, aspect ratio kept")


def backend_options(args: argparse.Namespace) -> dict:
    """The options of add_model_options that go to the backend, given only when set (other backends lack them)."""
    return {} if args.calibration_images is None else {"calibration_images": args.calibration_images}


def make_upscaler(args: argparse.Namespace):
    from srgan_fast.api import Upscaler

    return Upscaler(args.model, backend=args.backend, device=args.device, precision=args.precision, tile=args.tile,
                    memory_budget=args.memory_budget, tta=args.tta, outscale=args.outscale, width=args.width,
                    height=args.height, **backend_options(args))


def summary_line(result, detail: str = "") -> str:
    """The one line a finished video run prints; ``detail`` goes after its frame rate."""
    copied = f"; copied {', '.join(result.copied)}" if result.copied else ""
    megapixels = result.frames * result.size[0] * result.size[1] / 1e6
    rate = f", {megapixels / result.seconds:.3g} MP/s" if result.seconds > 0 else ""
    return (f"wrote {result.path}: {result.frames} frames {result.size[0]}x{result.size[1]} {result.codec} "
            f"{result.pix_fmt} in {result.seconds:.1f} s ({result.fps:.2f} fps{rate}{detail}){copied}")


