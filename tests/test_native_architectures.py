"""Every architecture of the description on the native engine, against the torch reference built from the same
description: fp32 within 1e-5 relative, bf16 at most 2x torch's own bf16 error, tiled equal to untiled with
the halo the description derives, and odd sizes, batches and scales."""
from __future__ import annotations

import math

import numpy as np
import pytest

from srgan_fast import Upscaler
from srgan_fast.architecture import msrresnet, rrdbnet, srresnet, srvgg_compact
from srgan_fast.tiler.seams import SeamGeometry
from srgan_fast.weights import random_weights

pytestmark = pytest.mark.native
torch = pytest.importorskip("torch")

NETWORKS = {
    "srresnet": srresnet(2, 8),
    "srresnet-x2": srresnet(1, 16, scale=2),
    "msrresnet": msrresnet(2, 8),
    "msrresnet-x2": msrresnet(1, 16, scale=2),
    "srvgg_compact": srvgg_compact(3, 8),
    "srvgg_compact-x2-leaky": srvgg_compact(2, 16, scale=2, activation="leakyrelu"),
    "srvgg_compact-x3-relu": srvgg_compact(2, 8, scale=3, activation="relu"),
    # ESRGAN: dense blocks written in place into one buffer, nearest x2 upsampling in the convs' addressing.
    "rrdbnet": rrdbnet(2, 16, 16),
    "rrdbnet-wider": rrdbnet(1, 32, 16),
    # Real-ESRGAN x2: the image pixel-unshuffled by 2 before the engine (odd sides mirrored), levels from there.
    "rrdbnet-x2": rrdbnet(1, 16, 16, scale=2),
}


def _C():
    from srgan_fast import _C

    return _C


def torch_output(weights, tiles: np.ndarray, dtype=torch.float64) -> np.ndarray:
    """The reference on [N, h, w, 3] float tiles in [0, 1], in ``dtype``, clamped, float64 NHWC."""
    from srgan_fast.backends.torch_backend import build_generator

    model = build_generator(weights).to(dtype)
    with torch.no_grad():
        x = torch.from_numpy(tiles.astype(np.float64)).to(dtype).permute(0, 3, 1, 2)
        return model(x).double().clamp(0, 1).permute(0, 2, 3, 1).numpy()


def relative_error(got, reference) -> float:
    got = np.asarray(got, dtype=np.float64)
    return float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30))


def native(weights, precision="fp32", path="auto", **options) -> Upscaler:
    return Upscaler(weights, backend="native", device="cpu", precision=precision, path=path, **options)


@pytest.mark.parametrize("name", NETWORKS)
def test_fp32_matches_float64_torch_on_every_path(name):
    weights = random_weights(NETWORKS[name], seed=1)
    tiles = np.random.default_rng(2).random((2, 13, 11, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    for path in _C().cpu_info()["paths_fp32"]:
        out = native(weights, path=path).backend.run(tiles)
        assert out.shape == (2, 13 * weights.scale, 11 * weights.scale, 3)
        assert relative_error(out, reference) <= 1e-5, path


@pytest.mark.parametrize("name", NETWORKS)
def test_bf16_is_within_twice_torch_bf16_error(name):
    if not _C().cpu_info()["paths_bf16"]:
        pytest.skip("this CPU has no bf16 path")
    weights = random_weights(NETWORKS[name], seed=3)
    tiles = np.random.default_rng(4).random((1, 24, 20, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    torch_error = relative_error(torch_output(weights, tiles, torch.bfloat16), reference)
    assert relative_error(native(weights, "bf16").backend.run(tiles), reference) <= 2 * torch_error


@pytest.mark.parametrize("name", NETWORKS)
def test_integer_images_round_like_the_reference(name):
    weights = random_weights(NETWORKS[name], seed=5)
    image = np.random.default_rng(6).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    expected = np.round(torch_output(weights, image[None] / 255.0)[0] * 255)
    out = native(weights)(image).astype(np.float64)
    # Within one level where float rounding lands on the other side of .5, exact elsewhere.
    assert np.abs(out - expected).max() <= 1 and np.mean(out != expected) < 0.01


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name.startswith("rrdbnet") else name
                                  for name in NETWORKS])  # RRDBNet's wide margins make its windows dear
def test_tiled_equals_untiled_with_the_derived_halo(name):
    """fp32 windows start on the engine's tiles and keep the margins that follow both edges through every layer
    (tiler/seams.py), at least the receptive radius: tiled gives the untiled bits."""
    weights = random_weights(NETWORKS[name], seed=7)
    seams = native(weights).seams
    # Cores of a fraction of the margins: several windows, not hundreds of RRDBNet's wide ones.
    tile = max(9, seams.widest // 2)
    tiled_upscaler = native(weights, tile=tile)
    assert seams == SeamGeometry.of(weights.network, tuple(tiled_upscaler.backend.engine.seam_tiles))
    assert seams.widest >= math.ceil(weights.network.receptive_radius())
    side = 2 * seams.widest + 2 * tile
    image = np.random.default_rng(8).integers(0, 256, (side + 13, side + 29, 3), dtype=np.uint8)
    assert tiled_upscaler.plan(image.shape[:2]).num_windows > 1
    tiled = tiled_upscaler(image)
    assert tiled.shape == (image.shape[0] * weights.scale, image.shape[1] * weights.scale, 3)
    assert np.array_equal(tiled, native(weights)(image))


def test_a_layout_the_cpu_ops_do_not_carry_is_refused_with_the_layer():
    """msrresnet x3 shuffles by 3 inside the network, which the 3x3 conv epilogue does not fuse."""
    from srgan_fast.backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="msrresnet: the native engine cannot run layer 3 'upconv1': "
                                                 "inside the network the 3x3 convs pixel-shuffle by 2 only"):
        native(random_weights(msrresnet(1, 8, scale=3)))
