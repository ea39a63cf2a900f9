"""Engines: the build-or-load flow (with TensorRT's build step stood in for, so it runs anywhere), and the
real thing on a GPU with TensorRT (marked ``tensorrt``: skipped with the reason elsewhere)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.architecture import int8_convs  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402
from srgan_fast.backends.tensorrt import builder  # noqa: E402
from srgan_fast.backends.tensorrt.cache import CacheWarning, EngineCache  # noqa: E402
from srgan_fast.backends.tensorrt.options import BuildOptions, DeviceInfo  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=2, channels=8, seed=9)


@pytest.fixture
def fake_gpu(monkeypatch):
    """TensorRT's build step recorded instead of run: the plan is the ONNX graph it was given."""
    builds = []

    def build(onnx_bytes, options, timing_cache_path):
        builds.append((onnx_bytes, options, timing_cache_path))
        return b"PLAN" + onnx_bytes

    monkeypatch.setattr(builder, "cuda_device_info", lambda index=0: DeviceInfo("Fake GPU", (8, 9)))
    monkeypatch.setattr(builder, "tensorrt_version", lambda: "10.99.0")
    monkeypatch.setattr(builder, "build_serialized_engine", build)
    return builds


def test_engine_is_built_once_then_loaded_from_the_cache(fake_gpu, tmp_path):
    cache = EngineCache(tmp_path)
    options = BuildOptions(precision="fp16", tile=(12, 16), batch=2, io="uint8")
    engine, key = builder.engine_for(WEIGHTS, options, cache=cache)
    again, same_key = builder.engine_for(WEIGHTS, options, cache=EngineCache(tmp_path))
    assert len(fake_gpu) == 1 and again == engine and same_key == key
    builder.engine_for(WEIGHTS, BuildOptions(precision="fp32", tile=(12, 16), batch=2), cache=cache)
    assert len(fake_gpu) == 2


def test_corrupted_cached_engine_is_reported_and_rebuilt(fake_gpu, tmp_path):
    cache = EngineCache(tmp_path)
    options = BuildOptions(precision="fp16", tile=(8, 8), batch=1)
    engine, key = builder.engine_for(WEIGHTS, options, cache=cache)
    path = cache.path_for(key)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        rebuilt, _ = builder.engine_for(WEIGHTS, options, cache=cache)
    assert rebuilt == engine and len(fake_gpu) == 2 and cache.load(key) == engine


def test_graph_given_to_tensorrt_is_the_checked_export_and_matches_the_reference(fake_gpu, tmp_path):
    options = BuildOptions(precision="fp16", tile=(10, 14), batch=3, io="float")
    engine, _ = builder.engine_for(WEIGHTS, options, cache=EngineCache(tmp_path))
    model = onnx.load_from_string(fake_gpu[0][0])
    onnx.checker.check_model(model, full_check=True)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 10, 14]
    x = np.random.default_rng(0).random((3, 3, 10, 14), dtype=np.float32)
    y = ort.InferenceSession(fake_gpu[0][0], providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        ref = build_generator(WEIGHTS).double()(torch.from_numpy(x).double()).numpy()
        torch16 = build_generator(WEIGHTS).half()(torch.from_numpy(x).half()).double().numpy()
    torch_error = np.linalg.norm(torch16 - ref) / np.linalg.norm(ref)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) <= 2 * torch_error


def test_int8_engine_needs_calibration_images_and_gets_qdq(fake_gpu, tmp_path):
    from PIL import Image

    options = BuildOptions(precision="int8", tile=(16, 16), batch=1)
    with pytest.raises(ValueError, match="int8 engines need calibration images: pass a folder"):
        builder.engine_for(WEIGHTS, options, cache=EngineCache(tmp_path))
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / "a.png")
    builder.engine_for(WEIGHTS, options, cache=EngineCache(tmp_path / "c"), calibration_images=images)
    ops = [n.op_type for n in onnx.load_from_string(fake_gpu[-1][0]).graph.node]
    assert ops.count("QuantizeLinear") == len(int8_convs(WEIGHTS.network))


def test_precision_the_gpu_lacks_is_refused_before_building(fake_gpu, monkeypatch, tmp_path):
    monkeypatch.setattr(builder, "cuda_device_info", lambda index=0: DeviceInfo("NVIDIA A100", (8, 0)))
    with pytest.raises(ValueError, match="fp8 needs a GPU of compute capability >= 8.9; NVIDIA A100 has 8.0"):
        builder.engine_for(WEIGHTS, BuildOptions(precision="fp8"), cache=EngineCache(tmp_path))
    assert fake_gpu == []


