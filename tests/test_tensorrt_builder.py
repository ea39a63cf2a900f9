"""The TensorRT builder and runner.

Everywhere: the graph the builder hands TensorRT, the timing cache's key, and what is refused before any
build. On a GPU with TensorRT (marked ``tensorrt``, skipped elsewhere with the reason): what TensorRT builds
from it (shapes, profiles, the timing cache, its parser's errors) and ``runtime.EngineRunner`` running it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.architecture import int8_convs  # noqa: E402
from srgan_fast.backends.tensorrt.builder import (EngineBuildError, _timing_cache_path,  # noqa: E402
                                                   build_serialized_engine, onnx_for_engine)
from srgan_fast.backends.tensorrt.cache import CacheWarning, EngineCache  # noqa: E402
from srgan_fast.backends.tensorrt.options import BuildOptions, DeviceInfo  # noqa: E402
from srgan_fast.backends.tensorrt.runtime import SLOTS_PER_SHAPE  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=2)


def _input_dims(graph: bytes) -> list:
    dims = onnx.load_from_string(graph).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value or d.dim_param for d in dims]


def test_a_static_engine_graph_fixes_batch_and_tile_and_a_dynamic_one_leaves_them_open():
    static = onnx_for_engine(WEIGHTS, BuildOptions(precision="fp16", tile=(16, 24), batch=2))
    assert _input_dims(static) == [2, 16, 24, 3]  # io "uint8": NHWC
    dynamic = onnx_for_engine(WEIGHTS, BuildOptions(precision="fp32", tile=(32, 32), batch=4, io="float",
                                                    dynamic=((8, 8), (64, 96))))
    assert _input_dims(dynamic) == ["batch", 3, "height", "width"]
    precision = {p.key: p.value for p in onnx.load_from_string(dynamic).metadata_props}["float_precision"]
    assert precision == "fp32"


@pytest.mark.parametrize("precision, code_max", [("int8", 127.0), ("fp8", 448.0)])
def test_a_quantized_engine_graph_scales_the_policy_convs_inputs_by_their_ranges(precision, code_max):
    names = int8_convs(WEIGHTS.network)
    amax = {name: 2.0 + i for i, name in enumerate(names)}
    graph = onnx.load_from_string(onnx_for_engine(WEIGHTS, BuildOptions(precision=precision, tile=(8, 8)), amax))
    scales = {t.name.removesuffix(".input_scale"): float(onnx.numpy_helper.to_array(t))
              for t in graph.graph.initializer if t.name.endswith(".input_scale")}
    assert scales == pytest.approx({name: value / code_max for name, value in amax.items()}, rel=1e-3)  # fp16


def test_a_quantized_engine_graph_needs_ranges():
    with pytest.raises(ValueError, match="int8 engines need calibration: give calibration images"):
        onnx_for_engine(WEIGHTS, BuildOptions(precision="int8", tile=(8, 8)))


def test_the_timing_cache_is_one_file_per_tensorrt_version_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    h100 = DeviceInfo("NVIDIA H100", (9, 0))
    path = _timing_cache_path(cache, h100, "10.9.0")
    assert path.parent == tmp_path and path.name.startswith("timing-")
    assert _timing_cache_path(EngineCache(tmp_path), DeviceInfo("NVIDIA H100", (9, 0)), "10.9.0") == path
    others = {_timing_cache_path(cache, h100, "10.10.0"), _timing_cache_path(cache, DeviceInfo("NVIDIA A100", (8, 0)),
                                                                                "10.9.0")}
    assert path not in others and len(others) == 2


# ---- On a GPU with TensorRT (skipped elsewhere by conftest, with the reason) ----

def _deserialize(plan: bytes):
    """(runtime, engine): the runtime is returned too because it must outlive its engines."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    return runtime, runtime.deserialize_cuda_engine(plan)


def _reference(batch_nchw: np.ndarray) -> np.ndarray:
    import torch

    from srgan_fast.backends.torch_backend import build_generator

    with torch.no_grad():
        return build_generator(WEIGHTS).double()(torch.from_numpy(batch_nchw).double()).numpy()


