"""Frames per second and time left for a video's progress bar, counted in whole batches.

Frames reach the encoder a batch at a time (the upscaler returns a batch's frames together), and the bar redraws
on the first frame after the wait for a batch. A rate taken per frame counts that one frame against the whole
wait: on a short job of a few large batches it showed a time left up to a batch's size too long ("01:52 left"
at 35% of a 12-second job). The first batch's time also holds the engine's warm-up (plans, first touch of
feature maps). So a batch counts as done, whole, when its first frame arrives; the rate is the frames done
from the first batch to the latest over the time between them, and the time left counts down from the latest:
right from the second batch, whatever the warm-up took.
"""
from __future__ import annotations

import time
from typing import Callable

from tqdm import tqdm


class SteadyRate:
    """``frame_done()`` per encoded frame; ``text()`` is "T left, R frame/s" once two batches have come.

    total: the frames expected (None: unknown, then only the rate is shown); batch: frames per upscale call.
    """

    def __init__(self, total: int | None, batch: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.batch, self.clock = total, max(1, batch), clock
        self.frames = 0
        self._first: tuple[int, float] | None = None  # (frames done, time) when the first batch came
        self._last: tuple[int, float] | None = None   # (frames done, time) when the latest batch came

    def frame_done(self) -> None:
        self.frames += 1
        if (self.frames - 1) % self.batch == 0:  # a batch's first frame: the upscaler returned all of it
            done = self.frames + self.batch - 1
            self._last = (done if self.total is None else min(done, self.total), self.clock())
            self._first = self._first or self._last

    def rate(self) -> float | None:
        """Frames per second from the first batch to the latest; None until a second batch has come."""
        if self._first is None or self._last[0] == self._first[0]:
            return None
        elapsed = self._last[1] - self._first[1]
        return (self._last[0] - self._first[0]) / elapsed if elapsed > 0 else None

    def seconds_left(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        # Since the latest batch came the next one has been computing: that time is spent of what is left.
        return max(0.0, (self.total - self._last[0]) / rate - (self.clock() - self._last[1]))

    def text(self) -> str:
        rate = self.rate()
        if rate is None:
            return "warming up"
        left = self.seconds_left()
        return (f"{tqdm.format_interval(round(left))} left, " if left is not None else "") + f"{rate:.2f} frame/s"
