"""``srgan-fast demo``: bicubic | model | original of the bundled sample, side by side."""
from __future__ import annotations

import argparse
import sys

from srgan_fast.cli.common import USER_ERRORS, add_upscaler_options, make_upscaler
from srgan_fast.io.images import read_image
from srgan_fast.io.save import write_image


def register(subparsers) -> None:
    """Adds ``demo [-o OUT.png]``."""
    demo = subparsers.add_parser("demo", help="write bicubic | model | original of a bundled sample")
    demo.add_argument("-o", "--output", default="srgan_fast_demo.png")
    add_upscaler_options(demo)
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """bicubic | model | original of the bundled sample, side by side, so a newcomer sees what it does."""
    import numpy as np

    from srgan_fast.degradation import bicubic_downscale, bicubic_upscale
    from srgan_fast.samples import sample_path

    try:
        upscaler = make_upscaler(args)
    except USER_ERRORS as exc:  # the model or backend options as given: a usage error, as in the other commands
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        original = read_image(sample_path())[:, :, :3]
        low = bicubic_downscale(original)
        model = upscaler.upscale(low, size=original.shape[:2])  # side by side with the original
        gap = np.full((original.shape[0], 8, 3), 255, dtype=np.uint8)
        write_image(args.output, np.concatenate([bicubic_upscale(low), gap, model, gap, original], axis=1))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: bicubic | {args.model} | original (input {low.shape[1]}x{low.shape[0]})")
    return 0
