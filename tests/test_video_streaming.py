"""stream_frames / Upscaler.stream: order, batching of equal sizes, bounded look-ahead, results equal to upscale()."""
from __future__ import annotations

import numpy as np
import pytest

from srgan_fast.tiler.channels import InputError
from srgan_fast.tiler.streaming import StreamError, StreamInputError, default_batch_size, stream_frames
from srgan_fast.video.synthetic import NearestUpscaler


class RecordingUpscaler(NearestUpscaler):
    """Nearest ×4 that records the batch sizes it was given."""

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def upscale_batch(self, frames):
        self.batches.append(len(frames))
        return super().upscale_batch(frames)


def random_frames(rng, sizes, dtype=np.uint8):
    top = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    return [(rng.random(size) * top).astype(dtype) for size in sizes]


def test_order_and_values_with_size_changes():
    rng = np.random.default_rng(1)
    sizes = [(5, 7, 3)] * 3 + [(6, 4, 3)] * 2 + [(5, 7, 3)] + [(5, 7)] * 2  # last two are gray
    frames = random_frames(rng, sizes)
    upscaler = RecordingUpscaler()
    results = list(stream_frames(upscaler, iter(frames), batch_size=2))
    assert len(results) == len(frames)
    for frame, result in zip(frames, results):
        assert result.shape == (4 * frame.shape[0], 4 * frame.shape[1]) + frame.shape[2:]
        np.testing.assert_array_equal(result, np.repeat(np.repeat(frame, 4, 0), 4, 1))
    # Runs of equal size are cut at batch_size and at every size change: 2+1 | 2 | 1 | 2 (gray batched too).
    assert upscaler.batches == [2, 1, 2, 1, 2]


def test_look_ahead_is_bounded_by_batch_size():
    pulled = 0

    def endless():
        nonlocal pulled
        rng = np.random.default_rng(2)
        while True:
            pulled += 1
            yield rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)

    stream = stream_frames(NearestUpscaler(), endless(), batch_size=3)
    for produced in range(1, 8):
        next(stream)
        # The first result needs a full batch; after that at most one batch is held beyond what came out.
        assert pulled - produced < 3


def test_default_batch_size_depends_on_frame_size():
    upscaler = NearestUpscaler()
    assert default_batch_size(upscaler, (14, 18)) == 16  # tiny frames share calls, up to the cap
    assert default_batch_size(upscaler, (1080, 1920)) == 1  # large frames go one at a time
    assert default_batch_size(upscaler, (256, 256)) == 4


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True, False])
def test_bad_batch_size_message(bad):
    with pytest.raises(InputError, match=f"positive integer or None, got {bad!r}"):
        stream_frames(NearestUpscaler(), [], batch_size=bad)


def test_real_upscaler_stream_matches_upscale(tmp_path, small_weights):
    from srgan_fast.api import Upscaler
    from srgan_fast.weights import save_weights

    path = tmp_path / "tiny.safetensors"
    save_weights(path, small_weights.tensors, small_weights.metadata)
    upscaler = Upscaler(str(path), backend="torch", device="cpu")
    rng = np.random.default_rng(3)
    frames = random_frames(rng, [(9, 11, 3)] * 3 + [(8, 6, 3)] + [(9, 11, 3)], np.uint8)
    frames += random_frames(rng, [(7, 5, 3)] * 2, np.uint16)
    streamed = list(upscaler.stream(iter(frames), batch_size=3))
    assert len(streamed) == len(frames)
    for frame, result in zip(frames, streamed):
        # Batched frames go through the same tiles and backend as one frame alone; only the batch shape
        # changes torch's float32 summation order (~1e-6 relative), which can move a value across a rounding
        # boundary: at most one integer level apart.
        difference = np.abs(result.astype(np.int64) - upscaler.upscale(frame).astype(np.int64))
        assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size // 100
        assert result.dtype == frame.dtype and result.shape == (4 * frame.shape[0], 4 * frame.shape[1], 3)


class ValidatingUpscaler(NearestUpscaler):
    """Nearest ×4 that refuses bad frames as Upscaler does (every frame of a batch checked first)."""

    def upscale_batch(self, frames):
        from srgan_fast.tiler.channels import validate_array

        for frame in frames:
            validate_array(frame)
        return super().upscale_batch(frames)


def nearest(frame):
    return np.repeat(np.repeat(frame, 4, 0), 4, 1)


@pytest.mark.parametrize("batch_size", [None, 1, 4, 16])
def test_source_failure_delivers_every_frame_read_before_it(batch_size):
    rng = np.random.default_rng(4)
    frames = random_frames(rng, [(6, 5, 3)] * 5)

    def source():
        yield from frames
        raise OSError("camera unplugged")

    stream = stream_frames(ValidatingUpscaler(), source(), batch_size=batch_size)
    delivered = []
    with pytest.raises(StreamError, match=r"^frame 5: the frame source raised OSError: camera unplugged$") as error:
        for result in stream:
            delivered.append(result)
    assert error.value.index == 5 and isinstance(error.value.__cause__, OSError)
    assert len(delivered) == 5
    for frame, result in zip(frames, delivered):
        np.testing.assert_array_equal(result, nearest(frame))


@pytest.mark.parametrize("batch_size", [None, 4])
def test_bad_frame_in_a_batch_keeps_its_neighbours(batch_size):
    rng = np.random.default_rng(5)
    frames = random_frames(rng, [(6, 5, 3)] * 6, np.float32)
    frames[3][0, 0, 0] = np.nan  # same shape and dtype as its neighbours: stacked with them
    delivered = []
    with pytest.raises(StreamInputError, match=r"^frame 3: float32 image contains NaN or Inf \(1 values\)$") as error:
        for result in stream_frames(ValidatingUpscaler(), iter(frames), batch_size=batch_size):
            delivered.append(result)
    assert error.value.index == 3 and isinstance(error.value, InputError)
    assert len(delivered) == 3
    for frame, result in zip(frames, delivered):
        np.testing.assert_array_equal(result, nearest(frame))


def test_upscaler_stream_keeps_results_before_a_failure(small_weights):
    """The real Upscaler, batched (the default batch size takes all 5 tiny frames at once)."""
    from srgan_fast.api import Upscaler

    upscaler = Upscaler(small_weights, backend="native" if _native_built() else "torch", device="cpu")
    rng = np.random.default_rng(6)
    frames = random_frames(rng, [(8, 10, 3)] * 5)

    def source():
        yield from frames
        raise ValueError("decoder gave up")

    delivered = []
    with pytest.raises(StreamError, match="^frame 5: the frame source raised ValueError: decoder gave up$"):
        for result in upscaler.stream(source()):
            delivered.append(result)
    assert len(delivered) == 5
    batched = upscaler.upscale_batch(np.stack(frames))
    for expected, result in zip(batched, delivered):
        np.testing.assert_array_equal(result, expected)


def _native_built() -> bool:
    from srgan_fast.backends.native_backend import NativeBackend

    return NativeBackend.unavailable_reason() is None
