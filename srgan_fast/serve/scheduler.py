"""Batches of windows taken from every waiting request, fed to the engines one batch at a time per lane.

Each request (a ``Job``) hands the scheduler chunks of same-shaped windows (what ``Upscaler.upscale`` would
pass to its backend) and blocks until they come back. A free lane picks the next job in round-robin order,
takes that job's next window's shape as the batch shape, waits a short bounded time for more windows of that
shape when the batch is not full, then fills the batch one window per job in turn, so a small request's
windows ride in the next batch instead of behind every window of a 4K one.

Lanes: a lane is one engine that runs one batch at a time (the native and CUDA engines serialise their batches
anyway). The bulk lane runs anything. An optional express lane, a second engine with fewer threads, only
takes small windows and only while every bulk lane is busy: a batch cannot be interrupted once started, so on
a CPU a 64² request would otherwise wait out a whole batch of 2048² windows. Engines give the same values
whatever their thread count and batch (checked by the tests), so which lane ran a window never shows.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Hashable

import numpy as np


class Cancelled(Exception):
    """The job was cancelled (the client went away or the server is stopping) before its windows ran."""


@dataclass(frozen=True)
class Lane:
    """One engine per model: ``runners[model](tiles [N, h, w, 3]) -> [N, sh, sw, 3]``, one call at a time."""

    name: str
    runners: dict[Hashable, Callable[[np.ndarray], np.ndarray]]
    max_window_pixels: int | None = None  # express lanes: the largest window they take; None: any


class _Chunk:
    """Windows one ``run`` call waits for; results land here batch by batch."""

    def __init__(self, job: Job, key: tuple, tiles: np.ndarray):
        self.job, self.key, self.tiles = job, key, tiles
        self.results: np.ndarray | None = None
        self.remaining = len(tiles)
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = self.error or error
        self.done.set()


@dataclass(eq=False)
class Job:
    """One request's share of the scheduler; ``cancel`` drops its windows that have not run yet."""

    scheduler: TileScheduler
    pending: deque = field(default_factory=deque)  # (chunk, window index), oldest first
    cancelled: bool = False

    def run(self, model: Hashable, tiles: np.ndarray, max_batch: int) -> np.ndarray:
        """[N, h, w, 3] windows -> [N, sh, sw, 3], batched with other jobs' windows of the same shape."""
        return self.scheduler.run(self, model, tiles, max_batch)

    def cancel(self) -> None:
        self.scheduler.cancel(self)


@dataclass
class BatchRecord:
    """What ``on_batch`` is told after each backend call."""

    lane: str
    tiles: int
    jobs: int
    seconds: float
    pixels: int  # input pixels in the batch


