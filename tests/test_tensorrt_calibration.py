"""int8/fp8 for TensorRT without TensorRT: entropy calibration, the cached table, and the Q/DQ graph it feeds.

The quantized graph is the one TensorRT parses; onnxruntime runs it here, so its numbers are checked on CPU.
"""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import random_generator_weights  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402
from srgan_fast.architecture import int8_convs  # noqa: E402
from srgan_fast.backends.onnx_graph import QuantSpec, build_onnx_model  # noqa: E402
from srgan_fast.backends.tensorrt import calibration  # noqa: E402
from srgan_fast.backends.tensorrt.cache import CacheWarning  # noqa: E402
from srgan_fast.backends.calibration import calibration_tiles, entropy_threshold, image_files  # noqa: E402
from srgan_fast.backends.tensorrt.calibration import calibrate, measure_activation_amax  # noqa: E402

WEIGHTS = random_generator_weights(num_blocks=2, channels=8, seed=5)
TILE = (20, 20)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Smooth random images (so that activations have realistic, non-uniform histograms), one smaller than a tile."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("calibration_images")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 40), (33, 57), (12, 30)]):
        coarse = rng.random((h // 4 + 2, w // 4 + 2, 3))
        smooth = np.kron(coarse, np.ones((4, 4, 1)))[:h, :w]
        Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / f"sample{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def histogram(values: np.ndarray, bins: int = 2048):
    counts, edges = np.histogram(np.abs(values), bins=bins, range=(0, np.abs(values).max()))
    return counts, edges[1] - edges[0]


def test_entropy_threshold_clips_rare_outliers_but_not_a_bounded_distribution():
    rng = np.random.default_rng(1)
    gaussian = rng.normal(size=200_000)
    gaussian[:30] = 60.0  # a few outliers stretch the range 15x
    threshold = entropy_threshold(*histogram(gaussian))
    assert 3.0 < threshold < 10.0  # well inside the outliers, past the bulk of a unit Gaussian
    uniform = rng.uniform(-2, 2, size=200_000)
    assert entropy_threshold(*histogram(uniform)) == pytest.approx(2.0, rel=0.02)


def test_calibration_tiles_are_tile_sized_crops_from_every_image(image_dir):
    files = image_files(image_dir)
    assert [f.name for f in files] == ["sample0.png", "sample1.png", "sample2.png"]
    tiles = calibration_tiles(files, TILE, max_tiles=9, seed=0)
    assert tiles.shape == (9, 20, 20, 3) and tiles.dtype == np.float32
    assert 0.0 <= tiles.min() and tiles.max() <= 1.0


@pytest.mark.parametrize("folder, message", [
    ("does/not/exist", "calibration images: expected a folder of images, got 'does/not/exist'"),
])
def test_missing_image_folder_is_named(folder, message):
    with pytest.raises(ValueError) as info:
        image_files(folder)
    assert message in str(info.value)


def test_folder_without_images_is_named(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="calibration images: no .png, .jpg"):
        image_files(tmp_path)


def reference64(x_nchw):
    with torch.no_grad():
        return build_generator(WEIGHTS).double()(torch.from_numpy(x_nchw).double()).numpy()


def quantized_error(kind: str, amax: dict, x_nchw: np.ndarray) -> float:
    model = build_onnx_model(WEIGHTS, precision="fp16", quant=QuantSpec(kind, amax))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"image": x_nchw})[0]
    ref = reference64(x_nchw)
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@pytest.mark.slow
def test_calibrated_int8_and_fp8_graphs_track_the_reference(image_dir):
    tiles = calibration_tiles(image_files(image_dir), TILE, max_tiles=12, seed=3)
    x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))
    int8_amax = measure_activation_amax(WEIGHTS, tiles, "int8", bins=512)
    fp8_amax = measure_activation_amax(WEIGHTS, tiles, "fp8")
    assert set(int8_amax) == set(int8_convs(WEIGHTS.network)) and all(v > 0 for v in int8_amax.values())
    assert all(int8_amax[k] <= fp8_amax[k] * (1 + 1 / 512) for k in int8_amax)  # entropy never widens the range
    # An int8 step is 1/127 of the range and fp8 E4M3 keeps 3 mantissa bits: errors of a few percent at most,
    # and a badly calibrated range (16x too wide: 8 levels used) must be clearly worse.
    int8_error = quantized_error("int8", int8_amax, x)
    assert int8_error < 0.05
    assert quantized_error("int8", {k: 16 * v for k, v in int8_amax.items()}, x) > 3 * int8_error
    assert quantized_error("fp8", fp8_amax, x) < 0.1


