"""Another project's weights (or ours) as an srgan_fast weights file (``srgan-fast convert IN OUT.safetensors``).

Run once where torch is installed; the file it writes loads anywhere without torch and says which network
it holds and where it came from (metadata ``architecture``, ``architecture_params``, ``detected_from``,
``source_file``).
"""
from __future__ import annotations

import os
from pathlib import Path

from srgan_fast.weights.load import WeightsError, load_weights, save_weights

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
