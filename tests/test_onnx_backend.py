"""Backend "onnxruntime" through Backend.run: NHWC uint8/uint16/float32 in, ×4 out, against the torch reference."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.backends import BackendUnavailable, availability, backend_names, ranked_backends  # noqa: E402
from srgan_fast.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=2, channels=8, seed=7)
FP32_RELATIVE_TOLERANCE = 1e-4


def reference_unit(tiles_unit: np.ndarray) -> np.ndarray:
    """[N, h, w, 3] in [0, 1] -> float64 torch output, clamped, NHWC."""
    with torch.no_grad():
        x = torch.from_numpy(tiles_unit.transpose(0, 3, 1, 2).copy()).double()
        y = build_generator(WEIGHTS).double()(x).clamp(0, 1)
    return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("dtype, full_scale", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1)])
def test_run_matches_reference_for_each_dtype(dtype, full_scale, dynamic):
    rng = np.random.default_rng(int(full_scale))
    if dtype == np.float32:
        tiles = rng.random((3, 9, 14, 3), dtype=np.float32)
    else:
        tiles = rng.integers(0, full_scale + 1, (3, 9, 14, 3)).astype(dtype)
    backend = OnnxRuntimeBackend(WEIGHTS, "cpu", "fp32", dynamic=dynamic)
    y = backend.run(tiles)
    assert y.dtype == dtype and y.shape == (3, 36, 56, 3) and y.flags.c_contiguous
    expected = reference_unit(tiles.astype(np.float64) / full_scale) * full_scale
    if dtype == np.float32:
        assert np.abs(y - expected).max() <= FP32_RELATIVE_TOLERANCE
    else:
        # Rounding may differ only where the fp32 result lies within its error of a half level.
        assert np.abs(y.astype(np.float64) - expected).max() <= 0.5 + full_scale * FP32_RELATIVE_TOLERANCE


def test_fp16_backend_at_most_twice_as_wrong_as_torch_fp16():
    tiles = np.random.default_rng(1).random((2, 10, 7, 3), dtype=np.float32)
    ref = reference_unit(tiles)
    with torch.no_grad():
        x = torch.from_numpy(tiles.transpose(0, 3, 1, 2).copy()).half()
        torch16 = build_generator(WEIGHTS).half()(x).float().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    ort16 = OnnxRuntimeBackend(WEIGHTS, "cpu", "fp16").run(tiles)
    torch_error = np.linalg.norm(torch16 - ref) / np.linalg.norm(ref)
    assert 0 < torch_error < 1e-2
    assert np.linalg.norm(ort16 - ref) / np.linalg.norm(ref) <= 2 * torch_error


def test_one_session_per_tile_shape_reused_and_bounded():
    backend = OnnxRuntimeBackend(WEIGHTS, "cpu", "fp32")
    tiles = np.zeros((1, 4, 4, 3), np.uint8)
    backend.run(tiles)
    first = backend._sessions[("uint8", 4, 4)]
    backend.run(np.zeros((2, 4, 4, 3), np.uint8))  # batch is dynamic: same graph
    assert backend._sessions[("uint8", 4, 4)] is first and len(backend._sessions) == 1
    for size in range(5, 10):
        backend.run(np.zeros((1, size, 3, 3), np.uint8))
    assert len(backend._sessions) == 4 and ("uint8", 4, 4) not in backend._sessions


def test_registered_below_torch_on_cpu():
    assert "onnxruntime" in backend_names()
    assert availability()["onnxruntime"] is None
    assert OnnxRuntimeBackend.auto_priority["cpu"] < 10
    assert ranked_backends("cpu")[0] != "onnxruntime"


@pytest.mark.parametrize("tiles, message", [
    (np.zeros((4, 4, 3), np.uint8), "expected tiles of shape [N, h, w, 3], got shape (4, 4, 3)"),
    (np.zeros((1, 4, 4, 4), np.uint8), "got shape (1, 4, 4, 4)"),
    (np.zeros((1, 4, 4, 3), np.int32), "expected tiles of dtype uint8, uint16 or float32, got int32"),
])
def test_bad_tiles_are_named(tiles, message):
    with pytest.raises(ValueError) as info:
        OnnxRuntimeBackend(WEIGHTS, "cpu", "fp32").run(tiles)
    assert message in str(info.value)


def test_bad_precision_and_device_are_named():
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, got 'int8'"):
        OnnxRuntimeBackend(WEIGHTS, "cpu", "int8")
    with pytest.raises(ValueError, match="unknown device 'tpu': expected 'cpu', 'cuda' or 'cuda:N'"):
        OnnxRuntimeBackend(WEIGHTS, "tpu", "fp32")


def test_cuda_without_the_cuda_provider_says_so():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailable, match="this onnxruntime has no CUDA provider"):
        OnnxRuntimeBackend(WEIGHTS, "cuda:0", "fp32")
    assert "cuda" not in OnnxRuntimeBackend.auto_priority
