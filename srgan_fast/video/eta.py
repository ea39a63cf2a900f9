"""Frames per second and time left for a video's progress bar, from steady batches only.

The first batch's time holds the engine's warm-up (plans, first-touch of feature maps), and its frames then
reach the encoder together, so a rate taken from the start (tqdm's own) first shows a time left several times
too long, and one taken from each frame's arrival jumps with every batch. Here the clock starts when the first
batch's last frame is encoded, and the rate is the frames since then over the time since then.
"""
from __future__ import annotations

import time
from typing import Callable

from tqdm import tqdm


class SteadyRate:
    """``frame_done()`` per encoded frame; ``text()`` is "N left, R frame/s" once one steady batch has come.

    total: the frames expected (None: unknown, then only the rate is shown); batch: frames per upscale call.
    """

    def __init__(self, total: int | None, batch: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.batch, self.clock = total, max(1, batch), clock
        self.frames = 0
        self._start: tuple[int, float] | None = None  # (frames, time) when the first batch was done

    def frame_done(self) -> None:
        self.frames += 1
        if self._start is None and self.frames >= self.batch:
            self._start = (self.frames, self.clock())

    def rate(self) -> float | None:
        """Frames per second since the first batch; None until a frame after it is done."""
        if self._start is None or self.frames <= self._start[0]:
            return None
        elapsed = self.clock() - self._start[1]
        return (self.frames - self._start[0]) / elapsed if elapsed > 0 else None

    def seconds_left(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(0, self.total - self.frames) / rate

    def text(self) -> str:
        rate = self.rate()
        if rate is None:
            return "warming up"
        left = self.seconds_left()
        return (f"{tqdm.format_interval(round(left))} left, " if left is not None else "") + f"{rate:.2f} frame/s"
