"""What an architecture's reader of other projects' state dicts works with (spandrel's idea: each architecture
detects its own layouts beside its description).

A reader gets the state dict's arrays (``StateDict``) and returns the description it holds plus the names its
modules have there; ``NotThisLayout`` says the keys depart from the layout, ``Refusal`` that the layout is
recognised but no description can represent it. ``srgan_fast.weights.detect`` tries the readers and turns
both into ``WeightsError``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from srgan_fast.architecture.layers import Network

MAX_UPSAMPLE_STAGES = 3  # srresnet's ×8
INSTANCE_NORM = "normalises by each image's own statistics, which no conv can fold in"


class NotThisLayout(Exception):
    """The keys or shapes depart from a layout: the reason names the first key that does."""


class Refusal(Exception):
    """A layout recognised that no description can represent: detection stops with this reason."""


class StateDict:
    """The unwrapped state dict; remembers what a layout read, since keys left unread mean another network."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.unread = set(arrays)

    def has(self, key: str) -> bool:
        return key in self.arrays

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.arrays:
            raise NotThisLayout(f"it has no {key!r}")
        return tuple(self.arrays[key].shape)

    def take(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if self.shape(key) != shape:
            raise NotThisLayout(f"{key!r} has shape {self.shape(key)}, expected {shape}")
        array = self.arrays[key]
        if array.dtype.kind != "f":
            raise NotThisLayout(f"{key!r} holds {array.dtype}, expected floating point")
        self.unread.discard(key)
        return array.astype(np.float64)

    def count(self, pattern: str) -> int:
        """1 + the highest index ``(\\d+)`` takes in keys matching ``pattern`` (0 if none): gaps surface later
        as missing keys. Indices are at most 4 digits, so what is built from them stays bounded."""
        regex = re.compile(pattern.replace(r"(\d+)", r"(\d{1,4})"))
        indices = [int(m.group(1)) for key in self.arrays if (m := regex.fullmatch(key))]
        return max(indices) + 1 if indices else 0

    def check_all_read(self) -> None:
        # BatchNorm's step counter is training state, meaningless for inference.
        unread = sorted(k for k in self.unread if not k.endswith(".num_batches_tracked"))
        if unread:
            raise NotThisLayout(f"it has tensors this layout does not have: {unread[:3]}")


def build_or_mismatch(builder: Callable[..., Network], **params) -> Network:
    """The description, or NotThisLayout when the numbers read from the keys are out of the builder's bounds."""
    try:
        return builder(**params)
    except ValueError as exc:
        raise NotThisLayout(str(exc)) from None


def upsample_scale(stages: int, what: str) -> int:
    if not 1 <= stages <= MAX_UPSAMPLE_STAGES:
        raise NotThisLayout(f"it has {stages} {what}, expected 1..{MAX_UPSAMPLE_STAGES}")
    return 2**stages


def no_activation(activation: str | None, layout: str) -> None:
    if activation is not None:
        raise Refusal(f"activation={activation!r} applies to an SRVGGNetCompact without PReLU slopes only; "
                      f"a {layout} fixes its own activations")


@dataclass(frozen=True)
class Layout:
    """One project's state-dict layout of an architecture: the keys that identify it and its reader."""

    name: str
    signature: tuple[str, ...]  # keys every instance of the layout has
    read: Callable[[StateDict, str | None], tuple[Network, Mapping[str, str | float]]]
