"""``srgan-fast cuda-profile``: the CUDA engine's forward and each of its layers timed on this GPU."""
from __future__ import annotations

import sys

from srgan_fast.architecture import srresnet
from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.backends.cuda_backend import CudaBackend, _native_module
from srgan_fast.cli.common import USER_ERRORS
from srgan_fast.options import parse_size
from srgan_fast.weights import random_weights


def _git_commit() -> str:
    import subprocess
    from pathlib import Path

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_profile(args) -> int:
    import json

    try:
        h, w = parse_size(args.size)
    except ValueError as exc:
        print(f"error: --size: {exc}", file=sys.stderr)
        return 2
    reason = CudaBackend.unavailable_reason()
    if reason:  # no GPU here, as --device cuda without one in every command: a usage error
        print(f"error: the cuda backend cannot run here: {reason}", file=sys.stderr)
        return 2
    try:
        backend = CudaBackend(random_weights(srresnet(args.blocks, args.channels)), args.device, args.precision,
                              batch_size=args.batch, use_graphs=not args.no_graphs, fuse_blocks=args.fuse_blocks)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = backend._engine.profile(args.batch, h, w, args.repeats)
    _C = _native_module()
    result = {"device": backend._engine.device_name, "driver": _C.cuda_driver_version(), "commit": _git_commit(),
              "backend": "cuda", "precision": args.precision, "size": [h, w], "batch": args.batch,
              "blocks": args.blocks, "channels": args.channels, "graphs": not args.no_graphs,
              "fused_blocks": args.fuse_blocks, "ms": report["forward_ms"], "tflops": report["forward_tflops"],
              "layers": report["layers"]}
    print(f"{result['device']} {args.precision} {args.batch}x{h}x{w}: {report['forward_ms']:.3f} ms per batch, "
          f"{report['forward_tflops']:.1f} TFLOP/s")
    for layer in report["layers"]:
        print(f"  {layer['name']:<22} {layer['ms']:8.3f} ms  {layer['tflops']:7.1f} TFLOP/s")
    if args.json:
        write_bytes_atomically(args.json, json.dumps(result, indent=1).encode())
    return 0


def register(subparsers) -> None:
    """`srgan-fast cuda-profile`: the forward and each layer of the CUDA engine timed on this GPU."""
    parser = subparsers.add_parser("cuda-profile", help="time the CUDA backend (whole forward and per layer)")
    parser.add_argument("--size", default="540x960", help="input tile HxW (default 540x960: one 4K output frame)")
    parser.add_argument("--batch", type=int, default=1, help="tiles per launch")
    parser.add_argument("--precision", choices=CudaBackend.supported_precisions("cuda"), default="fp16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--blocks", type=int, default=16, help="residual blocks of the random-weight model")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fuse-blocks", action="store_true", help="one fused kernel per residual block")
    parser.add_argument("--no-graphs", action="store_true", help="launch kernel by kernel instead of a CUDA graph")
    parser.add_argument("--json", help="also write the result here (e.g. benchmarks/results/<gpu>-cuda.json)")
    parser.set_defaults(func=run_profile)
