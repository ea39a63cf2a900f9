"""Bounds on what a weights file may declare, checked before anything is allocated for it: far above every
published configuration, far below what would exhaust memory while building the description."""
from __future__ import annotations

MAX_LAYERS = 512
MAX_CHANNELS = 1024


def check_params(architecture: str, scale: int, channels: int, layers: int, scales: tuple[int, ...]) -> None:
    if scale not in scales:
        raise ValueError(f"{architecture}: scale must be one of {', '.join(map(str, scales))}, got {scale}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{architecture}: channels must be in 1..{MAX_CHANNELS}, got {channels}")
    if not 0 <= layers <= MAX_LAYERS:
        raise ValueError(f"{architecture}: the block/conv count must be in 0..{MAX_LAYERS}, got {layers}")