def test_backend_reports_why_it_is_unavailable():
    from srgan_fast.backends import availability

    if importlib.util.find_spec("tensorrt") is None:
        expected = "TensorRT is not installed (pip install 'srgan_fast[tensorrt]')"
    elif not torch.cuda.is_available():
        expected = "no CUDA GPU visible to torch"
    else:
        expected = None  # usable: TensorRT, onnx and torch are importable here and torch sees a GPU
    assert availability()["tensorrt"] == expected


# ---- On a GPU with TensorRT (skipped elsewhere by conftest, with the reason) ----

def _reference_unit(tiles_unit: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(tiles_unit.transpose(0, 3, 1, 2).copy()).double()
        return build_generator(WEIGHTS).double()(x).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.tensorrt
def test_fp32_engine_matches_the_reference(tmp_path):
    from srgan_fast.backends.tensorrt_backend import TensorRTBackend

    tiles = np.random.default_rng(1).random((5, 24, 20, 3), dtype=np.float32)
    backend = TensorRTBackend(WEIGHTS, "cuda", "fp32", engine_batch=2, cache_dir=str(tmp_path))
    y = backend.run(tiles)
    ref = _reference_unit(tiles)
    assert y.shape == (5, 96, 80, 3) and np.linalg.norm(y - ref) / np.linalg.norm(ref) <= 1e-4


@pytest.mark.tensorrt
def test_fp16_engine_at_most_twice_as_wrong_as_torch_fp16_on_the_gpu(tmp_path):
    from srgan_fast.backends.tensorrt_backend import TensorRTBackend

    tiles = np.random.default_rng(2).random((4, 32, 32, 3), dtype=np.float32)
    ref = _reference_unit(tiles)
    with torch.no_grad():
        x = torch.from_numpy(tiles.transpose(0, 3, 1, 2).copy()).cuda().half()
        torch16 = build_generator(WEIGHTS).cuda().half()(x).float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    y = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=4, cache_dir=str(tmp_path)).run(tiles)
    torch_error = np.linalg.norm(torch16 - ref) / np.linalg.norm(ref)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) <= 2 * torch_error


@pytest.mark.tensorrt
def test_uint8_host_and_device_inputs_agree_and_the_engine_is_reused(tmp_path):
    from srgan_fast.backends.tensorrt_backend import TensorRTBackend

    pixels = np.random.default_rng(3).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    backend = TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=2, cache_dir=str(tmp_path))
    host = backend.run(pixels)
    device = backend.run(torch.from_numpy(pixels).cuda())
    assert device.is_cuda and np.array_equal(device.cpu().numpy(), host)
    ref = _reference_unit(pixels / 255.0) * 255
    assert np.abs(host - ref).max() <= 0.5 + 255 * 4e-3  # fp16 rounding around half levels
    runner = backend._runners[("uint8", 16, 16)]
    assert all(slot.graph is not None for slot in runner.slots((2, 16, 16, 3)))
    engines = list(tmp_path.glob("*.engine"))
    assert len(engines) == 1
    before = engines[0].stat().st_mtime_ns
    TensorRTBackend(WEIGHTS, "cuda", "fp16", engine_batch=2, cache_dir=str(tmp_path)).run(pixels)
    assert engines[0].stat().st_mtime_ns == before  # loaded, not rebuilt


@pytest.mark.tensorrt
def test_int8_engine_agrees_with_the_same_qdq_graph_in_onnxruntime(tmp_path):
    from PIL import Image

    from srgan_fast.backends.tensorrt_backend import TensorRTBackend

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(4)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
    tiles = rng.random((2, 32, 32, 3), dtype=np.float32)
    backend = TensorRTBackend(WEIGHTS, "cuda", "int8", engine_batch=2, calibration_images=str(images),
                              cache_dir=str(tmp_path / "cache"))
    y = backend.run(tiles)
    ref = _reference_unit(tiles)
    # The same calibration table (now cached) in the same Q/DQ graph, run by onnxruntime on the CPU.
    from srgan_fast.backends.onnx_graph import QuantSpec, build_onnx_model
    from srgan_fast.backends.tensorrt.calibration import calibrate

    amax = calibrate(WEIGHTS, images, (32, 32), "int8", backend.cache.directory)
    model = build_onnx_model(WEIGHTS, precision="fp16", quant=QuantSpec("int8", amax))
    x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    oracle = session.run(None, {"image": x})[0]
    oracle = np.clip(oracle, 0, 1).transpose(0, 2, 3, 1)
    oracle_error = np.linalg.norm(oracle - ref) / np.linalg.norm(ref)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) <= 2 * oracle_error
