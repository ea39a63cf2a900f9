"""``srgan-fast convert IN OUT.safetensors``: another project's weights (or ours) as an srgan_fast weights file.

Run once where torch is installed; the file it writes loads anywhere without torch and says which network
it holds and where it came from (metadata ``architecture``, ``architecture_params``, ``detected_from``,
``source_file``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from srgan_fast.architecture.zoo import SRVGG_ACTIVATIONS
from srgan_fast.weights import FORMAT, WeightsError, load_weights, save_weights

# Written afresh by save_weights from the tensors it writes.
_DERIVED_METADATA = ("format", "tensors_sha256")


def convert(source: str | os.PathLike, destination: str | os.PathLike, *, overwrite: bool = False,
            activation: str | None = None) -> Path:
    """Read ``source`` (detecting its network), write it to ``destination`` (.safetensors, atomically).

    activation: only for an SRVGGNetCompact without PReLU slopes ("relu" or "leakyrelu").
    """
    destination = Path(destination)
    if destination.suffix != ".safetensors":
        raise WeightsError(f"{destination}: the output must be a .safetensors file, got suffix "
                           f"{destination.suffix or '(none)'!r}")
    if destination.exists() and not overwrite:
        raise WeightsError(f"{destination}: exists (pass --overwrite to replace it)")
    # A Path, never a bare name: "convert srgan out.safetensors" converts the file ./srgan, not a shipped model.
    weights = load_weights(Path(source), activation=activation)
    metadata = {k: v for k, v in weights.metadata.items() if k not in _DERIVED_METADATA}
    save_weights(destination, weights.tensors, metadata)
    return destination


def _convert_command(args: argparse.Namespace) -> int:
    try:
        path = convert(args.input, args.output, overwrite=args.overwrite, activation=args.activation)
        written = load_weights(path)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {written.describe()}")
    return 0


def register_cli(subparsers) -> None:
    """Adds ``convert IN OUT.safetensors [--overwrite] [--activation relu|leakyrelu]``."""
    p = subparsers.add_parser("convert", help="write another project's weights (.pth, .safetensors) as an "
                              f"srgan_fast weights file ({FORMAT})")
    p.add_argument("input", help="a .pth/.pt/.ckpt (read with torch, weights only) or .safetensors state dict")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--activation", choices=[a for a in SRVGG_ACTIVATIONS if a != "prelu"],
                   help="an SRVGGNetCompact without PReLU slopes: the activation it was trained with")
    p.set_defaults(func=_convert_command)
