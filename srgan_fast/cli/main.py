"""``srgan-fast``: the parser, one sub-command per module of this package, and the signal handling and warning
lines around a run."""
from __future__ import annotations

import contextlib
import sys
import warnings

from srgan_fast.cli import convert, cuda_profile, demo, export_onnx, info, serve, tensorrt, upscale, video
from srgan_fast.cli.common import OneLineErrorParser
from srgan_fast.io.signals import report_stop, stop_on_signals

COMMANDS = (upscale, video, serve, demo, info, convert, export_onnx, tensorrt, cuda_profile)


def build_parser() -> OneLineErrorParser:
    from srgan_fast import __version__

    parser = OneLineErrorParser(prog="srgan-fast", description="Fast ×4 super-resolution (SRGAN/SRResNet).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


@contextlib.contextmanager
def warnings_as_lines():
    """Python warnings as ``warning: MESSAGE`` lines, like the command's own: Python's format adds the source
    file and line, which mean nothing to a user. Written above any progress bar."""
    from tqdm import tqdm

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        tqdm.write(f"warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """The command line; SIGTERM and SIGHUP stop a command as Ctrl-C does, with the shell's 128 + N status."""
    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals(), warnings_as_lines():
            return args.func(args)
    except KeyboardInterrupt as interrupt:  # a command without its own summary of what it had done
        return report_stop(interrupt)
