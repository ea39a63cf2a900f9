"""``srgan-fast build-engine``: build (or find in the cache) the TensorRT engine for a model and tile shape.

``--save-onnx`` writes the exact graph TensorRT parses (with its Q/DQ nodes for int8/fp8); with ``--onnx-only``
nothing else is done, so the graph can be made and inspected on a machine without TensorRT or a GPU.
"""
from __future__ import annotations

import sys
from pathlib import Path

from srgan_fast.cli.common import missing_module


def _options(args):
    from srgan_fast.backends.tensorrt.options import BuildOptions

    dynamic = None
    if args.dynamic:
        min_h, min_w, max_h, max_w = args.dynamic
        dynamic = ((min_h, min_w), (max_h, max_w))
    return BuildOptions(precision=args.precision, tile=tuple(args.tile), batch=args.batch, io=args.io,
                        dynamic=dynamic, optimization_level=args.opt_level, workspace_mib=args.workspace_mib)


def _onnx_only(args, weights, options) -> int:
    from srgan_fast.io.atomic import write_bytes_atomically
    from srgan_fast.backends.tensorrt.builder import onnx_for_engine
    from srgan_fast.backends.tensorrt.cache import EngineCache
    from srgan_fast.backends.tensorrt.calibration import calibrate

    amax = None
    if options.quantized:
        if args.calibration_images is None:
            raise ValueError(f"{options.precision} needs --calibration-images DIR")
        directory = EngineCache(args.cache_dir).directory
        amax = calibrate(weights, args.calibration_images, options.tile, options.precision, directory, progress=True)
    write_bytes_atomically(Path(args.save_onnx), onnx_for_engine(weights, options, amax))
    print(f"wrote {args.save_onnx} (the graph a {options.precision} engine is built from); no engine built")
    return 0


def _build(args) -> int:
    from srgan_fast.io.atomic import write_bytes_atomically
    from srgan_fast.backends.tensorrt_backend import TensorRTBackend
    from srgan_fast.backends.tensorrt.builder import EngineBuildError, engine_for
    from srgan_fast.backends.tensorrt.cache import EngineCache
    from srgan_fast.weights import WeightsError, load_weights

    try:
        weights = load_weights(args.model)
        options = _options(args)
        missing = missing_module("onnx", "build-engine --save-onnx", "onnx") if args.save_onnx else None
        if missing:
            raise ValueError(missing)
        if args.onnx_only:
            if not args.save_onnx:
                raise ValueError("--onnx-only needs --save-onnx PATH")
            return _onnx_only(args, weights, options)
        reason = TensorRTBackend.unavailable_reason()
        if reason:
            raise ValueError(f"cannot build an engine here: {reason}")
        if args.save_onnx:
            _onnx_only(args, weights, options)
        cache = EngineCache(args.cache_dir)
        device_index = int(args.device.partition(":")[2] or 0)
        engine, key = engine_for(weights, options, device_index=device_index, cache=cache,
                                 calibration_images=args.calibration_images, progress=True)
    except (ValueError, WeightsError, EngineBuildError) as exc:
        print(f"build-engine: {exc}", file=sys.stderr)
        return 2
    print(f"engine {cache.path_for(key)} ({len(engine) / 1e6:.1f} MB, {options.precision}, tile "
          f"{options.tile[0]}x{options.tile[1]}, batch {options.batch})")
    if args.output:
        write_bytes_atomically(Path(args.output), engine)  # the bare plan, loadable by trtexec --loadEngine
        print(f"wrote {args.output}")
    return 0


def register(subparsers) -> None:
    from srgan_fast.options import PRECISIONS

    p = subparsers.add_parser("build-engine", help="build and cache a TensorRT engine for a model and tile shape")
    p.add_argument("model", help="model name or path to a .safetensors weights file")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument("--tile", type=int, nargs=2, metavar=("H", "W"), default=(128, 128),
                   help="input tile height and width the engine is built (tuned) for")
    p.add_argument("--batch", type=int, default=8, help="tiles per launch (default 8)")
    p.add_argument("--io", choices=("uint8", "float"), default="uint8",
                   help="uint8: NHWC uint8 with conversions in the engine; float: NCHW float32")
    p.add_argument("--dynamic", type=int, nargs=4, metavar=("MIN_H", "MIN_W", "MAX_H", "MAX_W"),
                   help="one engine for this range of tile sizes (default: static, faster)")
    p.add_argument("--calibration-images", metavar="DIR", help="folder of sample images (int8 and fp8)")
    p.add_argument("--opt-level", type=int, default=3, help="TensorRT builder optimization level 0..5")
    p.add_argument("--workspace-mib", type=int, default=None, help="builder workspace limit in MiB")
    p.add_argument("--cache-dir", default=None, help="engine cache directory (default: user cache dir)")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("-o", "--output", help="also write the bare serialized engine here")
    p.add_argument("--save-onnx", metavar="PATH", help="also write the ONNX graph the engine is built from")
    p.add_argument("--onnx-only", action="store_true", help="only write --save-onnx; no TensorRT needed")
    p.set_defaults(func=_build)