@pytest.mark.tensorrt
def test_static_build_has_the_tile_and_batch_and_writes_its_timing_cache(tmp_path):
    options = BuildOptions(precision="fp16", tile=(16, 24), batch=2, optimization_level=1)
    timing = tmp_path / "timing.cache"
    _runtime, engine = _deserialize(build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, timing))
    assert tuple(engine.get_tensor_shape("image")) == (2, 16, 24, 3)
    assert tuple(engine.get_tensor_shape("upscaled")) == (2, 64, 96, 3)
    assert engine.num_optimization_profiles == 1
    assert timing.stat().st_size > 0


@pytest.mark.tensorrt
def test_dynamic_build_has_one_profile_per_runtime_slot_spanning_the_range():
    options = BuildOptions(precision="fp32", tile=(32, 32), batch=4, io="float", dynamic=((8, 8), (64, 96)),
                           optimization_level=1, workspace_mib=256)
    _runtime, engine = _deserialize(build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None))
    assert engine.num_optimization_profiles == SLOTS_PER_SHAPE  # concurrent contexts need their own profile
    for profile in range(SLOTS_PER_SHAPE):
        shapes = [tuple(dims) for dims in engine.get_tensor_profile_shape("image", profile)]
        assert shapes == [(1, 3, 8, 8), (4, 3, 32, 32), (4, 3, 64, 96)]


@pytest.mark.tensorrt
def test_a_damaged_timing_cache_is_replaced_by_one_the_next_build_uses(tmp_path):
    options = BuildOptions(precision="fp16", tile=(8, 8), optimization_level=1)
    graph = onnx_for_engine(WEIGHTS, options)
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"not a timing cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)  # whether TensorRT refuses the blob or starts empty
        build_serialized_engine(graph, options, timing)
    assert timing.read_bytes() != b"not a timing cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        build_serialized_engine(graph, options, timing)


@pytest.mark.tensorrt
def test_parser_errors_carry_tensorrt_reasons():
    options = BuildOptions(precision="fp16", tile=(8, 8))
    with pytest.raises(EngineBuildError, match="TensorRT's ONNX parser rejected the exported graph: .+"):
        build_serialized_engine(b"not an ONNX graph", options, None)


@pytest.mark.tensorrt
def test_runner_gives_each_batch_its_own_result_from_host_and_device():
    import torch

    from srgan_fast.backends.tensorrt.runtime import EngineRunner

    options = BuildOptions(precision="fp32", tile=(8, 12), batch=2, io="float", optimization_level=1)
    runner = EngineRunner(build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None))
    rng = np.random.default_rng(5)
    batches = [rng.random((2, 3, 8, 12), dtype=np.float32) for _ in range(2 * SLOTS_PER_SHAPE + 1)]
    for out, batch in zip(runner.run_host(batches), batches):  # slots alternate: no batch gets another's result
        ref = _reference(batch)
        assert out.shape == (2, 3, 32, 48) and np.linalg.norm(out - ref) / np.linalg.norm(ref) <= 1e-4
    device = runner.run_device(torch.from_numpy(batches[0]).cuda())
    ref = _reference(batches[0])
    assert device.is_cuda and np.linalg.norm(device.cpu().numpy() - ref) / np.linalg.norm(ref) <= 1e-4


@pytest.mark.tensorrt
def test_runner_refuses_damaged_bytes_and_shapes_outside_the_profile():
    from srgan_fast.backends.tensorrt.runtime import EngineLoadError, EngineRunner

    with pytest.raises(EngineLoadError, match="TensorRT could not deserialize the engine"):
        EngineRunner(b"not an engine")
    options = BuildOptions(precision="fp16", tile=(8, 8), batch=2, io="float", dynamic=((8, 8), (16, 16)),
                           optimization_level=1)
    runner = EngineRunner(build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None))
    with pytest.raises(ValueError, match=r"input shape \(1, 3, 8, 24\) is outside the engine's optimization profile"):
        runner.run_host([np.zeros((1, 3, 8, 24), np.float32)])