class TileScheduler:
    """Round-robin batching across jobs over one or more lanes (see the module docstring).

    max_wait_s: how long a lane holds a batch that is not full, from the first window's arrival, for more of
        that shape; bounded so that a lone request never waits for company.
    on_batch: called (from the lane's thread, outside the lock) with a ``BatchRecord`` after each batch.
    """

    def __init__(self, lanes: list[Lane], max_wait_s: float = 0.005,
                 on_batch: Callable[[BatchRecord], None] | None = None):
        if not any(lane.max_window_pixels is None for lane in lanes):
            raise ValueError("a scheduler needs at least one lane that takes any window (max_window_pixels=None)")
        self._lanes, self._max_wait, self._on_batch = lanes, max_wait_s, on_batch
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()  # jobs with pending windows, in round-robin order
        self._arrived: dict[tuple, float] = {}  # batch key -> when its oldest pending window arrived
        self._bulk_busy = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._lane_loop, args=(lane,), name=f"srgan-serve-{lane.name}",
                                          daemon=True) for lane in lanes]
        for thread in self._threads:
            thread.start()

    def job(self) -> Job:
        return Job(self)

    def run(self, job: Job, model: Hashable, tiles: np.ndarray, max_batch: int) -> np.ndarray:
        if tiles.ndim != 4 or len(tiles) == 0:
            raise ValueError(f"expected [N, h, w, 3] windows with N >= 1, got shape {tiles.shape}")
        key = (model, tiles.shape[1:], tiles.dtype.str, max(1, int(max_batch)))
        chunk = _Chunk(job, key, tiles)
        with self._cond:
            if job.cancelled or self._closed:
                raise Cancelled("the request was cancelled")
            if not job.pending:
                self._jobs.append(job)
            job.pending.extend((chunk, index) for index in range(len(tiles)))
            self._arrived.setdefault(key, time.monotonic())
            self._cond.notify_all()
        chunk.done.wait()
        if chunk.error is not None:
            raise chunk.error
        return chunk.results

    def cancel(self, job: Job) -> None:
        with self._cond:
            job.cancelled = True
            self._drop(job, Cancelled("the request was cancelled"))

    def close(self) -> None:
        """Stop the lanes after their current batch; jobs still waiting are cancelled."""
        with self._cond:
            self._closed = True
            for job in list(self._jobs):
                self._drop(job, Cancelled("the server is stopping"))
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def pending_windows(self) -> int:
        with self._cond:
            return sum(len(job.pending) for job in self._jobs)

    def _drop(self, job: Job, error: BaseException) -> None:
        """Under the lock: forget the job's pending windows and release its waiting chunks."""
        chunks = {id(chunk): chunk for chunk, _ in job.pending}
        job.pending.clear()
        if job in self._jobs:
            self._jobs.remove(job)
        for chunk in chunks.values():
            chunk.finish(error)
        self._forget_idle_keys()

    def _forget_idle_keys(self) -> None:
        live = {chunk.key for job in self._jobs for chunk, _ in job.pending}
        for key in [key for key in self._arrived if key not in live]:
            del self._arrived[key]

    def _takes(self, lane: Lane, key: tuple) -> bool:
        if key[0] not in lane.runners:
            return False
        if lane.max_window_pixels is None:
            return True
        h, w = key[1][:2]
        return h * w <= lane.max_window_pixels and self._bulk_busy >= self._bulk_lanes

    @property
    def _bulk_lanes(self) -> int:
        return sum(lane.max_window_pixels is None for lane in self._lanes)

    def _next_batch(self, lane: Lane) -> list[tuple[_Chunk, int]] | None:
        """Under the lock: wait for work this lane takes, then take a batch of it (None once closed)."""
        while True:
            if self._closed:
                return None
            leader = next((job for job in self._jobs if self._takes(lane, job.pending[0][0].key)), None)
            if leader is None:
                self._cond.wait()
                continue
            key = leader.pending[0][0].key
            max_batch = key[3]
            waiting = sum(1 for job in self._jobs for chunk, _ in job.pending if chunk.key == key)
            deadline = self._arrived.get(key, 0.0) + self._max_wait
            if waiting < max_batch and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
                continue  # the queue may have changed: choose again
            return self._take(leader, key, max_batch)

    def _take(self, leader: Job, key: tuple, max_batch: int) -> list[tuple[_Chunk, int]]:
        """One window per job in turn, starting at ``leader``, until the batch is full or none are left."""
        start = self._jobs.index(leader)
        order = [self._jobs[(start + i) % len(self._jobs)] for i in range(len(self._jobs))]
        batch: list[tuple[_Chunk, int]] = []
        progress = True
        while len(batch) < max_batch and progress:
            progress = False
            for job in order:
                if len(batch) < max_batch and job.pending and job.pending[0][0].key == key:
                    batch.append(job.pending.popleft())
                    progress = True
        for job in order:
            if not job.pending:
                self._jobs.remove(job)
        # The leader goes to the back: the next batch is led by the job after it.
        if leader in self._jobs:
            self._jobs.remove(leader)
            self._jobs.append(leader)
        self._arrived.pop(key, None)
        if any(chunk.key == key for job in self._jobs for chunk, _ in job.pending):
            self._arrived[key] = time.monotonic() - self._max_wait  # overdue already: no second wait for it
        return batch

    def _lane_loop(self, lane: Lane) -> None:
        bulk = lane.max_window_pixels is None
        while True:
            with self._cond:
                batch = self._next_batch(lane)
                if batch is None:
                    return
                if bulk:
                    self._bulk_busy += 1
                    self._cond.notify_all()  # an express lane may now take small windows
            try:
                self._run_batch(lane, batch)
            finally:
                if bulk:
                    with self._cond:
                        self._bulk_busy -= 1

    def _run_batch(self, lane: Lane, batch: list[tuple[_Chunk, int]]) -> None:
        first = batch[0][0]
        whole_chunk = len({id(chunk) for chunk, _ in batch}) == 1 and len(batch) == len(first.tiles)
        started = time.perf_counter()
        try:
            # A batch that is exactly one chunk in order runs on the caller's array: no copy in or out.
            tiles = first.tiles if whole_chunk else np.stack([chunk.tiles[index] for chunk, index in batch])
            out = lane.runners[first.key[0]](tiles)
        except BaseException as exc:  # noqa: BLE001 - the waiting requests report it; the lane goes on
            with self._cond:
                for chunk, _ in batch:
                    chunk.finish(exc)
            return
        seconds = time.perf_counter() - started
        with self._cond:
            for slot, (chunk, index) in enumerate(batch):
                if chunk.done.is_set():
                    continue  # cancelled meanwhile: its results are not wanted
                if whole_chunk:
                    chunk.results, chunk.remaining = out, 0
                else:
                    if chunk.results is None:
                        chunk.results = np.empty((len(chunk.tiles),) + out.shape[1:], out.dtype)
                    chunk.results[index] = out[slot]
                    chunk.remaining -= 1
                if chunk.remaining == 0:
                    chunk.finish()
            # Served jobs go behind the ones that arrived while this batch ran: those lead the next batches.
            for job in dict.fromkeys(chunk.job for chunk, _ in batch):
                if job in self._jobs:
                    self._jobs.remove(job)
                    self._jobs.append(job)
        if self._on_batch is not None:
            h, w = first.tiles.shape[1:3]
            self._on_batch(BatchRecord(lane.name, len(batch), len({id(c.job) for c, _ in batch}), seconds,
                                       len(batch) * h * w))