def test_quantized_graph_has_qdq_on_the_policy_convs_only():
    amax = dict.fromkeys(int8_convs(WEIGHTS.network), 1.0)
    model = build_onnx_model(WEIGHTS, precision="fp16", quant=QuantSpec("int8", amax))
    quantized_inputs = {n.name.removesuffix(".input_q") for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized_inputs == set(amax)
    weight_dq = {n.name: n for n in model.graph.node if n.name.endswith(".weight_dq")}
    assert set(weight_dq) == {f"{k}.weight_dq" for k in amax}
    assert all(a.name == "axis" and a.i == 0 for n in weight_dq.values() for a in n.attribute)
    codes = {t.name: t.data_type for t in model.graph.initializer if t.name.endswith(".weight_codes")}
    assert set(codes.values()) == {onnx.TensorProto.INT8}
    initializers = {t.name for t in model.graph.initializer}
    assert {"head.weight", "trunk_conv.weight", "tail.weight"} <= initializers  # kept in fp16
    assert model.opset_import[0].version == 19
    with pytest.raises(ValueError, match="lacks 'blocks.1.conv2'"):
        partial = {k: 1.0 for k in amax if k != "blocks.1.conv2"}
        build_onnx_model(WEIGHTS, precision="fp16", quant=QuantSpec("int8", partial))
    with pytest.raises(ValueError, match="needs opset >= 19, got 17"):
        build_onnx_model(WEIGHTS, precision="fp16", quant=QuantSpec("int8", amax), opset=17)


@pytest.mark.slow
def test_calibration_table_is_cached_and_a_damaged_one_recomputed(image_dir, tmp_path, monkeypatch):
    calls = []
    real = calibration.measure_activation_amax

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration, "measure_activation_amax", counting)
    first = calibrate(WEIGHTS, image_dir, TILE, "int8", tmp_path, max_tiles=6)
    assert calibrate(WEIGHTS, image_dir, TILE, "int8", tmp_path, max_tiles=6) == first
    assert calls == ["int8"]
    calibrate(WEIGHTS, image_dir, TILE, "fp8", tmp_path, max_tiles=6)  # another kind: another table
    assert calls == ["int8", "fp8"]
    tables = sorted(tmp_path.glob("calibration-*.json"))
    assert len(tables) == 2
    int8_table = next(t for t in tables if json.loads(t.read_text())["fields"]["kind"] == "int8")
    int8_table.write_text("{ not json")
    with pytest.warns(CacheWarning, match="unusable: unreadable"):
        assert calibrate(WEIGHTS, image_dir, TILE, "int8", tmp_path, max_tiles=6) == first
    assert calls == ["int8", "fp8", "int8"]


def test_calibration_key_follows_the_images(image_dir, tmp_path):
    import shutil

    first = calibrate(WEIGHTS, image_dir, TILE, "fp8", tmp_path / "cache", max_tiles=3)
    other = tmp_path / "other_images"
    shutil.copytree(image_dir, other)
    (other / "sample0.png").unlink()
    second = calibrate(WEIGHTS, other, TILE, "fp8", tmp_path / "cache", max_tiles=3)
    assert len(list((tmp_path / "cache").glob("calibration-*.json"))) == 2
    assert first != second


@pytest.mark.slow
def test_build_engine_cli_writes_the_int8_graph_without_tensorrt(image_dir, tmp_path, capsys):
    from safetensors.numpy import save_file

    from srgan_fast.cli.tensorrt import register

    weights_path = tmp_path / "w.safetensors"
    save_file(WEIGHTS.tensors, str(weights_path), metadata=WEIGHTS.metadata)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "int8.onnx"
    args = parser.parse_args(["build-engine", str(weights_path), "--precision", "int8", "--tile", "20", "20",
                              "--batch", "2", "--calibration-images", str(image_dir), "--cache-dir",
                              str(tmp_path / "cache"), "--save-onnx", str(out), "--onnx-only"])
    assert args.func(args) == 0
    tiles = len(calibration_tiles(image_files(image_dir), (20, 20), 64, 0))
    assert re.search(rf"calibrating int8: +0%\|.*\| 0/{2 * tiles} ", capsys.readouterr().err)  # both passes' tiles
    model = onnx.load(str(out))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 20, 20, 3]
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) == len(int8_convs(WEIGHTS.network))
    pixels = np.random.default_rng(2).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    y = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"]).run(None, {"image": pixels})[0]
    assert y.shape == (2, 80, 80, 3) and y.dtype == np.uint8


def test_build_engine_cli_says_why_it_cannot_build(tmp_path, capsys):
    from safetensors.numpy import save_file

    from srgan_fast.backends.tensorrt_backend import TensorRTBackend
    from srgan_fast.cli.tensorrt import register

    if TensorRTBackend.unavailable_reason() is None:
        pytest.skip("TensorRT can build here")
    weights_path = tmp_path / "w.safetensors"
    save_file(WEIGHTS.tensors, str(weights_path), metadata=WEIGHTS.metadata)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["build-engine", str(weights_path), "--cache-dir", str(tmp_path)])
    assert args.func(args) == 2
    assert "cannot build an engine here: TensorRT is not installed" in capsys.readouterr().err
    args = parser.parse_args(["build-engine", str(weights_path), "--precision", "int8", "--onnx-only",
                              "--save-onnx", str(tmp_path / "g.onnx")])
    assert args.func(args) == 2
    assert "int8 needs --calibration-images DIR" in capsys.readouterr().err
