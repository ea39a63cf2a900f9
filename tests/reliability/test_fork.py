"""After one upscale, a forked child (os.fork, a fork multiprocessing.Pool) gets bit-identical results and never
hangs; the CUDA backend refuses in a child forked after CUDA started, on one line.

Every child runs under a deadline: the bug this guards against is a hang in libgomp (see
srgan_fast.backends.fork_safety), which must fail the test, not stall the suite.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import select
import signal
import threading
import time

import numpy as np
import pytest

import srgan_fast
from srgan_fast.backends import BackendUnavailable, cuda_backend, fork_safety

DEADLINE_S = 60


def _image(seed: int, hw=(20, 24)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def in_forked_child(function, *args):
    """function(*args) in a child made by os.fork(): its return value, or its exception re-raised here."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            payload = pickle.dumps(("ok", function(*args)))
        except BaseException as exc:  # noqa: BLE001  (any failure in the child is the test's result)
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + DEADLINE_S
    with os.fdopen(read_end, "rb") as pipe:
        while (left := deadline - time.monotonic()) > 0 and select.select([pipe], [], [], left)[0]:
            chunk = os.read(pipe.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    if time.monotonic() >= deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"the forked child did not finish within {DEADLINE_S} s (hung)")
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    if status == "error":
        raise AssertionError(f"the forked child raised {value}")
    return value


@pytest.mark.native
def test_forked_child_after_use_matches_the_parent():
    image = _image(0)
    upscaler = srgan_fast.Upscaler("srresnet", backend="native")
    expected = upscaler(image)
    expected_new = srgan_fast.Upscaler("srgan", backend="native")(image)
    assert np.array_equal(in_forked_child(upscaler, image), expected)
    # A new Upscaler made in the child: the stale OpenMP pool is the process's, not the engine's.
    assert np.array_equal(in_forked_child(lambda: srgan_fast.Upscaler("srgan", backend="native")(image)),
                          expected_new)
    # A grandchild: the child's own worker thread stayed behind in the child.
    assert np.array_equal(in_forked_child(lambda: in_forked_child(upscaler, image)), expected)


@pytest.mark.native
@pytest.mark.slow
def test_fork_during_a_run_in_another_thread():
    """The engine's lock, held at the fork by a run in another thread, stays held in the child: the child's
    first call rebuilds the engine instead of waiting on it."""
    upscaler = srgan_fast.Upscaler("srresnet", backend="native", tile=64)
    small, big = _image(1), _image(2, (256, 256))
    expected = upscaler(small)
    running = threading.Event()

    def busy():
        running.set()
        upscaler(big)

    thread = threading.Thread(target=busy)
    thread.start()
    running.wait()
    time.sleep(0.05)  # inside the engine's run by now (a 256x256 image takes ~1 s here)
    try:
        assert np.array_equal(in_forked_child(upscaler, small), expected)
    finally:
        thread.join()


def _upscale_srresnet(image: np.ndarray) -> np.ndarray:
    return srgan_fast.upscale(image, model="srresnet")


@pytest.mark.native
def test_fork_pool_after_use_matches_the_parent():
    images = [_image(seed, (16 + seed, 20)) for seed in range(4)]
    expected = [_upscale_srresnet(image) for image in images]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_upscale_srresnet, images).get(timeout=DEADLINE_S)
    assert all(np.array_equal(got, want) for got, want in zip(results, expected))


def test_torch_backend_in_a_forked_child_after_use():
    pytest.importorskip("torch")
    image = _image(3)
    upscaler = srgan_fast.Upscaler("srresnet", backend="torch", device="cpu")
    expected = upscaler(image)
    assert np.array_equal(in_forked_child(upscaler, image), expected)


def test_cuda_refuses_in_a_child_forked_after_cuda_started(monkeypatch):
    """No GPU needed: the refusal depends only on CUDA having been initialised before the fork."""
    monkeypatch.setattr(cuda_backend, "_cuda_initialised_in", fork_safety.generation())
    assert cuda_backend.forked_after_cuda() is None  # the process that started CUDA may use it

    def child():
        backend = object.__new__(cuda_backend.CudaBackend)  # as one built before the fork would be
        try:
            backend.run(np.zeros((1, 8, 8, 3), np.uint8))
        except BackendUnavailable as exc:
            return cuda_backend.CudaBackend.unavailable_reason(), str(exc), os.getppid()
        return None

    reason, error, parent = in_forked_child(child)
    expected = (f"CUDA cannot run in a process forked (from pid {parent}) after CUDA was initialised; start "
                "workers with multiprocessing.get_context('spawn') or 'forkserver'")
    assert reason == error == expected


def test_cuda_not_started_before_the_fork_is_left_to_the_child(monkeypatch):
    monkeypatch.setattr(cuda_backend, "_cuda_initialised_in", None)
    assert in_forked_child(cuda_backend.forked_after_cuda) is None
