"""Frames in, ×4 frames out: the loop behind ``Upscaler.stream`` and the video pipeline.

Consecutive frames of the same shape and dtype are stacked into one ``upscale_batch`` call, so that small
frames share backend calls (a GPU wants many tiles per call). At most ``batch_size`` frames are held at any
time, so memory stays bounded on endless sources (a camera), and every frame comes out in input order.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from srgan_fast.tiler.channels import InputError
from srgan_fast.options import parse_device

# Input pixels per batch when the caller gives no batch size: enough that tiny frames do not each pay a
# backend call, small enough that large frames go one at a time (they already fill a batch of tiles).
DEFAULT_BATCH_PIXELS = {"cpu": 1 << 18, "cuda": 1 << 20}
MAX_DEFAULT_BATCH = 16


def default_batch_size(upscaler, frame_hw: tuple[int, int]) -> int:
    """Frames per ``upscale_batch`` call for frames of this size on this upscaler's device."""
    device_kind = parse_device(getattr(upscaler, "device", "cpu")).kind
    target = DEFAULT_BATCH_PIXELS.get(device_kind, DEFAULT_BATCH_PIXELS["cpu"])
    return int(max(1, min(MAX_DEFAULT_BATCH, target // max(1, frame_hw[0] * frame_hw[1]))))


def stream_frames(upscaler, frames: Iterable, batch_size: int | None = None) -> Iterator:
    """Upscale each item of ``frames`` ×4, yielding results in order (a generator: nothing runs until iterated).

    upscaler: an object with ``upscale(image)``; ``upscale_batch([N, H, W, C]) -> [N, 4H, 4W, C]`` is used
        for runs of equal-size arrays when it exists.
    frames: any iterable of what ``upscaler.upscale`` accepts: H×W[×C] uint8/uint16/float32 arrays, PIL images.
    batch_size: most frames held and upscaled together; None picks from the first frame's size and the device
        (``default_batch_size``). 1 gives the lowest latency for live sources.
    """
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise InputError(f"expected batch_size to be a positive integer or None, got {batch_size!r}")
    return _stream(upscaler, frames, batch_size)


def _stream(upscaler, frames: Iterable, batch_size: int | None) -> Iterator:
    batch_upscale = getattr(upscaler, "upscale_batch", None)
    pending: list[np.ndarray] = []  # equal shape and dtype, at most batch_size of them

    def flush() -> list:
        if not pending:
            return []
        if len(pending) == 1 or batch_upscale is None:
            results = [upscaler.upscale(frame) for frame in pending]
        elif pending[0].ndim == 2:
            # Gray H×W frames batch as [N, H, W, 1] and come back as H×W, as upscale() gives them.
            results = list(batch_upscale(np.stack(pending)[..., None])[..., 0])
        else:
            results = list(batch_upscale(np.stack(pending)))
        pending.clear()
        return results

    for frame in frames:
        if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3):
            # PIL images and malformed input go alone; upscale() converts them or says what is wrong.
            yield from flush()
            yield upscaler.upscale(frame)
            continue
        if pending and (frame.shape != pending[0].shape or frame.dtype != pending[0].dtype):
            yield from flush()
        if batch_size is None:
            batch_size = default_batch_size(upscaler, frame.shape[:2])
        pending.append(frame)
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
