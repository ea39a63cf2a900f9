"""The weights format: metadata, hashing and checks of an srgan_fast generator file, and in-memory weights.

Nothing here reads files or knows other projects' layouts, so detection (``weights.detect``) and loading
(``weights.load``) both build on it. The format itself is described in ``srgan_fast.weights.load``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srgan_fast.architecture import Network, build, srresnet

FORMAT = "srgan_fast.generator/1"
FORMAT_FAMILY = "srgan_fast."  # a file claiming another version of ours is refused, not detected


class WeightsError(ValueError):
    """A weights file that is missing, corrupted or not an srgan_fast generator."""


@dataclass
class GeneratorWeights:
    """Folded generator parameters: name -> float32 array in torch layout (conv weights [out, in, kh, kw])."""

    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    @functools.cached_property
    def network(self) -> Network:
        """The description of the network these tensors belong to (from the metadata)."""
        return network_from_metadata(self.metadata, self.source)

    @property
    def channels(self) -> int:
        return self.network.channels

    @property
    def scale(self) -> int:
        return self.network.scale

    @property
    def name(self) -> str:
        return self.metadata.get("name", Path(self.source).stem)

    @property
    def sha256(self) -> str:
        return self.metadata["tensors_sha256"]

    def describe(self) -> str:
        """The network and, for another project's weights, the layout they were read from, e.g.
        "srvgg_compact(num_convs=16, channels=64, scale=4, activation=prelu), from Real-ESRGAN
        SRVGGNetCompact (params)"."""
        network = self.network
        text = f"{network.architecture}({', '.join(f'{k}={v}' for k, v in network.params.items())})"
        return text + (f", from {self.metadata['detected_from']}" if "detected_from" in self.metadata else "")


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


def architecture_metadata(network: Network) -> dict[str, str]:
    """The metadata entries that record which network a file holds."""
    return {"architecture": network.architecture, "architecture_params": json.dumps(network.params),
            "scale": str(network.scale)}


def network_from_metadata(metadata: dict[str, str], source: str) -> Network:
    """The description a file's metadata declares; its numbers are bounded before anything is built."""
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{source}: not an srgan_fast generator file (format {metadata.get('format')!r}, "
                           f"expected {FORMAT!r})")
    try:
        if "architecture_params" in metadata:
            params = json.loads(metadata["architecture_params"])
            if not isinstance(params, dict):
                raise ValueError(f"architecture_params must be a JSON object, got {metadata['architecture_params']!r}")
            return build(metadata.get("architecture", ""), params)
        # Files from before architecture_params: the paper's network, by its two numbers.
        num_blocks, channels = int(metadata["num_blocks"]), int(metadata["channels"])
        return srresnet(num_blocks, channels, int(metadata.get("scale", "4")))
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{source}: metadata does not declare a valid network ({exc})") from None


def check_shapes(got: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: str) -> None:
    if got != expected:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = [k for k in expected if k in got and got[k] != expected[k]][:3]
        raise WeightsError(f"{source}: tensors do not match the architecture in its metadata "
                           f"(missing {missing}, unexpected {extra}, wrong shape {wrong})")


def check_values(tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> None:
    """Finite values, then the sha256: a file can hash consistently and still hold NaN (black images)."""
    bad = [name for name in sorted(tensors) if not np.isfinite(tensors[name]).all()]
    if bad:
        raise WeightsError(f"{source}: weights contain NaN or Inf (in {', '.join(bad[:3])}"
                           f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''})")
    if tensors_sha256(tensors) != metadata.get("tensors_sha256"):
        raise WeightsError(f"{source}: corrupted weights (tensors sha256 does not match its metadata)")


def validate(tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> None:
    expected = network_from_metadata(metadata, source).tensor_shapes()
    check_shapes({k: tuple(v.shape) for k, v in tensors.items()}, expected, source)
    check_values(tensors, metadata, source)


def weights_for(network: Network, tensors: dict[str, np.ndarray], name: str,
                extra_metadata: dict[str, str] | None = None, source: str = "<memory>") -> GeneratorWeights:
    """In-memory weights of ``network`` with the metadata a file of them would carry (checked like a file)."""
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    metadata = {**(extra_metadata or {}), "format": FORMAT, "name": name, **architecture_metadata(network),
                "input_range": "0,1", "output_range": "0,1", "tensors_sha256": tensors_sha256(tensors)}
    validate(tensors, metadata, source)
    return GeneratorWeights(tensors, metadata, source)


def random_weights(network: Network, seed: int = 0) -> GeneratorWeights:
    """``network`` with random values scaled by fan-in (activations stay O(1)): for timing and tests."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in network.tensor_shapes().items():
        if len(shape) == 4:  # conv weights
            tensors[name] = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif name.endswith(".bias"):
            tensors[name] = rng.uniform(-0.05, 0.05, shape)
        else:  # PReLU slopes
            tensors[name] = rng.uniform(0.05, 0.3, shape)
    return weights_for(network, tensors, "random")
