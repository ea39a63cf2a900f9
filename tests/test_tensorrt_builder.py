"""How the builder configures TensorRT, with the `tensorrt` module stood in for by a recorder.

This checks our side of the contract (which calls, with which shapes, sizes and flags; what happens to the
timing cache and to parser errors) on machines without TensorRT. Whether TensorRT accepts those calls is what
the GPU tests in test_tensorrt_engine.py check where TensorRT exists.
"""
from __future__ import annotations

import sys
from unittest import mock

import pytest

pytest.importorskip("onnx")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.backends.tensorrt.builder import EngineBuildError, build_serialized_engine, onnx_for_engine  # noqa: E402
from srgan_fast.backends.tensorrt.cache import CacheWarning  # noqa: E402
from srgan_fast.backends.tensorrt.options import BuildOptions  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=1, channels=8, seed=2)


@pytest.fixture
def trt(monkeypatch):
    fake = mock.MagicMock(name="tensorrt")
    fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED = 1
    builder = fake.Builder.return_value
    builder.build_serialized_network.return_value = b"serialized plan"
    config = builder.create_builder_config.return_value
    config.get_timing_cache.return_value.serialize.return_value = b"timings v2"
    config.set_timing_cache.return_value = True
    fake.OnnxParser.return_value.parse.return_value = True
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


def test_static_fp16_build_is_strongly_typed_without_profiles_and_keeps_tf32(trt, tmp_path):
    options = BuildOptions(precision="fp16", tile=(16, 24), batch=2, optimization_level=5)
    plan = build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, tmp_path / "t.cache")
    builder = trt.Builder.return_value
    config = builder.create_builder_config.return_value
    assert plan == b"serialized plan"
    builder.create_network.assert_called_once_with(1 << 1)
    assert config.builder_optimization_level == 5
    config.add_optimization_profile.assert_not_called()  # the graph's shapes are fixed
    config.clear_flag.assert_not_called()
    config.set_memory_pool_limit.assert_not_called()
    assert (tmp_path / "t.cache").read_bytes() == b"timings v2"


def test_dynamic_fp32_build_has_a_profile_per_slot_a_workspace_cap_and_no_tf32(trt, tmp_path):
    options = BuildOptions(precision="fp32", tile=(32, 32), batch=4, io="float", dynamic=((8, 8), (64, 96)),
                           workspace_mib=256)
    build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None)
    builder = trt.Builder.return_value
    config = builder.create_builder_config.return_value
    profile = builder.create_optimization_profile.return_value
    assert profile.set_shape.call_args_list == [
        mock.call("image", (1, 3, 8, 8), (4, 3, 32, 32), (4, 3, 64, 96))] * 2
    assert config.add_optimization_profile.call_count == 2
    config.set_memory_pool_limit.assert_called_once_with(trt.MemoryPoolType.WORKSPACE, 256 * 2**20)
    config.clear_flag.assert_called_once_with(trt.BuilderFlag.TF32)


def test_existing_timing_cache_is_loaded_and_a_rejected_one_replaced(trt, tmp_path):
    path = tmp_path / "t.cache"
    path.write_bytes(b"old timings")
    options = BuildOptions(precision="fp16", tile=(8, 8))
    config = trt.Builder.return_value.create_builder_config.return_value
    build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, path)
    assert config.create_timing_cache.call_args_list == [mock.call(b"old timings")]
    config.set_timing_cache.return_value = False  # TensorRT: made by another version or GPU
    path.write_bytes(b"foreign timings")
    with pytest.warns(CacheWarning, match="timing cache .* is unusable"):
        build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, path)
    assert config.create_timing_cache.call_args_list[-2:] == [mock.call(b"foreign timings"), mock.call(b"")]


def test_parser_and_build_failures_carry_tensorrt_reasons(trt):
    options = BuildOptions(precision="fp16", tile=(8, 8))
    parser = trt.OnnxParser.return_value
    parser.parse.return_value = False
    parser.num_errors = 2
    parser.get_error.side_effect = lambda i: mock.Mock(desc=lambda: f"node {i} unsupported")
    with pytest.raises(EngineBuildError, match="rejected the exported graph: node 0 unsupported; node 1 unsupported"):
        build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None)
    parser.parse.return_value = True
    trt.Builder.return_value.build_serialized_network.return_value = None
    with pytest.raises(EngineBuildError, match="TensorRT failed to build an engine"):
        build_serialized_engine(onnx_for_engine(WEIGHTS, options), options, None)


def test_quantized_engine_graph_requires_ranges():
    with pytest.raises(ValueError, match="int8 engines need calibration: give calibration images"):
        onnx_for_engine(WEIGHTS, BuildOptions(precision="int8", tile=(8, 8)))
