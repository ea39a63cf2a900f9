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


class StreamError(RuntimeError):
    """A stream stopped at frame ``index`` (counted from 0): every result before it was delivered first. The
    message names the frame and the cause; ``__cause__`` is the original exception."""

    def __init__(self, index: int, message: str):
        super().__init__(f"frame {index}: {message}")
        self.index, self.reason = index, message

    def __reduce__(self):  # picklable (Ray, multiprocessing) with the constructor's own arguments
        return type(self), (self.index, self.reason)


class StreamInputError(StreamError, InputError):
    """Frame ``index`` of a stream is not a valid image: an ``InputError`` too, as ``upscale()`` raises."""


def stream_frames(upscaler, frames: Iterable, batch_size: int | None = None) -> Iterator:
    """Upscale each item of ``frames`` ×4, yielding results in order (a generator: nothing runs until iterated).

    upscaler: an object with ``upscale(image)``; ``upscale_batch([N, H, W, C]) -> [N, 4H, 4W, C]`` is used
        for runs of equal-size arrays when it exists.
    frames: any iterable of what ``upscaler.upscale`` accepts: H×W[×C] uint8/uint16/float32 arrays, PIL images.
    batch_size: most frames held and upscaled together; None picks from the first frame's size and the device
        (``default_batch_size``). 1 gives the lowest latency for live sources.

    A failure never costs the frames before it: when ``frames`` raises, or a frame cannot be upscaled, every
    earlier result is yielded first, then ``StreamError`` (``StreamInputError`` for a bad frame) names the
    failing frame's index. A bad frame stacked with others does not fail its neighbours: the batch is then
    redone one frame at a time.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise InputError(f"expected batch_size to be a positive integer or None, got {batch_size!r}")
    return _stream(upscaler, frames, batch_size)


def _upscale_one(upscaler, frame, index: int):
    try:
        return upscaler.upscale(frame)
    except InputError as exc:
        raise StreamInputError(index, str(exc)) from exc
    except Exception as exc:
        raise StreamError(index, f"{type(exc).__name__}: {exc}") from exc


def _stream(upscaler, frames: Iterable, batch_size: int | None) -> Iterator:
    batch_upscale = getattr(upscaler, "upscale_batch", None)
    pending: list[np.ndarray] = []  # equal shape and dtype, at most batch_size of them
    first = 0  # the stream index of pending[0]

    def flush() -> Iterator:
        nonlocal first
        batch, start = list(pending), first
        pending.clear()
        first += len(batch)
        if len(batch) > 1 and batch_upscale is not None:
            try:
                if batch[0].ndim == 2:
                    # Gray H×W frames batch as [N, H, W, 1] and come back as H×W, as upscale() gives them.
                    results = list(batch_upscale(np.stack(batch)[..., None])[..., 0])
                else:
                    results = list(batch_upscale(np.stack(batch)))
            except Exception:
                results = None  # one frame spoiled the batch, or it did not fit: each alone says which
            if results is not None:
                yield from results
                return
        for offset, frame in enumerate(batch):
            yield _upscale_one(upscaler, frame, start + offset)

    source = iter(frames)
    while True:
        try:
            frame = next(source)
        except StopIteration:
            break
        except Exception as exc:
            yield from flush()
            raise StreamError(first, f"the frame source raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3):
            # PIL images and malformed input go alone; upscale() converts them or says what is wrong.
            yield from flush()
            index, first = first, first + 1
            yield _upscale_one(upscaler, frame, index)
            continue
        if pending and (frame.shape != pending[0].shape or frame.dtype != pending[0].dtype):
            yield from flush()
        if batch_size is None:
            batch_size = default_batch_size(upscaler, frame.shape[:2])
        pending.append(frame)
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
