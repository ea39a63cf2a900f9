"""Backend "tensorrt" around its engine: batching, padding, conversions and engine reuse, without TensorRT.

TensorRT's build and run steps are stood in for by onnxruntime running the very graph the builder would hand
to TensorRT, so everything the backend does around the engine is checked against the torch reference here.
"""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.backends import tensorrt_backend  # noqa: E402
from srgan_fast.backends.tensorrt_backend import TensorRTBackend  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402
from srgan_fast.backends.tensorrt import builder, runtime  # noqa: E402
from srgan_fast.backends.tensorrt.options import DeviceInfo  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=2, channels=8, seed=4)


class OnnxRuntimeEngine:
    """Stands in for EngineRunner: the "plan" is the ONNX graph; every launch must have the engine's shape."""

    launches: list[tuple[int, ...]] = []

    def __init__(self, engine_bytes: bytes, device_index: int = 0, use_cuda_graph: bool = True):
        self.session = ort.InferenceSession(engine_bytes.removeprefix(b"PLAN"), providers=["CPUExecutionProvider"])
        self.static_shape = [d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape]

    def run_host(self, batches):
        outputs = []
        for batch in batches:
            assert all(s is None or s == b for s, b in zip(self.static_shape, batch.shape)), batch.shape
            OnnxRuntimeEngine.launches.append(batch.shape)
            outputs.append(self.session.run(None, {"image": batch})[0])
        return outputs


@pytest.fixture
def stand_in(monkeypatch):
    builds = []

    def build(onnx_bytes, options, timing_cache_path):
        builds.append(options)
        return b"PLAN" + onnx_bytes

    monkeypatch.setattr(TensorRTBackend, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(builder, "cuda_device_info", lambda index=0: DeviceInfo("Stand-in GPU", (8, 9)))
    monkeypatch.setattr(builder, "tensorrt_version", lambda: "10.99.0")
    monkeypatch.setattr(builder, "build_serialized_engine", build)
    monkeypatch.setattr(runtime, "EngineRunner", OnnxRuntimeEngine)
    OnnxRuntimeEngine.launches = []
    return builds


def reference_unit(tiles_unit: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(tiles_unit.transpose(0, 3, 1, 2).copy()).double()
        return build_generator(WEIGHTS).double()(x).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("dtype, full_scale", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1)])
def test_tiles_are_padded_to_the_engine_batch_and_converted_like_other_backends(stand_in, tmp_path, dtype,
                                                                                full_scale):
    rng = np.random.default_rng(full_scale)
    tiles = (rng.random((5, 12, 10, 3), dtype=np.float32) if dtype == np.float32
             else rng.integers(0, full_scale + 1, (5, 12, 10, 3)).astype(dtype))
    backend = TensorRTBackend(WEIGHTS, "cuda:0", "fp32", engine_batch=2, cache_dir=str(tmp_path))
    y = backend.run(tiles)
    assert y.shape == (5, 48, 40, 3) and y.dtype == dtype and y.flags.c_contiguous
    io = "uint8" if dtype == np.uint8 else "float"
    layout = (2, 12, 10, 3) if io == "uint8" else (2, 3, 12, 10)
    assert OnnxRuntimeEngine.launches == [layout] * 3  # 5 tiles: two full launches and one padded
    expected = reference_unit(tiles.astype(np.float64) / full_scale) * full_scale
    tolerance = 1e-4 if dtype == np.float32 else 0.5 + full_scale * 1e-4
    assert np.abs(y.astype(np.float64) - expected).max() <= tolerance


def test_one_engine_per_tile_shape_and_io_reused_across_backends(stand_in, tmp_path):
    pixels = np.zeros((3, 8, 8, 3), np.uint8)
    backend = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=4, cache_dir=str(tmp_path))
    backend.run(pixels)
    backend.run(pixels[:1])
    backend.run(np.zeros((1, 8, 12, 3), np.uint8))
    backend.run(np.zeros((1, 8, 8, 3), np.float32))
    assert [(o.tile, o.io, o.batch, o.precision) for o in stand_in] == [
        ((8, 8), "uint8", 4, "fp16"), ((8, 12), "uint8", 4, "fp16"), ((8, 8), "float", 4, "fp16")]
    TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=4, cache_dir=str(tmp_path)).run(pixels)
    assert len(stand_in) == 3  # a new process (backend) finds the engine in the cache


def test_dynamic_engine_serves_every_shape_in_its_range_unpadded(stand_in, tmp_path):
    backend = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=4, dynamic=((4, 4), (32, 32)),
                              cache_dir=str(tmp_path))
    backend.run(np.zeros((5, 8, 8, 3), np.uint8))
    backend.run(np.zeros((1, 16, 12, 3), np.uint8))
    assert len(stand_in) == 1 and stand_in[0].dynamic == ((4, 4), (32, 32))
    assert OnnxRuntimeEngine.launches == [(4, 8, 8, 3), (1, 8, 8, 3), (1, 16, 12, 3)]


def test_a_cached_engine_tensorrt_refuses_is_dropped_and_rebuilt(stand_in, tmp_path, monkeypatch):
    refused = []

    class RefusesCachedOnce(OnnxRuntimeEngine):
        def __init__(self, engine_bytes, device_index=0, use_cuda_graph=True):
            if not refused:
                refused.append(True)
                raise runtime.EngineLoadError("TensorRT could not deserialize the engine")
            super().__init__(engine_bytes, device_index, use_cuda_graph)

    backend = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=1, cache_dir=str(tmp_path))
    backend.run(np.zeros((1, 8, 8, 3), np.uint8))
    monkeypatch.setattr(runtime, "EngineRunner", RefusesCachedOnce)
    fresh = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=1, cache_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="is unusable: TensorRT could not deserialize the engine; rebuilding"):
        fresh.run(np.zeros((1, 8, 8, 3), np.uint8))
    assert len(stand_in) == 2


@pytest.mark.parametrize("precision, kwargs, message", [
    ("fp8", {}, "fp8 needs a GPU of compute capability >= 8.9; NVIDIA A100 has 8.0"),
    ("int8", {}, "tensorrt int8 needs calibration_images: a folder of sample images"),
    ("fp16", {"engine_batch": 0}, "batch must be >= 1, got 0"),
])
def test_unusable_settings_are_refused_at_construction(stand_in, monkeypatch, tmp_path, precision, kwargs, message):
    monkeypatch.setattr(builder, "cuda_device_info", lambda index=0: DeviceInfo("NVIDIA A100", (8, 0)))
    with pytest.raises(ValueError) as info:
        TensorRTBackend(WEIGHTS, "cuda", precision, cache_dir=str(tmp_path), **kwargs)
    assert message in str(info.value)


def test_bad_tiles_and_device_are_named(stand_in, tmp_path):
    with pytest.raises(ValueError, match="runs on 'cuda' or 'cuda:N', got device 'cpu'"):
        TensorRTBackend(WEIGHTS, "cpu", "fp16")
    backend = TensorRTBackend(WEIGHTS, "cuda", "fp16", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"expected tiles of shape \[N, h, w, 3\], got shape \(8, 8, 3\)"):
        backend.run(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="expected tiles of dtype uint8, uint16 or float32, got int16"):
        backend.run(np.zeros((1, 8, 8, 3), np.int16))
    assert tensorrt_backend.TensorRTBackend.auto_priority == {"cuda": 40}
