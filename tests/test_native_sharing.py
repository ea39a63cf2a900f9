"""Upscalers of one model share its native engine (packed weights, touched feature maps), never its results."""
import gc
import weakref

import numpy as np
import pytest

from srgan_fast import Upscaler
from srgan_fast.backends import native_backend

pytestmark = pytest.mark.native


def _image(seed: int, size=(37, 29)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_second_upscaler_of_a_model_reuses_the_engine_and_gives_the_same_pixels():
    first = Upscaler("srresnet", backend="native", precision="fp32")
    alone = first(_image(1))
    second = Upscaler("srresnet", backend="native", precision="fp32")
    assert second.backend.engine is first.backend.engine
    np.testing.assert_array_equal(second(_image(1)), alone)
    np.testing.assert_array_equal(first(_image(2)), second(_image(2)))


def _other_precision() -> str:
    return next(p for p in native_backend.NativeBackend.supported_precisions("cpu") if p != "fp32")


@pytest.mark.parametrize("other", [{"model": "srgan"}, {"threads": 1}, {"precision": None}])
def test_other_weights_or_options_get_their_own_engine(other):
    base = Upscaler("srresnet", backend="native", precision="fp32")
    options = {"model": "srresnet", "precision": "fp32", **other}
    options["precision"] = options["precision"] or _other_precision()
    different = Upscaler(options.pop("model"), backend="native", **options)
    assert different.backend.engine is not base.backend.engine


def test_an_engine_nobody_holds_is_freed():
    upscaler = Upscaler("srresnet", backend="native", precision="fp32", threads=1)
    handle = weakref.ref(upscaler.backend._handle)
    del upscaler
    gc.collect()
    assert handle() is None


@pytest.mark.slow
def test_batches_stop_where_the_engine_stops_gaining(tiny_model_path):
    # 8 frames of 200² are 8 one-window frames; 40k pixels each, so the native engine's 131072-pixel
    # saturating batch holds 3 of them, where the 3 GiB memory budget alone would take all 8.
    up = Upscaler(tiny_model_path, backend="native")
    frames = np.stack([_image(seed, (200, 200)) for seed in range(8)])
    run, batches = up.backend.run, []

    def recording_run(tiles):
        batches.append(len(tiles))
        return run(tiles)

    up.backend.run = recording_run
    out = up.upscale_batch(frames)
    cap = up.backend.saturating_batch_pixels() // (200 * 200)
    assert sum(batches) == 8 and max(batches) == cap == 3
    for frame, big in zip(frames, out):
        np.testing.assert_array_equal(big, run(frame[None])[0])
