"""Native int8: every int8 layer of every architecture against the integer emulation (srgan_fast.reference.int8)
on fresh random inputs, within 1 code; the shipped tables (no images needed); tiled == untiled bit for bit;
threads; the gradient banding bound; calibration from a folder, its cache, and the refusals."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from srgan_fast import Upscaler
from srgan_fast.architecture import msrresnet, rrdbnet, srresnet, srvgg_compact
from srgan_fast.backends import native_int8
from srgan_fast.backends.base import engine_layers
from srgan_fast.backends.calibration import ActivationStats
from srgan_fast.cli.main import main
from srgan_fast.reference.int8 import conv3x3_int8, quantize
from srgan_fast.weights import random_weights, save_weights

pytestmark = pytest.mark.native


def _C():
    from srgan_fast import _C

    return _C


@pytest.fixture(autouse=True)
def _int8_here(tmp_path, monkeypatch):
    if not _C().cpu_info()["paths_int8"]:
        pytest.skip("this CPU or build has no int8 path (avx2 or avx512 with VNNI)")
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path / "cache"))  # never the user's cache


NETWORKS = {
    "srresnet": srresnet(2, 16),
    "srresnet-8-channels": srresnet(1, 8),  # channels padded to 16: the padding lanes must stay inert
    "srresnet-64-channels": srresnet(1, 64),  # 64 -> 64 convs take the AMX tile kernel on the amx paths
    "msrresnet": msrresnet(2, 16),
    "srvgg_compact": srvgg_compact(3, 16),
    "srvgg_compact-x2-relu": srvgg_compact(2, 16, scale=2, activation="relu"),
}


def _images(n, h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _observe(engine, weights, tiles):
    values, codes = {}, {}

    def keep(layer, v, q):
        if v is not None:
            values[layer] = v
        if q is not None:
            codes[layer] = q

    channels = [layer.result_channels for layer in weights.network.layers]
    out = engine.run_observed(tiles, channels, keep)
    return out, values, codes


def _int8_paths():
    """auto, and the AMX tile model where its other kernels (VNNI) run."""
    try:
        from srgan_fast import _C
    except ImportError:
        return ["auto"]
    emulated = _C.cpu_info()["paths_emulated"]["int8"] if _C.cpu_info()["avx512_vnni"] else []
    return ["auto"] + emulated


@pytest.mark.parametrize("path", _int8_paths())
@pytest.mark.parametrize("codes", ["u8", "widest"])
@pytest.mark.parametrize("name", NETWORKS)
def test_every_int8_layer_matches_the_integer_emulation(name, codes, path):
    weights = random_weights(NETWORKS[name], seed=3)
    ranges = native_int8.measure_ranges(weights, _images(2, 20, 20, seed=1).astype(np.float32) / 255, "minmax")
    table = {"ranges": ranges}
    code_max = 255 if codes == "u8" else native_int8.code_max(weights)
    quant = native_int8.int8_outputs(weights, table, code_max)
    engine = native_int8.build_engine(weights, "int8", quant, int8_code_max=code_max, path=path)
    assert engine.int8_code_max == code_max
    _, values, codes = _observe(engine, weights, _images(2, 17, 23, seed=2))  # fresh input, odd sizes
    records = engine_layers(weights)
    int8 = set(native_int8.int8_convs(weights.network))
    assert int8, name
    for i, r in enumerate(records):
        if r["name"] not in int8:
            if i in codes:  # a quantize step after a layer that is not an int8 conv: exact
                assert np.array_equal(codes[i], quantize(values[i], *quant[i], code_max)), r["name"]
            continue
        scale, zero_point = quant[r["source"]]
        expected = conv3x3_int8(codes[r["source"]], scale, zero_point, r["weight"], r["bias"],
                                weight_max=engine.int8_weight_max, shuffle=r["shuffle"], slopes=r["slopes"],
                                residual=values[r["residual"]] if r["residual"] >= 0 else None)
        assert i in values or i in codes, r["name"]
        if i in values:
            np.testing.assert_allclose(values[i], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(),
                                       err_msg=r["name"])
        if i in codes:
            emulated = quantize(expected, *quant[i], code_max)
            difference = np.abs(codes[i].astype(int) - emulated)
            assert difference.max() <= 1, r["name"]
            assert (difference == 0).mean() > 0.999, r["name"]


@pytest.mark.parametrize("path", ["avx2", "avx512"])
def test_without_the_fused_block_rrdbnet_runs_each_dense_blocks_first_conv_int8_and_the_rest_in_floating_point(path):
    """Without a fused int8 dense block (dense_block_int8_kernels.h: none on avx2, and on avx512 when the engine is
    told not to fuse; the fused blocks are tested in test_native_int8_dense.py), the first conv of each block that
    has codes reads them alone and runs int8, held to the integer emulation; the convs reading concatenations run
    at the float precision."""
    if path not in _C().cpu_info()["paths_int8"]:
        pytest.skip(f"no {path} int8 path here")
    weights = random_weights(rrdbnet(1, 16, 16), seed=5)
    ranges = native_int8.measure_ranges(weights, _images(2, 24, 24, seed=1).astype(np.float32) / 255, "minmax")
    code_max = native_int8.code_max(weights, path)
    quant = native_int8.int8_outputs(weights, {"ranges": ranges}, code_max)
    engine = native_int8.build_engine(weights, "int8", quant, int8_code_max=code_max, path=path,
                                      fuse_dense_blocks=False)
    records = engine_layers(weights)
    first_convs = [i for i, r in enumerate(records) if r["name"] in ("body.0.rdb2.conv1", "body.0.rdb3.conv1")]
    assert engine.int8_layers == len(first_convs) == 2
    _, values, codes = _observe(engine, weights, _images(1, 19, 22, seed=2))
    for i in first_convs:
        r = records[i]
        expected = conv3x3_int8(codes[r["source"]], *quant[r["source"]], r["weight"], r["bias"],
                                weight_max=engine.int8_weight_max, slopes=r["slopes"])
        np.testing.assert_allclose(values[i], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    fp32 = native_int8.build_engine(weights, "fp32").run(_images(1, 19, 22, seed=2))
    assert np.abs(engine.run(_images(1, 19, 22, seed=2)).astype(int) - fp32.astype(int)).max() <= 4


def test_convs_reading_an_uncoded_output_run_in_floating_point_and_bad_codes_are_refused():
    weights = random_weights(srresnet(1, 8))
    tiles = _images(1, 16, 16, seed=7)
    none = native_int8.build_engine(weights, "int8", [None] * len(weights.network.layers))
    assert np.array_equal(none.run(tiles), native_int8.build_engine(weights, none.float_precision).run(tiles))
    quant = [(0.01, 10)] * len(weights.network.layers)
    with pytest.raises(ValueError, match="int8: layer 1 'blocks.0.conv1': zero point must be in \\[0, 255\\], got 300"):
        native_int8.build_engine(weights, "int8", quant[:1] + [(0.01, 300)] + quant[2:])
    widest = native_int8.code_max(weights)
    with pytest.raises(ValueError, match=f"int8_code_max: the .* int8 convs of this network sum codes in \\[0, 255\\] "
                                         f"to \\[0, {widest}\\] exactly, got {widest + 1}"):
        native_int8.build_engine(weights, "int8", quant, int8_code_max=widest + 1)
    with pytest.raises(ValueError, match="int8_outputs: expected a positive scale, got -1"):
        native_int8.build_engine(weights, "int8", quant[:1] + [(-1.0, 3)] + quant[2:])
    with pytest.raises(ValueError, match="precision 'int8' needs int8_outputs: one \\(scale, zero_point\\) or None "
                                         "per layer \\(7\\), got 0"):
        native_int8.build_engine(weights, "int8")


def _photo(h, w):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + h, 150:150 + w])


def test_shipped_models_run_int8_without_images_close_to_fp32():
    image = _photo(48, 40)
    for model in ("srresnet", "srgan"):
        int8 = Upscaler(model, backend="native", precision="int8")
        assert "int8" in int8.describe()
        out = int8(image).astype(np.float64)
        ref = Upscaler(model, backend="native", precision="fp32")(image).astype(np.float64)
        psnr = 10 * np.log10(255**2 / np.mean((out - ref) ** 2))
        assert psnr > 38, (model, psnr)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["srresnet", "rrdbnet"])
def test_int8_tiled_equals_untiled_and_two_threads_equal_one(case, tmp_path):
    if case == "srresnet":
        model, options, image, tile = "srresnet", {}, _photo(61, 147), (24, 20)
    else:  # dense blocks (one op on the amx paths): a halo of 34 pixels there, 109 on AVX2 (fp32 F(4x4) convs)
        model = random_weights(rrdbnet(2, 32, 16), seed=6)
        options, image, tile = {"calibration_images": str(_folder(tmp_path))}, _images(1, 110, 300, 5)[0], (40, 48)
    whole = Upscaler(model, backend="native", precision="int8", tile=1000, **options)(image)
    tiled = Upscaler(model, backend="native", precision="int8", tile=tile, **options)
    if case == "rrdbnet" and tiled.backend.engine.path == "amx":  # the 5 blocks after the first, 5 convs each
        assert "int8 in 25 of 36 convs" in tiled.describe()
    assert tiled.plan(image.shape[:2]).num_windows > 1
    assert np.array_equal(tiled(image), whole)
    results = [None, None]

    def run(k):
        results[k] = tiled(image)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, whole) for r in results)


def test_int8_images_of_a_batch_equal_each_run_alone(tmp_path):
    # rrdbnet's block inputs are quantized from a channel range of a wider buffer (the concatenation): only
    # their own channels may be coded, or the codes spill into the map's right halo, which then holds whatever
    # the buffer's other channels held instead of the zero point (off the amx paths).
    weights = random_weights(rrdbnet(2, 32, 16), seed=6)
    upscaler = Upscaler(weights, backend="native", precision="int8", tile=1000,
                        calibration_images=str(_folder(tmp_path)))
    images = _images(3, 24, 36, seed=8)
    alone = [upscaler(image) for image in images]
    batch = upscaler.backend.run(images)
    assert all(np.array_equal(batch[k], alone[k]) for k in range(3))


@pytest.mark.parametrize("model", ["srresnet", "srgan"])
def test_smooth_16_bit_gradients_show_no_banding(model):
    # The bound is 2 levels of 8 bits. Wider codes (AVX2) measured 0.6; u8 codes (AVX-512 VNNI) measured
    # 2.8 (srresnet) and 5.8 (srgan) on the second, saturated gradient (README), so u8 is held to those.
    y, x = np.mgrid[0:64, 0:128]  # at most 1.2 levels of 8 bits from one pixel to the next
    gradients = [np.stack([x * 300 + 10000, y * 200 + 20000, (x + y) * 150 + 5000], axis=-1),
                 np.stack([x * 150 + 40000, x * 100 + y * 100 + 3000, 60000 - y * 300], axis=-1)]
    int8 = Upscaler(model, backend="native", precision="int8")
    fp32 = Upscaler(model, backend="native", precision="fp32")
    wide = int8.backend.engine.int8_code_max > 255
    bound = 2 if wide else {"srresnet": 3, "srgan": 6}[model]
    for gradient in gradients:
        gradient = gradient.astype(np.uint16)
        difference = np.abs(int8(gradient).astype(np.int64) - fp32(gradient).astype(np.int64)) / 257
        assert difference.max() <= bound and np.percentile(difference, 99) <= (0.5 if wide else 1.2)


def _folder(tmp_path, count=2):
    folder = tmp_path / "calibration"
    folder.mkdir()
    for k in range(count):
        Image.fromarray(_images(1, 40, 56, seed=10 + k)[0]).save(folder / f"{k}.png")
    return folder


def test_a_user_model_calibrates_from_a_folder_once_then_from_its_cache(tmp_path, monkeypatch):
    weights = random_weights(srresnet(1, 8), seed=4)
    with pytest.raises(ValueError, match="^int8 needs a calibration table for model 'random', and none is shipped "
                                         "or cached for these weights: give a folder of sample images"):
        Upscaler(weights, backend="native", precision="int8")
    folder = _folder(tmp_path)
    first = Upscaler(weights, backend="native", precision="int8", calibration_images=str(folder))(_photo(20, 20))
    calls = []
    monkeypatch.setattr(native_int8, "measure_ranges", lambda *a, **k: calls.append(a))
    again = Upscaler(weights, backend="native", precision="int8")(_photo(20, 20))  # no images: the cached table
    same_images = Upscaler(weights, backend="native", precision="int8", calibration_images=str(folder))
    assert np.array_equal(first, again) and np.array_equal(same_images(_photo(20, 20)), first) and not calls


def test_calibration_images_refusals(tmp_path):
    with pytest.raises(ValueError, match="calibration_images is for precision 'int8', got precision 'fp32'"):
        Upscaler("srresnet", backend="native", precision="fp32", calibration_images=str(tmp_path))
    weights = random_weights(srresnet(1, 8), seed=5)
    with pytest.raises(ValueError, match="calibration images: expected a folder of images, got '.*nope'"):
        Upscaler(weights, backend="native", precision="int8", calibration_images=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="calibration images: no .png, .jpg.* files in"):
        Upscaler(weights, backend="native", precision="int8", calibration_images=str(tmp_path))


def test_cli_int8_with_calibration_images(tmp_path, capsys):
    weights = random_weights(srresnet(1, 8), seed=6)
    model = tmp_path / "mine.safetensors"
    save_weights(model, weights.tensors, weights.metadata)
    Image.fromarray(_photo(24, 24)).save(tmp_path / "in.png")
    common = ["upscale", str(tmp_path / "in.png"), "--model", str(model), "--backend", "native", "--precision", "int8"]
    assert main([*common, "-o", str(tmp_path / "a.png")]) == 2  # refused before any file is read
    assert "--calibration-images DIR" in capsys.readouterr().err
    assert main([*common, "-o", str(tmp_path / "b.png"), "--calibration-images", str(_folder(tmp_path))]) == 0
    assert main([*common, "-o", str(tmp_path / "c.png")]) == 0  # the cached table
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.asarray(Image.open(tmp_path / "c.png")))


def test_range_methods_on_a_known_distribution():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 200_000), [40.0, -25.0]]).astype(np.float32)
    stats = ActivationStats(symmetric=False)
    stats.add_extremes("x", values)
    stats.add_histogram("x", values)
    assert stats.range("x", "minmax") == (pytest.approx(-25.0), pytest.approx(40.0))
    low, high = stats.range("x", "percentile")
    assert -5 < low < -3 and 3 < high < 5  # the two outliers clipped, 4 sigma kept
    low, high = stats.range("x", "mse")
    assert -25 < low < 0 < high < 40
    with pytest.raises(ValueError, match="unknown calibration method 'median': expected one of minmax, percentile"):
        stats.range("x", "median")
