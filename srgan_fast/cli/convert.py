"""``srgan-fast convert IN OUT.safetensors``: the command-line face of ``srgan_fast.weights.convert``."""
from __future__ import annotations

import argparse
import sys

from srgan_fast.architecture import SRVGG_ACTIVATIONS
from srgan_fast.weights import FORMAT, WeightsError, load_weights
from srgan_fast.weights.convert import convert


def run_convert(args: argparse.Namespace) -> int:
    try:
        path = convert(args.input, args.output, overwrite=args.overwrite, activation=args.activation)
        written = load_weights(path)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {written.describe()}")
    return 0


def register(subparsers) -> None:
    """Adds ``convert IN OUT.safetensors [--overwrite] [--activation relu|leakyrelu]``."""
    p = subparsers.add_parser("convert", help="write another project's weights (.pth, .safetensors) as an "
                              f"srgan_fast weights file ({FORMAT})")
    p.add_argument("input", help="a .pth/.pt/.ckpt (read with torch, weights only) or .safetensors state dict")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--activation", choices=[a for a in SRVGG_ACTIVATIONS if a != "prelu"],
                   help="an SRVGGNetCompact without PReLU slopes: the activation it was trained with")
    p.set_defaults(func=run_convert)
