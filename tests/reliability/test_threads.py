"""The thread hammer: many threads on shared and own Upscalers give, bit for bit, the single-threaded result.

Tiled sizes (several windows per image, so the gather/scatter path runs) and untiled ones, on every CPU
backend available here. Every thread upscales its own fresh images, so a result taken from another thread's
image shows up as a mismatch.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import srgan_fast
from conftest import random_generator_weights
from srgan_fast import Upscaler
from srgan_fast.backends import availability

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=3)
THREADS = 8
CALLS_PER_THREAD = 6
# (image shape, tile): 16x96 with tile 8 has 12 windows per image; 16x24 untiled is one window.
SIZES = {"tiled": ((16, 96, 3), 8), "untiled": ((16, 24, 3), None)}
CPU_BACKENDS = [("native", "fp32"), ("native", "bf16"), ("torch", "fp32"), ("onnxruntime", "fp32")]


def _backend_params():
    usable = availability()
    params = []
    for name, precision in CPU_BACKENDS:
        reason = usable.get(name)
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        if name == "native" and precision == "bf16" and not reason:
            from srgan_fast.backends.native_backend import NativeBackend

            if "bf16" not in NativeBackend.supported_precisions("cpu"):
                marks = [pytest.mark.skip(reason="this CPU has no bf16 path")]
        params.append(pytest.param(name, precision, marks=marks, id=f"{name}-{precision}"))
    return params


def _images(shape, count, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def _hammer(make_upscaler, images_per_thread):
    """Each thread upscales its own images through the Upscaler ``make_upscaler(thread)`` gives it."""
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(images_per_thread))

    def work(thread: int) -> None:
        try:
            upscaler = make_upscaler(thread)
            start.wait()
            for call, image in enumerate(images_per_thread[thread]):
                results[thread, call] = upscaler(image)
        except BaseException as exc:  # reported below: a thread's exception must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(len(images_per_thread))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return results


def _mismatches(results, expected):
    return sorted(key for key, value in results.items() if not np.array_equal(value, expected[key]))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sharing", ["shared", "own"])
@pytest.mark.parametrize("backend, precision", _backend_params())
@pytest.mark.slow
def test_threads_match_a_single_thread_bit_for_bit(backend, precision, sharing, size):
    shape, tile = SIZES[size]
    images = [_images(shape, CALLS_PER_THREAD, seed=100 + t) for t in range(THREADS)]
    reference = Upscaler(WEIGHTS, backend=backend, device="cpu", precision=precision, tile=tile)
    expected = {(t, c): reference(image) for t, per_thread in enumerate(images) for c, image in enumerate(per_thread)}
    if sharing == "shared":
        results = _hammer(lambda _: reference, images)
    else:
        results = _hammer(lambda _: Upscaler(WEIGHTS, backend=backend, device="cpu", precision=precision,
                                             tile=tile), images)
    assert len(results) == THREADS * CALLS_PER_THREAD
    assert _mismatches(results, expected) == []


@pytest.mark.slow
def test_module_level_upscale_is_thread_safe(tmp_path):
    """``srgan_fast.upscale`` shares one cached Upscaler between threads; threads asking for different
    options at once (which replaces the cached one) still each get their own correct result."""
    from srgan_fast.weights import save_weights

    path = tmp_path / "random.safetensors"
    save_weights(path, WEIGHTS.tensors, WEIGHTS.metadata)
    tiles = [8, 12]
    images = [_images((16, 96, 3), CALLS_PER_THREAD, seed=200 + t) for t in range(THREADS)]
    backend = "native" if availability()["native"] is None else "torch"
    singles = [Upscaler(str(path), backend=backend, device="cpu", tile=tile) for tile in tiles]
    expected = {(t, c): singles[t % 2](image) for t, per_thread in enumerate(images) for c, image in enumerate(per_thread)}

    def make(thread):
        class ModuleLevel:
            def __call__(self, image):
                return srgan_fast.upscale(image, model=str(path), backend=backend, device="cpu",
                                          tile=tiles[thread % 2])
        return ModuleLevel()

    results = _hammer(make, images)
    assert _mismatches(results, expected) == []
