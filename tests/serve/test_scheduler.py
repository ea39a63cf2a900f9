"""The scheduler on its own, over the tiny model's native engines: round-robin across jobs, the bounded wait,
the express lane, cancellation, and values equal to the engine's own whatever the batch and lane."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from srgan_fast.backends import get_backend_class
from srgan_fast.serve.scheduler import Cancelled, Lane, TileScheduler


class RecordingEngine:
    """A native engine that records each batch (the first pixel of each window identifies it) and can be held
    at its next call until ``release``, to line up the queue behind a running batch."""

    def __init__(self, weights, threads: int = 0):
        self.backend = get_backend_class("native")(weights, "cpu", "fp32", threads=threads)
        self.batches: list[list[int]] = []
        self.held = threading.Event()
        self.holding = threading.Event()
        self.held.set()

    def hold(self) -> None:
        self.held.clear()

    def release(self) -> None:
        self.held.set()

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        self.batches.append([int(tile[0, 0, 0]) for tile in tiles])
        if not self.held.is_set():
            self.holding.set()
            self.held.wait()
        return self.backend.run(tiles)


def windows(ids, size=20) -> np.ndarray:
    """Random windows whose first pixel is their id."""
    tiles = np.random.default_rng(ids[0]).integers(0, 256, (len(ids), size, size, 3), dtype=np.uint8)
    tiles[:, 0, 0, 0] = ids
    return tiles


def submit(scheduler, job, tiles, max_batch, results, key="tiny"):
    thread = threading.Thread(target=lambda: results.append(job.run(key, tiles, max_batch)))
    thread.start()
    return thread


def wait_pending(scheduler, count):
    deadline = time.monotonic() + 10
    while scheduler.pending_windows() < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_round_robin_puts_later_jobs_into_the_next_batches(tiny_weights):
    engine = RecordingEngine(tiny_weights)
    scheduler = TileScheduler([Lane("bulk", {"tiny": engine})], max_wait_s=0)
    try:
        engine.hold()
        big, small, other = scheduler.job(), scheduler.job(), scheduler.job()
        outs: dict[str, list] = {"big": [], "small": [], "other": []}
        threads = [submit(scheduler, big, windows(list(range(1, 13))), 4, outs["big"])]
        engine.holding.wait(10)  # the first batch (big's windows 1-4) is running
        threads.append(submit(scheduler, small, windows([101, 102]), 4, outs["small"]))
        wait_pending(scheduler, 10)
        threads.append(submit(scheduler, other, windows([201], size=24), 4, outs["other"]))
        wait_pending(scheduler, 11)
        engine.release()
        for thread in threads:
            thread.join()
        # After the running batch: the jobs that waited lead, one window per job in turn; big comes last.
        assert engine.batches == [[1, 2, 3, 4], [101, 5, 102, 6], [201], [7, 8, 9, 10], [11, 12]]
        for name, tiles in (("big", windows(list(range(1, 13)))), ("small", windows([101, 102])),
                            ("other", windows([201], size=24))):
            assert np.array_equal(outs[name][0], engine.backend.run(tiles)), name
    finally:
        scheduler.close()


def test_bounded_wait_fills_a_batch_and_never_waits_longer(tiny_weights):
    """Asserted by the batches, not the clock (a loaded machine stretches any time): with a long bound, the lane
    holds the first window until the second fills the batch; with a short one, a lone window runs alone."""
    engine = RecordingEngine(tiny_weights)
    scheduler = TileScheduler([Lane("bulk", {"tiny": engine})], max_wait_s=60)
    try:
        first, second = scheduler.job(), scheduler.job()
        results: list = []
        threads = [submit(scheduler, first, windows([1]), 2, results)]
        wait_pending(scheduler, 1)
        threads.append(submit(scheduler, second, windows([2]), 2, results))
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a full batch waited for its bound"
        assert engine.batches == [[1, 2]]
    finally:
        scheduler.close()
    engine = RecordingEngine(tiny_weights)
    scheduler = TileScheduler([Lane("bulk", {"tiny": engine})], max_wait_s=0.05)
    try:
        results = []
        submit(scheduler, scheduler.job(), windows([3]), 4, results).join(30)
        assert engine.batches == [[3]] and len(results) == 1, "a lone window waited for company past its bound"
    finally:
        scheduler.close()


def test_express_lane_takes_small_windows_only_while_the_bulk_lane_is_busy(tiny_weights):
    bulk, express = RecordingEngine(tiny_weights), RecordingEngine(tiny_weights, threads=1)
    lanes = [Lane("bulk", {"tiny": bulk}), Lane("express", {"tiny": express}, max_window_pixels=24 * 24)]
    scheduler = TileScheduler(lanes, max_wait_s=0)
    try:
        small = windows([1])
        alone = scheduler.job().run("tiny", small, 4)
        assert bulk.batches == [[1]] and express.batches == []  # the bulk lane was free: it took it
        bulk.hold()
        results: list = []
        thread = submit(scheduler, scheduler.job(), windows([2], size=40), 4, results)
        bulk.holding.wait(10)
        during = scheduler.job().run("tiny", small, 4)  # returns while the bulk lane is still held
        assert express.batches == [[1]]
        big = windows([3], size=40)
        bulk_results: list = []
        waiting = submit(scheduler, scheduler.job(), big, 4, bulk_results)
        wait_pending(scheduler, 1)
        time.sleep(0.05)
        assert express.batches == [[1]], "the express lane took a window over its size"
        bulk.release()
        thread.join()
        waiting.join()
        assert np.array_equal(alone, during)  # a one-thread engine gives the same values
        assert bulk.batches[-1] == [3]
    finally:
        scheduler.close()


def test_cancel_drops_pending_windows_and_releases_the_caller(tiny_weights):
    engine = RecordingEngine(tiny_weights)
    scheduler = TileScheduler([Lane("bulk", {"tiny": engine})], max_wait_s=0)
    try:
        engine.hold()
        job = scheduler.job()
        errors: list = []

        def run():
            try:
                job.run("tiny", windows(list(range(1, 9))), 2)
            except Cancelled as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        engine.holding.wait(10)
        job.cancel()
        thread.join(5)
        assert not thread.is_alive() and errors
        engine.release()
        scheduler.job().run("tiny", windows([50]), 2)
        assert engine.batches == [[1, 2], [50]]  # windows 3-8 never ran
        with pytest.raises(Cancelled):
            job.run("tiny", windows([9]), 2)
    finally:
        scheduler.close()


def test_close_cancels_waiting_jobs(tiny_weights):
    engine = RecordingEngine(tiny_weights)
    scheduler = TileScheduler([Lane("bulk", {"tiny": engine})], max_wait_s=0)
    engine.hold()
    errors: list = []

    def run():
        try:
            scheduler.job().run("tiny", windows([1, 2, 3]), 1)
        except Cancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    engine.holding.wait(10)
    closer = threading.Thread(target=scheduler.close)
    closer.start()
    time.sleep(0.05)
    engine.release()
    closer.join(10)
    thread.join(10)
    assert errors and "stopping" in str(errors[0])
