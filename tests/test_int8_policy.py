"""One int8 layer policy (``srgan_fast.architecture.int8_convs``) for every engine that quantizes: which convs
it keeps in floating point, and that the native engine and the graph TensorRT builds from quantize exactly those."""
from __future__ import annotations

import numpy as np
import pytest

from srgan_fast.architecture import int8_convs, msrresnet, rrdbnet, srresnet, srvgg_compact
from srgan_fast.weights import random_weights


@pytest.mark.parametrize("network, expected", [
    # float: head, blocks.0.conv1 (reads the head), trunk_conv (adds the head back), the upsamplers, tail
    (srresnet(2, 8), ["blocks.0.conv2", "blocks.1.conv1", "blocks.1.conv2"]),
    # float: conv_first, body.0.conv1 (reads it), upconv1 and upconv2 (shuffle), conv_hr and conv_last (level 4)
    (msrresnet(2, 8), ["body.0.conv2", "body.1.conv1", "body.1.conv2"]),
    # float: body.0 (first), body.2 (reads it), body.8 (last, shuffles)
    (srvgg_compact(3, 8), ["body.4", "body.6"]),
    # float: conv_first, the first dense block (each of its convs reads conv_first among its concatenated
    # inputs), conv_body (adds conv_first back), the upsampling and level-4 convs
    (rrdbnet(1, 8), [f"body.0.rdb{b}.conv{c}" for b in (2, 3) for c in range(1, 6)]),
], ids=["srresnet", "msrresnet", "srvgg_compact", "rrdbnet"])
def test_convs_whose_noise_reaches_the_pixels_stay_float(network, expected):
    assert int8_convs(network) == expected


def test_the_graph_tensorrt_builds_from_quantizes_exactly_the_policy_convs():
    pytest.importorskip("onnx")
    from srgan_fast.backends.onnx_graph import QuantSpec, build_onnx_model

    weights = random_weights(srresnet(2, 8))
    names = int8_convs(weights.network)
    model = build_onnx_model(weights, tile=(8, 8), precision="fp16", quant=QuantSpec("int8", dict.fromkeys(names, 1.0)))
    quantized = [node.output[0].removesuffix(".out") for node in model.graph.node
                 if node.op_type == "Conv" and node.input[0].endswith(".input_dq")]
    assert quantized == names


@pytest.mark.native
def test_the_native_engine_codes_exactly_the_inputs_of_the_policy_convs():
    from srgan_fast import _C
    from srgan_fast.backends import native_int8

    if not _C.cpu_info()["paths_int8"]:
        pytest.skip("this CPU or build has no int8 path (avx2 or avx512 with VNNI)")
    weights = random_weights(srresnet(2, 8))
    layers = weights.network.layers
    tiles = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    table = {"ranges": native_int8.measure_ranges(weights, tiles.astype(np.float32) / 255)}
    engine = native_int8.build_engine(weights, "int8", native_int8.int8_outputs(weights, table))
    coded = set()
    engine.run_observed(tiles, [layer.result_channels for layer in layers],
                        lambda i, values, codes: coded.add(layers[i].name) if codes is not None else None)
    sources = {weights.network.layer(name).source for name in int8_convs(weights.network)}
    assert coded == sources


@pytest.mark.native
def test_the_native_backend_says_how_many_convs_run_int8():
    from srgan_fast import Upscaler, _C

    if not _C.cpu_info()["paths_int8"]:
        pytest.skip("this CPU or build has no int8 path (avx2 or avx512 with VNNI)")
    upscaler = Upscaler("srresnet", backend="native", device="cpu", precision="int8")
    assert f"int8 in 31 of 37 convs, the others {upscaler.backend.engine.float_precision}" in upscaler.describe()
