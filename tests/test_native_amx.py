"""The amx path: int8 3x3 convs on AMX tiles (csrc/ops/cpu/amx_int8_kernels.h). Everywhere with AVX-512 VNNI the
same kernels run on the tiles' software model (path "amx_emulated") and must give the VNNI path's bits, since
both sum the same integers exactly and share one epilogue; where the CPU and OS grant AMX, the instructions
must give the model's bits too, and "auto" picks them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from srgan_fast import Upscaler
from srgan_fast.architecture import srresnet
from srgan_fast.weights import random_weights

pytestmark = pytest.mark.native


def _cpu():
    _C = pytest.importorskip("srgan_fast._C")
    return _C.cpu_info(), _C.build_info()


@pytest.fixture(autouse=True)
def _emulator_here(tmp_path, monkeypatch):
    cpu, build = _cpu()
    if "amx_emulated" not in build["cpu_paths_compiled"]:
        pytest.skip("this build has no amx kernels (the compiler lacks -mamx-int8)")
    if not cpu["avx512_vnni"]:
        pytest.skip("the amx paths' other kernels need AVX-512 VNNI, which this CPU lacks")
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path / "cache"))


def _photo(h, w):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[120:120 + h, 200:200 + w])


def _int8(model, path, **options):
    return Upscaler(model, backend="native", precision="int8", path=path, **options)


def assert_vnni_bits(emulated, vnni, image):
    """The int8 convs sum the same integers on the tile model and on VNNI and share one epilogue. The layers
    int8 leaves in floating point (head, the first trunk conv, upsamplers, tail) run fp32 on both paths where the
    CPU lacks AVX512_BF16, and then the images are equal. Where it has it they run bf16, on the AMX-BF16 tile
    model on one path and the AVX512-BF16 Winograd on the other, which round differently, so the images differ;
    there each int8 layer is held to the integer definition instead (test_native_int8.py, on every path)."""
    if vnni.backend.engine.float_precision != "fp32":
        pytest.skip("int8's float layers run bf16 here (AVX512_BF16), on different kernels on the two paths")
    assert np.array_equal(emulated(image), vnni(image))


def test_the_shipped_model_on_the_tile_model_is_the_vnni_bits():
    """srresnet's 64 -> 64 trunk convs take the tile kernel (rows of 16 pixels and a narrower last block)."""
    image = _photo(11, 21)
    emulated = _int8("srresnet", "amx_emulated")
    assert "amx_emulated" in emulated.describe()
    assert_vnni_bits(emulated, _int8("srresnet", "avx512"), image)


@pytest.mark.slow
def test_tiles_threads_and_batches_keep_the_bits(tmp_path):
    """A user model calibrated from a folder; two threads, one thread, a batch, tiled windows."""
    weights = random_weights(srresnet(1, 64), seed=3)
    folder = tmp_path / "calibration"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(_photo(24, 30 + k)).save(folder / f"{k}.png")
    vnni = _int8(weights, "avx512", calibration_images=str(folder))
    image = _photo(19, 37)
    emulated = _int8(weights, "amx_emulated", calibration_images=str(folder))
    expected = emulated(image)
    for options in ({"threads": 1}, {"threads": 2}, {"tile": (8, 12)}):
        assert np.array_equal(_int8(weights, "amx_emulated", calibration_images=str(folder), **options)(image),
                              expected), options
    frames = np.stack([image, image[::-1].copy()])
    assert np.array_equal(emulated.upscale_batch(frames), np.stack([expected, emulated(frames[1])]))
    assert_vnni_bits(emulated, vnni, image)


def test_auto_runs_the_instructions_where_amx_is_granted():
    """Where the CPU and OS grant AMX, "auto" runs the instructions once they gave the model's results (the
    engine's self-check). What they compute is checked elsewhere against definitions that do not depend on the
    order of a TDPBF16PS's additions, which the unit does not share with the model: every int8 layer against
    the integer definition (test_native_int8.py; its 64-channel network takes the tile kernel), bf16 against
    torch (test_bf16_on_the_tiles_is_within_twice_torch_bf16_error)."""
    cpu, _ = _cpu()
    granted = [precision for precision in ("int8", "bf16") if cpu[f"amx_{precision}"]]
    if not granted:
        pytest.skip(f"no AMX here: {cpu['amx_missing']}")
    for precision in granted:
        engine = Upscaler("srresnet", backend="native", precision=precision).backend.engine
        assert (engine.path, engine.path_note) == ("amx", ""), precision


def test_without_amx_the_path_is_refused_by_name_and_auto_runs_avx512():
    cpu, _ = _cpu()
    if cpu["amx_int8"]:
        pytest.skip("this CPU and OS grant AMX")
    with pytest.raises(ValueError, match=f"cpu path 'amx' is unavailable: {cpu['amx_missing']}"):
        _int8("srresnet", "amx")
    assert _int8("srresnet", "auto").backend.engine.path == "avx512"
    assert "amx" not in cpu["paths_int8"]


