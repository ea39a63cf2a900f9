"""Native int8 for ESRGAN's residual dense blocks. Where a path has the fused op, each block whose input and inner
outputs have codes runs as one op on u8 codes (csrc/ops/cpu/dense_block_int8_kernels.h: on VNNI registers on the
avx512 path, on AMX tiles on the amx paths): every such block is held to the integer emulation
(srgan_fast.reference.int8.dense_conv_int8) from the block input it read, on VNNI and the tiles' model everywhere
with AVX-512 VNNI and on the instructions where AMX is granted, over bands, column strips, batches and the blocks'
widths. (Off the fused op, tiling and threads: test_native_int8.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from srgan_fast.architecture import rrdbnet
from srgan_fast.backends import native_int8
from srgan_fast.backends.base import engine_layers
from srgan_fast.reference.int8 import activation, dense_conv_int8, quantize
from srgan_fast.weights import random_weights

pytestmark = pytest.mark.native


def _C():
    return pytest.importorskip("srgan_fast._C")


def _fused_paths():
    """VNNI and the tiles' model everywhere the build has them; the instructions where the CPU and OS grant
    AMX-INT8."""
    try:
        from srgan_fast import _C as native
    except ImportError:
        return ["avx512", "amx_emulated"]
    return ["avx512", "amx_emulated"] + (["amx"] if native.cpu_info()["amx_int8"] else [])


@pytest.fixture(autouse=True)
def _fused_int8_here(request, tmp_path, monkeypatch):
    callspec = getattr(request.node, "callspec", None)
    path = callspec.params.get("path", "amx_emulated") if callspec else "amx_emulated"  # the others use the model
    if path not in _C().build_info()["cpu_paths_compiled"]:
        pytest.skip(f"this build has no {path} kernels (the compiler lacks their flags)")
    if not _C().cpu_info()["avx512_vnni"]:
        pytest.skip("the fused int8 blocks need AVX-512 VNNI, which this CPU lacks")
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path / "cache"))  # never the user's cache


def _calibrated(weights, seed=1):
    tiles = np.random.default_rng(seed).random((2, 24, 24, 3), dtype=np.float32)
    return native_int8.int8_outputs(weights, {"ranges": native_int8.measure_ranges(weights, tiles)}, 255)


def _zero_point_terms(parts, weight):
    """Per output channel, the magnitude of what the parts' zero points add to a conv's sums: the kernel sums
    the codes themselves and takes sum(weight * scale * zero point) off in its bias, a term that may be far
    larger than the result."""
    offsets = np.concatenate([np.full(codes.shape[-1], np.float64(scale) * zero_point)
                              for codes, scale, zero_point in parts])
    return np.abs(np.asarray(weight, np.float64).sum(axis=(2, 3)) @ offsets)


def _near_a_code_boundary(y, preactivation, bias, scale, zero_point_terms):
    """Pixels [n, h, w] where some channel of y (a conv's result, to be coded by ``scale``) sits within float
    rounding of half a code step: the kernel folds the zero points and the code scale into one multiply-add,
    which rounds differently from the emulation's multiply, add and quantize, so it may take the other code.
    The bound, in code steps: 8 fp32 roundings (2^-24 each) of the terms' magnitudes, the zero points' one
    included: the kernel rounds its folded scale, its folded bias (three steps) and its multiply-add, the
    emulation its product, sum, reciprocal and scaling, each on terms no larger than these."""
    scaled = np.asarray(y, np.float32) * (np.float32(1) / np.float32(scale))
    magnitude = (np.abs(preactivation - bias) + np.abs(bias) + np.abs(y) + zero_point_terms) / scale
    return (np.abs(scaled - np.floor(scaled) - 0.5) < 8 * 2.0**-24 * magnitude).any(axis=-1)


def _spread(pixels):
    """Pixels [n, h, w] a 3x3 conv's output reads from the given ones."""
    padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1)))
    h, w = pixels.shape[1:]
    return np.any([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)


def _emulated_block(records, first, x, quant, weight_max, outer):
    """The block whose first conv is records[first], from its input x: each part quantized with its codes.
    Also the output pixels [n, h, w] that an inner code on a code boundary may reach (see _near_a_code_boundary)."""
    parts = [(quantize(x, *quant[records[first]["source"]]), *quant[records[first]["source"]])]
    uncertain = np.zeros(x.shape[:3], bool)
    k = first
    while records[k]["residual"] < 0:
        preactivation = dense_conv_int8(parts, records[k]["weight"], records[k]["bias"], weight_max=weight_max)
        y = activation(preactivation, records[k]["slopes"])
        uncertain = _spread(uncertain) | _near_a_code_boundary(y, preactivation, records[k]["bias"], quant[k][0],
                                                               _zero_point_terms(parts, records[k]["weight"]))
        parts.append((quantize(y, *quant[k]), *quant[k]))
        k += 1
    last = records[k]
    out = dense_conv_int8(parts, last["weight"], last["bias"], weight_max=weight_max) * np.float32(
        last["residual_scale"]) + x
    if last["outer_residual"] >= 0:
        out = out * np.float32(last["outer_residual_scale"]) + outer[last["outer_residual"]]
    return k, out, _spread(uncertain)


@pytest.mark.parametrize("path", _fused_paths())
@pytest.mark.parametrize("params, shape, threads", [
    ({"num_blocks": 1, "channels": 16, "growth": 16}, (1, 37, 21), 3),  # bands, a partial block of pixels
    ({"num_blocks": 1, "channels": 32, "growth": 16}, (2, 33, 40), 2),  # two images
    ({"num_blocks": 1, "channels": 64, "growth": 32}, (1, 19, 45), 2),  # ESRGAN's widths: 96 and 160 pad to 64s
    ({"num_blocks": 1, "channels": 16, "growth": 16}, (1, 20, 300), 5),  # 2 column strips
])
def test_each_int8_dense_block_matches_the_integer_emulation(path, params, shape, threads):
    weights = random_weights(rrdbnet(**params), seed=5)
    quant = _calibrated(weights)
    engine = native_int8.build_engine(weights, "int8", quant, threads=threads, path=path)
    records = engine_layers(weights)
    # Every block but the first reads codes; the first reads conv_first's output, which int8 leaves in float.
    blocks = 3 * params["num_blocks"] - 1
    assert engine.int8_layers == 5 * blocks
    engine.run(np.random.default_rng(7).random((*shape, 3), dtype=np.float32))  # leaves codes in the rings
    values = {}
    engine.run_observed(np.random.default_rng(2).random((*shape, 3), dtype=np.float32),  # fresh input
                        [layer.result_channels for layer in weights.network.layers],
                        lambda layer, v, q: values.__setitem__(layer, v) if v is not None else None)
    checked = 0
    for first, record in enumerate(records[:-1]):
        opens_block = records[first + 1]["sources"] == [record["source"], first]
        if not opens_block or record["source"] == 0:
            continue  # not the first conv of a block, or of the first block
        last, expected, uncertain = _emulated_block(records, first, values[record["source"]], quant,
                                                    engine.int8_weight_max, values)
        assert not any(k in values for k in range(first, last)), "the inner maps are never stored"
        # The sums are exact integers: outside the pixels an inner code on a code boundary reaches, the outputs
        # differ by the float rounding of the epilogues alone; inside, by less than two code steps.
        difference = np.abs(values[last] - expected)
        step = max(quant[k][0] for k in range(first, last))
        assert difference[~uncertain].max() <= 1e-5 * np.abs(expected).max(), record["name"]
        assert difference.max() < 2 * step, record["name"]
        assert uncertain.mean() < 0.8, f"{record['name']}: too few pixels held exactly to mean anything"
        checked += 1
    assert checked == blocks


def test_a_dense_part_with_a_zero_point_out_of_range_is_refused_by_layer():
    weights = random_weights(rrdbnet(1, 16, 16), seed=5)
    quant = _calibrated(weights)
    index = [layer.name for layer in weights.network.layers].index("body.0.rdb2.conv3")
    quant[index] = (quant[index][0], 300)
    with pytest.raises(ValueError, match=r"^int8: layer 8 'body.0.rdb2.conv3': zero point must be in \[0, 255\], "
                                         r"got 300$"):
        native_int8.build_engine(weights, "int8", quant, path="amx_emulated")


def test_unfused_the_blocks_run_as_off_the_tiles():
    """fuse_dense_blocks=False on the tile paths: each int8 block's first conv reads codes alone and runs int8,
    as on the paths without the fused op; the convs reading concatenations run in floating point."""
    weights = random_weights(rrdbnet(1, 16, 16), seed=5)
    engine = native_int8.build_engine(weights, "int8", _calibrated(weights), path="amx_emulated",
                                      fuse_dense_blocks=False)
    assert engine.int8_layers == 2
    assert [s["kind"] for s in engine.plan["steps"]].count("conv_int8") == 2
