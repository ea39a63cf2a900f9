"""``srgan-fast export-onnx MODEL -o OUT.onnx``: the command-line face of ``srgan_fast.backends.onnx_graph``."""
from __future__ import annotations

from srgan_fast.backends.onnx_graph import IO_MODES, export_onnx
from srgan_fast.options import FLOAT_PRECISIONS


def run_export(args) -> int:
    if args.tile is None and not args.dynamic:
        raise SystemExit("export-onnx: give --tile H W for a static graph or --dynamic for dynamic height/width")
    precision = args.precision
    path = export_onnx(args.model, args.output, tile=None if args.dynamic else tuple(args.tile),
                       batch=args.batch, precision=precision, io=args.io, opset=args.opset)
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
