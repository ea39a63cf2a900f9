"""The ``srgan-fast`` command: upscale files and folders, a demo picture, and what this machine can run."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path

from srgan_fast.backends import BackendUnavailable
from srgan_fast.channels import InputError
from srgan_fast.imageio import DEFAULT_MAX_PIXELS, READ_SUFFIXES, WRITE_FORMATS, ImageFileError, read_image, write_image
from srgan_fast.weights import DEFAULT_MODEL, WeightsError

# Subcommands that live beside the parts they drive; each module has register_cli(subparsers).
PLUGIN_MODULES = ("srgan_fast.onnx_export", "srgan_fast.tensorrt.cli", "srgan_fast.video.cli",
                  "srgan_fast.backends.cuda_backend")
USER_ERRORS = (InputError, ImageFileError, WeightsError, BackendUnavailable, ValueError, OSError)


def add_upscaler_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that builds an Upscaler shares (also used by the video command)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or a .safetensors path "
                        "(default: %(default)s)")
    parser.add_argument("--backend", default="auto", help="auto, torch, native, cuda, tensorrt, onnxruntime")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if present)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"])
    parser.add_argument("--tile", type=int, help="tile core size in input pixels (default: from memory)")


def make_upscaler(args: argparse.Namespace):
    from srgan_fast.api import Upscaler

    return Upscaler(args.model, backend=args.backend, device=args.device, precision=args.precision, tile=args.tile)


def collect_jobs(inputs: list[str], output: str, suffix: str | None) -> list[tuple[Path, Path]]:
    """(source, destination) pairs. Several inputs or a folder need an output folder; a file may name a file."""
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
            if not files:
                raise ImageFileError(f"{item}: no images found (looked for {', '.join(sorted(READ_SUFFIXES))})")
            sources += [(f, f.relative_to(item)) for f in files]
        else:
            sources.append((item, Path(item.name)))
    out = Path(output)
    single_file = len(sources) == 1 and not Path(inputs[0]).is_dir() and out.suffix and not out.is_dir()
    if single_file:
        return [(sources[0][0], out)]
    jobs = []
    for source, relative in sources:
        name = relative.with_suffix(suffix or relative.suffix)
        if relative.suffix.lower() not in WRITE_FORMATS and not suffix:
            name = relative.with_suffix(".png")
        jobs.append((source, out / name))
    return jobs


def run_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        jobs = collect_jobs(args.inputs, args.output, args.format and "." + args.format.lstrip("."))
        upscaler = make_upscaler(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"srgan-fast: {upscaler.describe()}", file=sys.stderr)
    failures = 0
    for source, destination in tqdm(jobs, disable=len(jobs) < 2, unit="image", file=sys.stderr):
        try:
            if destination.exists() and not args.overwrite:
                raise ImageFileError(f"{destination}: exists (pass --overwrite to replace it)")
            if destination.resolve() == source.resolve():
                raise ImageFileError(f"{destination}: would overwrite its own input")
            image = read_image(source, max_pixels=args.max_pixels)
            result = upscaler.upscale(image)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                write_image(destination, result)
            for warning in caught:
                print(f"warning: {warning.message}", file=sys.stderr)
        except USER_ERRORS as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
    if failures:
        print(f"srgan-fast: {failures} of {len(jobs)} images failed", file=sys.stderr)
    return 1 if failures else 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srgan-fast", description="Fast ×4 super-resolution (SRGAN/SRResNet).")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="upscale image files or folders ×4")
    up.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    up.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
