"""``srgan-fast export-onnx MODEL -o OUT.onnx``: the command-line face of ``srgan_fast.backends.onnx_graph``."""
from __future__ import annotations

import sys

from srgan_fast.backends.onnx_graph import IO_MODES, export_onnx
from srgan_fast.cli.common import USER_ERRORS, missing_module
from srgan_fast.options import FLOAT_PRECISIONS


def run_export(args) -> int:
    """0 when written; 2 when nothing could be (a usage error, onnx missing, a model or path that cannot be used)."""
    if args.tile is None and not args.dynamic:
        print("srgan-fast export-onnx: error: give --tile H W for a static graph or --dynamic for dynamic height and "
              "width (see srgan-fast export-onnx --help)", file=sys.stderr)
        return 2
    missing = missing_module("onnx", "export-onnx", "onnx")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    precision = args.precision
    try:
        path = export_onnx(args.model, args.output, tile=None if args.dynamic else tuple(args.tile),
                           batch=args.batch, precision=precision, io=args.io, opset=args.opset)
    except USER_ERRORS as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {precision}, io {args.io}, "
          f"{'dynamic H/W' if args.dynamic else 'tile %dx%d' % tuple(args.tile)})")
    return 0


def register(subparsers) -> None:
    """Adds ``export-onnx MODEL -o OUT.onnx [--tile H W | --dynamic] [--fp16 | --bf16] [--io uint8]``."""
    p = subparsers.add_parser("export-onnx", help="export the generator to ONNX (BN folded, checked)")
    p.add_argument("model", help="model name or path to a .safetensors weights file")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--tile", type=int, nargs=2, metavar=("H", "W"), help="static input height and width")
    shape.add_argument("--dynamic", action="store_true", help="dynamic input height and width")
    p.add_argument("--batch", type=int, default=None, help="static batch size (default: dynamic)")
    p.add_argument("--precision", choices=FLOAT_PRECISIONS, default="fp32", help="weights and activations "
                   "(default: %(default)s)")
    p.add_argument("--io", choices=IO_MODES, default="float",
                   help="float: NCHW float32 in [0,1]; uint8: NHWC uint8, conversion inside the graph")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the lowest that works)")
    p.set_defaults(func=run_export)
