"""Generator weights: safetensors files (no pickle, nothing runs on load) with metadata, loaded without torch.

A weights file holds the BN-folded generator (``fold_batchnorm``), float32, under the parameter names of
``Generator(batch_norm=False).state_dict()``. Its metadata (all strings, as safetensors requires):

  format           "srgan_fast.generator/1"
  name             model name, e.g. "srresnet"
  num_blocks       "16"              channels "64"            scale "4"
  input_range      "0,1"             output_range "0,1"
  tensors_sha256   sha256 over the tensors (names, shapes, bytes in name order): detects corruption in any file
  training_*, eval_* free-form facts written by ``training.export`` (data, steps, PSNR scored)

Named models ship in ``srgan_fast/pretrained/`` beside ``manifest.json``, which also records each file's sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from srgan_fast.atomic import atomic_output

FORMAT = "srgan_fast.generator/1"
DEFAULT_MODEL = "srgan"
# Bounds on the architecture a file may declare, checked before anything is allocated for it (the paper's
# network has 16 blocks of 64 channels; these leave room for far larger ones and refuse absurd metadata).
MAX_BLOCKS = 256
MAX_CHANNELS = 1024


class WeightsError(ValueError):
    """A weights file that is missing, corrupted or not an srgan_fast generator."""


@dataclass
class GeneratorWeights:
    """Folded generator parameters: name -> float32 array in torch layout (conv weights [out, in, kh, kw])."""

    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def num_blocks(self) -> int:
        return int(self.metadata["num_blocks"])

    @property
    def channels(self) -> int:
        return int(self.metadata["channels"])

    @property
    def name(self) -> str:
        return self.metadata.get("name", Path(self.source).stem)

    @property
    def sha256(self) -> str:
        return self.metadata["tensors_sha256"]


def tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype=np.float32)
        digest.update(f"{name}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_tensor_shapes(num_blocks: int, channels: int) -> dict[str, tuple[int, ...]]:
    """The parameter names and shapes of a folded generator, for validating files without torch."""
    c = channels
    shapes: dict[str, tuple[int, ...]] = {
        "head.weight": (c, 3, 9, 9), "head.bias": (c,), "head_prelu.weight": (c,),
        "trunk_conv.weight": (c, c, 3, 3), "trunk_conv.bias": (c,),
        "tail.weight": (3, c, 9, 9), "tail.bias": (3,),
    }
    for i in range(num_blocks):
        for conv in ("conv1", "conv2"):
            shapes[f"blocks.{i}.{conv}.weight"] = (c, c, 3, 3)
            shapes[f"blocks.{i}.{conv}.bias"] = (c,)
        shapes[f"blocks.{i}.prelu.weight"] = (c,)
    for j in range(2):
        shapes[f"upsample.{j}.conv.weight"] = (4 * c, c, 3, 3)
        shapes[f"upsample.{j}.conv.bias"] = (4 * c,)
        shapes[f"upsample.{j}.prelu.weight"] = (c,)
    return shapes


def _declared_shapes(metadata: dict[str, str], source: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the metadata's architecture implies, after bounding its numbers."""
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{source}: not an srgan_fast generator file (format {metadata.get('format')!r}, "
                           f"expected {FORMAT!r})")
    try:
        num_blocks, channels = int(metadata["num_blocks"]), int(metadata["channels"])
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{source}: metadata lacks a valid num_blocks/channels ({exc})") from None
    if not (0 <= num_blocks <= MAX_BLOCKS and 1 <= channels <= MAX_CHANNELS):
        raise WeightsError(f"{source}: metadata declares num_blocks={num_blocks}, channels={channels}; expected "
                           f"0..{MAX_BLOCKS} blocks of 1..{MAX_CHANNELS} channels")
    return expected_tensor_shapes(num_blocks, channels)


def _check_shapes(got: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: str) -> None:
    if got != expected:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = [k for k in expected if k in got and got[k] != expected[k]][:3]
        raise WeightsError(f"{source}: tensors do not match the architecture in its metadata "
                           f"(missing {missing}, unexpected {extra}, wrong shape {wrong})")


def _check_values(tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> None:
    """Finite values, then the sha256: a file can hash consistently and still hold NaN (black images)."""
    bad = [name for name in sorted(tensors) if not np.isfinite(tensors[name]).all()]
    if bad:
        raise WeightsError(f"{source}: weights contain NaN or Inf (in {', '.join(bad[:3])}"
                           f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''})")
    if tensors_sha256(tensors) != metadata.get("tensors_sha256"):
        raise WeightsError(f"{source}: corrupted weights (tensors sha256 does not match its metadata)")


def _validate(tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> None:
    _check_shapes({k: tuple(v.shape) for k, v in tensors.items()}, _declared_shapes(metadata, source), source)
    _check_values(tensors, metadata, source)


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
    if path.suffix == ".safetensors" or path.exists():
        return path, None
    names = ", ".join(sorted(models)) or "none shipped"
    raise WeightsError(f"unknown model {str(model)!r}: expected one of {names} or a path to a .safetensors file")


def load_weights(model: str | os.PathLike = DEFAULT_MODEL) -> GeneratorWeights:
    """Load a shipped model by name or a user's ``.safetensors`` file by path, verifying its integrity."""
    from safetensors import SafetensorError, safe_open

    path, expected_sha = resolve_weights_path(model)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if expected_sha is not None and file_sha256(path) != expected_sha:
        raise WeightsError(f"{path}: corrupted weights (file sha256 does not match the package manifest); "
                           "reinstall srgan_fast")
    try:
        # Header first (metadata, names, shapes): a file is refused before any of its tensors is read.
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            expected = _declared_shapes(metadata, str(path))
            _check_shapes({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, expected, str(path))
            tensors = {k: np.ascontiguousarray(f.get_tensor(k), dtype=np.float32) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{path}: unreadable safetensors file ({exc})") from None
    _check_values(tensors, metadata, str(path))
    return GeneratorWeights(tensors, metadata, str(path))


def save_weights(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """Write a weights file atomically (temp file + rename); returns the file's sha256."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta["format"] = FORMAT
    meta["tensors_sha256"] = tensors_sha256(tensors)
    _validate(tensors, meta, str(path))
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)
