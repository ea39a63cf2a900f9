"""``srgan-fast info``: the models, architectures and backends of this installation, and why a backend is not
available here."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Adds ``info``."""
    info = subparsers.add_parser("info", help="models, backends available here and why others are not")
    info.set_defaults(func=run_info)


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
