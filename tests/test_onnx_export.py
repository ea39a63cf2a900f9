"""ONNX export: checked graphs that onnxruntime runs to the torch reference's values, in every shape and io mode."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402
from srgan_fast.cli.export_onnx import register  # noqa: E402
from srgan_fast.backends.onnx_graph import build_onnx_model, export_onnx  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=2, channels=8, seed=3)
FP32_RELATIVE_TOLERANCE = 1e-4


def reference64(weights, x_nchw: np.ndarray) -> np.ndarray:
    """The torch model in float64: the yardstick for every precision."""
    with torch.no_grad():
        return build_generator(weights).double()(torch.from_numpy(x_nchw).double()).numpy()


def torch_fp16(weights, x_nchw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return build_generator(weights).half()(torch.from_numpy(x_nchw).half()).float().numpy()


def run_onnx(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref))


def random_images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


@pytest.mark.parametrize("tile", [(16, 16), (13, 17), (1, 1), (5, 3)])
def test_fp32_static_graph_matches_reference(tile):
    x = random_images(2, *tile, seed=tile[0])
    y = run_onnx(build_onnx_model(WEIGHTS, tile=tile, batch=2), x)
    ref = reference64(WEIGHTS, x)
    assert y.shape == (2, 3, 4 * tile[0], 4 * tile[1])
    assert relative_error(y, ref) <= FP32_RELATIVE_TOLERANCE
    assert np.abs(y - ref).max() <= FP32_RELATIVE_TOLERANCE * np.abs(ref).max()


def test_static_graph_has_static_shapes_and_dynamic_graph_symbolic_ones():
    static = build_onnx_model(WEIGHTS, tile=(24, 40), batch=3)
    dims = [d.dim_value for d in static.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 3, 24, 40]
    out_dims = [d.dim_value for d in static.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [3, 3, 96, 160]
    dynamic = build_onnx_model(WEIGHTS)
    names = [d.dim_param for d in dynamic.graph.input[0].type.tensor_type.shape.dim]
    assert names == ["batch", "", "height", "width"]


@pytest.fixture(scope="module")
def dynamic_session():
    model = build_onnx_model(WEIGHTS)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 23), w=st.integers(1, 23), seed=st.integers(0, 2**16))
def test_dynamic_graph_matches_reference_for_any_shape(dynamic_session, n, h, w, seed):
    x = random_images(n, h, w, seed)
    y = dynamic_session.run(None, {"image": x})[0]
    assert y.shape == (n, 3, 4 * h, 4 * w)
    assert relative_error(y, reference64(WEIGHTS, x)) <= FP32_RELATIVE_TOLERANCE


@pytest.mark.parametrize("tile", [None, (15, 9)])
def test_fp16_export_at_most_twice_as_wrong_as_torch_fp16(tile):
    # torch runs fp16 convolutions on CPU, so its own fp16 error is measured directly, on the same input.
    x = random_images(2, 15, 9, seed=11)
    ref = reference64(WEIGHTS, x)
    y = run_onnx(build_onnx_model(WEIGHTS, tile=tile, precision="fp16"), x)
    assert y.dtype == np.float32  # the graph's edges stay float32; casts are inside
    torch_error = relative_error(torch_fp16(WEIGHTS, x), ref)
    assert 0 < torch_error < 1e-2
    assert relative_error(y, ref) <= 2 * torch_error


def test_fp16_and_bf16_store_low_precision_weights():
    cases = (("fp16", onnx.TensorProto.FLOAT16, 17), ("bf16", onnx.TensorProto.BFLOAT16, 22))
    for precision, data_type, opset in cases:
        model = build_onnx_model(WEIGHTS, precision=precision)
        types = {t.name: t.data_type for t in model.graph.initializer}
        assert types["head.weight"] == data_type and types["blocks.1.conv2.bias"] == data_type
        assert model.opset_import[0].version == opset
        casts = [n for n in model.graph.node if n.op_type == "Cast"]
        assert [c.attribute[0].i for c in casts] == [data_type, onnx.TensorProto.FLOAT]


def test_bf16_weights_are_the_rounded_fp32_weights():
    # onnxruntime has no bf16 Conv on CPU, so the bf16 graph is checked for its values, not run.
    from onnx import numpy_helper

    model = build_onnx_model(WEIGHTS, precision="bf16")
    stored = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    w = WEIGHTS.tensors["blocks.0.conv1.weight"]
    assert np.abs(stored["blocks.0.conv1.weight"] - w).max() <= np.abs(w).max() * 2.0 ** -8
    assert not np.array_equal(stored["blocks.0.conv1.weight"], w)


@pytest.mark.parametrize("tile", [(7, 9), None])
def test_uint8_graph_converts_clamps_and_rounds_inside(tile):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    model = build_onnx_model(WEIGHTS, tile=tile, io="uint8")
    y = run_onnx(model, pixels)
    assert y.dtype == np.uint8 and y.shape == (2, 28, 36, 3)
    ref = reference64(WEIGHTS, (pixels.transpose(0, 3, 1, 2) / 255.0).astype(np.float32))
    expected = np.clip(ref, 0, 1).transpose(0, 2, 3, 1) * 255.0
    # Rounding may go either way only where the fp32 result sits within its error of a half level.
    assert np.abs(y - expected).max() <= 0.5 + 255.0 * FP32_RELATIVE_TOLERANCE


def test_uint8_tensors_only_meet_casts_as_tensorrt_requires():
    # TensorRT allows no operation but a cast on uint8 tensors, and its float -> uint8 cast truncates.
    model = build_onnx_model(WEIGHTS, tile=(8, 8), io="uint8", precision="fp16")
    consumers = [n for n in model.graph.node if "image" in n.input]
    assert [n.op_type for n in consumers] == ["Cast"]
    producer = next(n for n in model.graph.node if "upscaled" in n.output)
    before = next(n for n in model.graph.node if producer.input[0] in n.output)
    before_that = next(n for n in model.graph.node if before.input[0] in n.output)
    assert (producer.op_type, before.op_type, before_that.op_type) == ("Cast", "Transpose", "Round")


def test_metadata_names_model_weights_scale_io_and_precision():
    model = build_onnx_model(WEIGHTS, tile=(8, 8), precision="fp16", io="uint8")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["model_name"] == "random"
    assert props["weights_sha256"] == WEIGHTS.sha256
    assert (props["scale"], props["io"], props["precision"], props["tile"]) == ("4", "uint8", "fp16", "8x8")
    assert props["architecture"] == "srresnet"
    assert json.loads(props["architecture_params"]) == {"num_blocks": 2, "channels": 8, "scale": 4}


def test_torch_generator_with_batchnorm_is_folded_on_export():
    from srgan_fast.reference.model import Generator

    torch.manual_seed(0)
    generator = Generator(num_blocks=1, channels=8, batch_norm=True).eval()
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    x = random_images(1, 6, 10, seed=2)
    with torch.no_grad():
        ref = generator.double()(torch.from_numpy(x).double()).numpy()
    y = run_onnx(build_onnx_model(generator.float()), x)
    assert not any(n.op_type == "BatchNormalization" for n in build_onnx_model(generator).graph.node)
    assert relative_error(y, ref) <= FP32_RELATIVE_TOLERANCE


def test_export_writes_a_checked_file_atomically(tmp_path):
    path = export_onnx(WEIGHTS, tmp_path / "g.onnx", tile=(8, 12), io="uint8")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]
    before = path.read_bytes()
    with pytest.raises(ValueError):
        export_onnx(WEIGHTS, path, precision="fp64")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["g.onnx"]


@pytest.mark.parametrize("kwargs, message", [
    ({"tile": (0, 5)}, "tile must be (height, width) of positive ints or None for dynamic, got (0, 5)"),
    ({"tile": (8,)}, "got (8,)"),
    ({"precision": "fp64"}, "unknown ONNX graph precision 'fp64': expected one of fp32, fp16, bf16"),
    ({"io": "rgb"}, "io must be one of float, uint8, got 'rgb'"),
    ({"opset": 13}, "opset must be >= 17, got 13"),
    ({"precision": "bf16", "opset": 17}, "bf16 needs opset >= 22 (bfloat16 Conv), got 17"),
    ({"batch": 0}, "batch must be a positive int or None for dynamic, got 0"),
])
def test_bad_arguments_are_named_in_the_error(kwargs, message):
    with pytest.raises(ValueError) as info:
        build_onnx_model(WEIGHTS, **kwargs)
    assert message in str(info.value)


def test_unknown_model_type_is_named():
    with pytest.raises(TypeError, match="got dict"):
        build_onnx_model({"head.weight": 1})


def _cli():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_cli_exports_a_static_uint8_graph(tmp_path, capsys):
    from safetensors.numpy import save_file

    weights_path = tmp_path / "w.safetensors"
    save_file(WEIGHTS.tensors, str(weights_path), metadata=WEIGHTS.metadata)
    out = tmp_path / "g.onnx"
    args = _cli().parse_args(["export-onnx", str(weights_path), "-o", str(out), "--tile", "6", "10",
                              "--io", "uint8", "--precision", "fp16"])
    assert args.func(args) == 0
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert (props["io"], props["precision"], props["tile"]) == ("uint8", "fp16", "6x10")
    assert "wrote" in capsys.readouterr().out


def test_cli_requires_a_shape_choice(tmp_path, capsys):
    args = _cli().parse_args(["export-onnx", "m", "-o", str(tmp_path / "g.onnx")])
    assert args.func(args) == 2  # a usage error, as argparse's own
    assert capsys.readouterr().err == ("srgan-fast export-onnx: error: give --tile H W for a static graph or "
                                       "--dynamic for dynamic height and width (see srgan-fast export-onnx --help)\n")
