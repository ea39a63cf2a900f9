"""Network weights: safetensors files (no pickle, nothing runs on load) with metadata, loaded without torch.

A weights file holds the folded (inference) network, float32, under the tensor names of its description
(``srgan_fast.architecture``). Its metadata (all strings, as safetensors requires):

  format              "srgan_fast.generator/1"
  name                model name, e.g. "srresnet"
  architecture        "srresnet" | "msrresnet" | "srvgg_compact" | "rrdbnet"
  architecture_params JSON of the architecture's parameters, e.g. {"num_blocks": 16, "channels": 64, "scale": 4};
                      absent in files written before it existed: then num_blocks/channels/scale (srresnet)
  scale "4"  input_range "0,1"  output_range "0,1"
  tensors_sha256      sha256 over the tensors (names, shapes, bytes in name order): detects corruption in any file
  training_*, eval_*  free-form facts written by ``training.export`` (data, steps, PSNR scored)

Other projects' weights load too: a ``.safetensors`` without this format, or a ``.pth``/``.pt``/``.ckpt``
read by torch with ``weights_only=True`` (never unpickled otherwise), is detected
(``srgan_fast.weights.detect``) and gets the metadata above plus ``detected_from`` (the layout found)
and ``source_file``.

Named models ship in ``srgan_fast/pretrained/`` beside ``manifest.json``, which also records each file's sha256.
"""
from __future__ import annotations

import os
import pickle
import re
import json
from importlib import resources
from pathlib import Path

import numpy as np

from srgan_fast.io.atomic import atomic_output
from srgan_fast.weights.detect import detect
from srgan_fast.weights.format import (FORMAT, FORMAT_FAMILY, GeneratorWeights, WeightsError, check_shapes,
                                       check_values, file_sha256, network_from_metadata, tensors_sha256, validate,
                                       weights_for)

DEFAULT_MODEL = "srgan"
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
ACCEPTED_FILES = f"a .safetensors, {', '.join(TORCH_SUFFIXES[:-1])} or {TORCH_SUFFIXES[-1]} file"


def _pretrained_dir() -> Path:
    return Path(str(resources.files("srgan_fast") / "pretrained"))


def available_models() -> dict[str, dict]:
    """Shipped models: name -> manifest entry (file, sha256, description)."""
    manifest = _pretrained_dir() / "manifest.json"
    if not manifest.exists():
        return {}
    return json.loads(manifest.read_text())["models"]


def resolve_weights_path(model: str | os.PathLike) -> tuple[Path, str | None]:
    """A model name or a path -> (file, expected file sha256 or None for a user's file)."""
    models = available_models()
    if isinstance(model, str) and model in models:
        entry = models[model]
        return _pretrained_dir() / entry["file"], entry["sha256"]
    path = Path(model)
    if path.suffix in (".safetensors", *TORCH_SUFFIXES) or path.exists():
        return path, None
    names = ", ".join(sorted(models)) or "none shipped"
    raise WeightsError(f"unknown model {str(model)!r}: expected one of {names} or a path to {ACCEPTED_FILES}")


def load_weights(model: str | os.PathLike = DEFAULT_MODEL, activation: str | None = None) -> GeneratorWeights:
    """Load a shipped model by name or a weights file by path, verifying its integrity: ours, or another
    project's state dict (``.safetensors``, or ``.pth``/``.pt``/``.ckpt`` through torch), detected.

    activation: only for a Real-ESRGAN SRVGGNetCompact without PReLU slopes, whose activation its keys
    cannot tell ("relu" or "leakyrelu").
    """
    from safetensors import SafetensorError, safe_open

    path, expected_sha = resolve_weights_path(model)
    if path.is_dir():
        raise WeightsError(f"weights path {path} is a directory: expected {ACCEPTED_FILES}")
    if path.exists() and not path.is_file():
        raise WeightsError(f"weights path {path} is not a regular file: expected {ACCEPTED_FILES}")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if expected_sha is not None and file_sha256(path) != expected_sha:
        raise WeightsError(f"{path}: corrupted weights (file sha256 does not match the package manifest); "
                           "reinstall srgan_fast")
    if path.suffix.lower() in TORCH_SUFFIXES:
        return _detected_weights(_read_torch_checkpoint(path), path, activation)
    try:
        # Ours: header first (metadata, names, shapes), so a file is refused before any of its tensors is read.
        # Another project's state dict is detected from its tensors.
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            ours = metadata.get("format", "").startswith(FORMAT_FAMILY)
            if ours:
                expected = network_from_metadata(metadata, str(path)).tensor_shapes()
                check_shapes({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, expected, str(path))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{path}: unreadable safetensors file ({exc})") from None
    if not ours:
        return _detected_weights(tensors, path, activation)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    check_values(tensors, metadata, str(path))
    return GeneratorWeights(tensors, metadata, str(path))


def _read_torch_checkpoint(path: Path):
    """A torch checkpoint's contents, tensors as numpy arrays; only ``weights_only`` unpickling (tensors and
    plain containers), since a pickle can run any code while it loads."""
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{path}: {path.suffix} files need PyTorch to read; convert once where torch is "
                           f"installed (srgan-fast convert {path} {path.with_suffix('.safetensors')}) and load "
                           "the .safetensors without it") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"{path}: refused to unpickle it ({_pickle_refusal(exc)}): only tensors and plain "
                           "containers load, never pickled objects or code") from None
    except Exception as exc:  # noqa: BLE001 - a malformed file can fail anywhere in the parser (IndexError, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: unreadable torch checkpoint ({reason})") from None
    return _as_numpy(checkpoint, torch)


def _pickle_refusal(exc: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, without the rest of its message (which suggests
    allowlisting the global or weights_only=False)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc)) or re.search(r"Unsupported operand \d+", str(exc))
    if found is None:
        return "not a weights-only pickle"
    return f"it references {found.group(1)}" if found.groups() else found.group(0)


def _as_numpy(node, torch):
    """Nested containers as dicts, tensors as numpy arrays (float32 for float dtypes numpy lacks: bfloat16, fp8)."""
    if isinstance(node, dict):
        return {key: _as_numpy(value, torch) for key, value in node.items()}
    if isinstance(node, torch.Tensor):
        tensor = node.detach().cpu()
        numpy_floats = (torch.float16, torch.float32, torch.float64)
        return (tensor.float() if tensor.is_floating_point() and tensor.dtype not in numpy_floats else tensor).numpy()
    return node


def _detected_weights(state_dict, path: Path, activation: str | None) -> GeneratorWeights:
    try:
        detected = detect(state_dict, activation=activation)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    metadata = {"detected_from": detected.source_layout, "source_file": path.name}
    return weights_for(detected.network, detected.tensors, path.stem, metadata, source=str(path))


def save_weights(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """Write a weights file atomically (temp file + rename); returns the file's sha256."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta["format"] = FORMAT
    meta["tensors_sha256"] = tensors_sha256(tensors)
    validate(tensors, meta, str(path))
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)