def test_fp32_stays_on_the_vector_units():
    with pytest.raises(ValueError, match="backend 'native' on cpu supports precision bf16, int8; got 'fp32'"):
        Upscaler("srresnet", backend="native", path="amx_emulated", precision="fp32")
    assert Upscaler("srresnet", backend="native", path="amx_emulated").backend.precision == "bf16"
    assert Upscaler("srresnet", backend="native", path="avx2").backend.precision == "fp32"
    from srgan_fast import _C
    from srgan_fast.backends.base import engine_layers

    layers = engine_layers(random_weights(srresnet(1, 16)))
    with pytest.raises(ValueError, match=r"cpu path 'amx_emulated' is unavailable: the amx paths run bf16 and int8 "
                                         r"\(fp32 runs on avx512\)"):
        _C.Engine(layers, 4, path="amx_emulated")


def _tile_paths():
    """The model everywhere; the instructions where the CPU and OS grant AMX-BF16."""
    try:
        from srgan_fast import _C
    except ImportError:
        return ["amx_emulated"]
    return ["amx_emulated"] + (["amx"] if _C.cpu_info()["amx_bf16"] else [])


@pytest.mark.parametrize("path", _tile_paths())
@pytest.mark.parametrize("name", ["srresnet", "msrresnet", "srvgg_compact-x2-leaky", "rrdbnet"])
def test_bf16_on_the_tiles_is_within_twice_torch_bf16_error(name, path):
    """Every 3x3 conv (trunk, upsamplers, dense blocks, the last) and the 9x9 and 3x3 tails on bf16 tiles with
    fp32 sums, on the model and on the instructions. The tolerance rule of the other bf16 paths
    (tests/test_native_architectures.py)."""
    import torch
    from test_native_architectures import NETWORKS, relative_error, torch_output

    weights = random_weights(NETWORKS[name], seed=3)
    tiles = np.random.default_rng(4).random((1, 24, 20, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    torch_error = relative_error(torch_output(weights, tiles, torch.bfloat16), reference)
    upscaler = Upscaler(weights, backend="native", precision="bf16", path=path)
    assert upscaler.backend.engine.path == path
    assert relative_error(upscaler.backend.run(tiles), reference) <= 2 * torch_error


def test_bf16_tiled_is_the_untiled_bits():
    """Direct convs on tiles compute each output pixel on its own, and the 9x9 tail on tiles sums its nine
    column contributions in an order that repeats every 6 pixels: the windows give the untiled bits."""
    weights = random_weights(srresnet(2, 16), seed=5)
    image = _photo(40, 70)
    tiled = Upscaler(weights, backend="native", precision="bf16", path="amx_emulated", tile=(40, 16))
    tiles = tiled.backend.engine.seam_tiles
    assert set(tiles[1:-1]) == {1} and tiles[-1] == 6  # direct convs; the tail's accumulation period
    assert tiled.plan(image.shape[:2]).num_windows > 1
    whole = Upscaler(weights, backend="native", precision="bf16", path="amx_emulated", tile=1000)
    assert np.array_equal(tiled(image), whole(image))


@pytest.mark.parametrize("path", _tile_paths())
@pytest.mark.parametrize("name", ["msrresnet", "rrdbnet"])
def test_the_networks_ending_in_a_3x3_conv_on_tiles_give_the_untiled_bits(name, path):
    """MSRResNet's and RRDBNet's convs at the output's resolution run on tiles in the banded chain: the HR convs
    as direct convs, each output pixel on its own; RRDBNet's conv to RGB (no image skip) as a 3x3 tail, which
    sums its three column contributions in an order that repeats every 3 pixels (MSRResNet's adds the
    upsampled image, so it stays a conv). Windows on multiples of 6 give the untiled bits."""
    from srgan_fast.architecture import msrresnet, rrdbnet

    network = {"msrresnet": msrresnet(1, 16), "rrdbnet": rrdbnet(1, 16, 16)}[name]
    weights = random_weights(network, seed=6)
    image = _photo(40, 90)
    tiled = Upscaler(weights, backend="native", precision="bf16", path=path, tile=(40, 24))
    engine = tiled.backend.engine
    assert engine.plan["steps"][-1]["kind"] == ("tail" if name == "rrdbnet" else "conv")
    assert engine.seam_tiles[-1] == (6 if name == "rrdbnet" else 1)
    assert tiled.plan(image.shape[:2]).num_windows > 1
    whole = Upscaler(weights, backend="native", precision="bf16", path=path, tile=1000)
    assert np.array_equal(tiled(image), whole(image))


def test_the_tile_peak_is_measured_only_where_amx_is_granted():
    from srgan_fast import _C

    cpu, _ = _cpu()
    if not cpu["amx_int8"]:
        with pytest.raises(ValueError, match=f"no AMX int8 here: {cpu['amx_missing']}"):
            _C.amx_peak("int8", 1, 0.01)
        return
    assert _C.amx_peak("int8", 1, 0.05) > 0  # the rate itself is benchmarks/layer_profile.py's to report


def test_the_default_precision_is_bf16_only_on_amx_tiles():
    """Asked for no precision, the native backend takes bf16 where AMX-BF16 runs it (its quality cost measured
    within 0.02 dB), fp32 on vector units; fp32 stays available when asked for."""
    cpu, _ = _cpu()
    default = Upscaler("srresnet", backend="native")
    assert default.backend.precision == ("bf16" if cpu["amx_bf16"] else "fp32")
    assert f"cpu, {default.backend.precision}" in default.describe()
    assert Upscaler("srresnet", backend="native", precision="fp32").backend.precision == "fp32"


@pytest.mark.parametrize("path", _tile_paths())
@pytest.mark.parametrize("params, shape, threads", [
    ({"num_blocks": 1, "channels": 16, "growth": 16}, (1, 37, 21), 3),  # bands of 12 and 13 rows, a partial block
    ({"num_blocks": 1, "channels": 32, "growth": 16}, (2, 33, 40), 2),  # two images; 16- and 32-channel chunks
    ({"num_blocks": 1, "channels": 16, "growth": 32}, (1, 9, 70), 4),   # fewer rows than a band: one band
    ({"num_blocks": 1, "channels": 16, "growth": 16}, (1, 40, 300), 5),  # 2 column strips x 2 bands
    ({"num_blocks": 1, "channels": 16, "growth": 16}, (2, 7, 530), 2),   # 3 strips, two images
])
def test_the_fused_dense_blocks_give_the_conv_by_conv_bits(path, params, shape, threads):
    """At bf16 on tiles each residual dense block runs as one op, its concatenation in a ring of bf16 rows per
    band of output rows and strip of columns (csrc/ops/cpu/amx_dense_block_kernels.h); conv by conv, the same
    tile kernel reads and writes whole float32 maps. Both round the same values to bf16 and multiply the same
    tiles in the same order, so the images are equal, whatever the bands (threads, images), the strips (widths
    past 256) and the block's widths."""
    from srgan_fast.architecture import rrdbnet
    from srgan_fast.backends.base import engine_layers

    from srgan_fast import _C

    weights = random_weights(rrdbnet(**params), seed=8)
    network = weights.network

    def engine(fuse):
        return _C.Engine(engine_layers(weights), network.scale, network.image_skip or "none", precision="bf16",
                         threads=threads, path=path, fuse_dense_blocks=fuse)

    fused, by_conv = engine(True), engine(False)
    rng = np.random.default_rng(9)
    fused.run(rng.random((*shape, 3), dtype=np.float32))  # leaves its rows in the rings the next call reuses
    tiles = rng.random((*shape, 3), dtype=np.float32)
    assert np.array_equal(fused.run(tiles), by_conv.run(tiles))
    # Only the block's output is stored: the concatenations ([x | 4 x growth] channels) need no maps.
    assert fused.workspace_bytes(*shape) < by_conv.workspace_bytes(*shape)


@pytest.mark.parametrize("path", _tile_paths())
def test_maps_between_bf16_tile_convs_are_bf16_and_give_the_same_image(path):
    """A map that a bias + activation conv writes and only tile convs read is stored as bf16: its producer
    rounds what its readers rounded from float32 before (the same bits; the convs reading a residual or a
    concatenation keep float32 maps). Checked by the maps' storage and by the images, within the bf16 rule.
    (The tails read bf16 maps on the instructions only: the last upsampler's for the 9x9 tail, whose stores need
    AVX512_BF16, and conv_hr's for RRDBNet's 3x3 one; the model rounds their float32 rows itself.)"""
    import torch
    from test_native_architectures import relative_error, torch_output

    from srgan_fast import _C
    from srgan_fast.architecture import rrdbnet, srresnet
    from srgan_fast.backends.base import engine_layers

    for network, bf16_layers in ((srresnet(2, 16), {"blocks.0.conv1", "blocks.1.conv1"}),
                                 (rrdbnet(1, 16, 16), {"conv_up1", "conv_up2", "conv_hr"})):
        weights = random_weights(network, seed=6)
        engine = _C.Engine(engine_layers(weights), network.scale, network.image_skip or "none", precision="bf16",
                           threads=2, path=path)
        names = [layer.name for layer in network.layers]
        stored = {names[i] for i, m in enumerate(engine.plan["maps"]) if m["storage"] == "bf16"}
        tail_input = names[-2]  # the map the tail reads
        assert stored - {tail_input} == bf16_layers - {tail_input}
        assert (tail_input in stored) == (path == "amx")
        tiles = np.random.default_rng(7).random((2, 19, 26, 3), dtype=np.float32)
        reference = torch_output(weights, tiles)
        torch_error = relative_error(torch_output(weights, tiles, torch.bfloat16), reference)
        assert relative_error(engine.run(tiles), reference) <= 2 * torch_error
