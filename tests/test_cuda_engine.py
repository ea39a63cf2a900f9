"""The whole CUDA engine (backend "cuda") against the torch reference: every image dtype, fp16 and bf16, odd tile
sizes, batch vs one-by-one, pipelined batches, graphs vs eager launches, host vs device inputs, the self-check."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import random_generator_weights  # noqa: E402
from cuda_helpers import assert_at_most_twice_torch_error, cuda_native, relative_error  # noqa: E402
from srgan_fast.backends.base import engine_layers  # noqa: E402
from srgan_fast.backends.cuda_backend import CudaBackend  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402

pytestmark = pytest.mark.cuda

WEIGHTS = random_generator_weights(num_blocks=2, channels=16, seed=11)
FULL_SCALE = {np.uint8: 255, np.uint16: 65535, np.float32: 1}
TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def random_tiles(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, FULL_SCALE[dtype] + 1, shape).astype(dtype)


def torch_output(tiles_unit: np.ndarray, dtype, weights=WEIGHTS) -> np.ndarray:
    """The torch generator at `dtype` on [0, 1] NHWC tiles -> NHWC float64, unclamped."""
    with torch.no_grad():
        device = "cpu" if dtype == torch.float64 else "cuda"
        model = build_generator(weights).to(device=device, dtype=dtype)
        x = torch.from_numpy(tiles_unit.transpose(0, 3, 1, 2).copy()).to(device=device, dtype=dtype)
        return model(x).permute(0, 2, 3, 1).double().cpu().numpy()


def quantize(y_unit: np.ndarray, dtype) -> np.ndarray:
    """The backend contract's output rule (clamp, scale, round) in float64, back in [0, 1] units."""
    y = np.clip(y_unit, 0, 1)
    if dtype == np.float32:
        return y
    return np.round(y * FULL_SCALE[dtype]) / FULL_SCALE[dtype]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("size", [(13, 21), (8, 16), (3, 5)])
def test_engine_matches_torch_within_twice_its_own_error(precision, dtype, size):
    tiles = random_tiles((2, *size, 3), dtype, seed=size[0])
    out = CudaBackend(WEIGHTS, "cuda", precision).run(tiles)
    assert out.dtype == dtype and out.shape == (2, 4 * size[0], 4 * size[1], 3) and out.flags.c_contiguous
    unit = tiles.astype(np.float64) / FULL_SCALE[dtype]
    reference = quantize(torch_output(unit, torch.float64), dtype)
    torch_low = quantize(torch_output(unit.astype(np.float32), TORCH_DTYPES[precision]), dtype)
    assert_at_most_twice_torch_error(out.astype(np.float64) / FULL_SCALE[dtype], torch_low, reference,
                                     f"engine {precision} {np.dtype(dtype).name} {size}")


@settings(max_examples=12, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(1, 4),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]), precision=st.sampled_from(["fp16", "bf16"]))
def test_any_tile_size_batch_and_dtype_matches_torch(h, w, n, dtype, precision):
    tiles = random_tiles((n, h, w, 3), dtype, seed=h * 41 + w)
    out = CudaBackend(WEIGHTS, "cuda", precision, batch_size=3).run(tiles)
    assert out.shape == (n, 4 * h, 4 * w, 3) and out.dtype == dtype
    unit = tiles.astype(np.float64) / FULL_SCALE[dtype]
    reference = quantize(torch_output(unit, torch.float64), dtype)
    torch_low = quantize(torch_output(unit.astype(np.float32), TORCH_DTYPES[precision]), dtype)
    if relative_error(torch_low, reference) == 0:
        # A tiny integer tile where torch's rounding happens to be exact: allow one level, no more.
        assert np.abs(out.astype(np.float64) / FULL_SCALE[dtype] - reference).max() <= 1.0 / FULL_SCALE[dtype]
        return
    assert_at_most_twice_torch_error(out.astype(np.float64) / FULL_SCALE[dtype], torch_low, reference,
                                     f"engine {precision} {np.dtype(dtype).name} {n}x{h}x{w}")


def test_full_width_model_uses_the_64_channel_kernels():
    weights = random_generator_weights(num_blocks=1, channels=64, seed=3)
    tiles = random_tiles((1, 12, 19, 3), np.float32, seed=5)
    out = CudaBackend(weights, "cuda", "fp16").run(tiles)
    reference = quantize(torch_output(tiles.astype(np.float64), torch.float64, weights), np.float32)
    torch_low = quantize(torch_output(tiles, torch.float16, weights), np.float32)
    assert_at_most_twice_torch_error(out, torch_low, reference, "engine fp16, 64 channels")


def test_batch_equals_one_by_one_and_pipelined_batches():
    tiles = random_tiles((7, 9, 11, 3), np.uint8, seed=2)
    one_by_one = np.concatenate([CudaBackend(WEIGHTS, "cuda", "fp16").run(t[None]) for t in tiles])
    whole = CudaBackend(WEIGHTS, "cuda", "fp16", batch_size=8).run(tiles)
    # 7 tiles in batches of 3: three batches through the two staging slots, the last one short.
    pipelined = CudaBackend(WEIGHTS, "cuda", "fp16", batch_size=3).run(tiles)
    np.testing.assert_array_equal(whole, one_by_one)
    np.testing.assert_array_equal(pipelined, one_by_one)


def test_graph_replay_equals_eager_launches_and_repeats_exactly():
    tiles = random_tiles((2, 10, 13, 3), np.uint16, seed=4)
    graphed = CudaBackend(WEIGHTS, "cuda", "bf16", use_graphs=True)
    eager = CudaBackend(WEIGHTS, "cuda", "bf16", use_graphs=False)
    first = graphed.run(tiles)
    np.testing.assert_array_equal(first, eager.run(tiles))
    np.testing.assert_array_equal(first, graphed.run(tiles))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fused_residual_blocks_equal_the_two_kernel_path(precision):
    tiles = random_tiles((3, 13, 18, 3), np.float32, seed=12)
    fused = CudaBackend(WEIGHTS, "cuda", precision, fuse_blocks=True).run(tiles)
    np.testing.assert_array_equal(fused, CudaBackend(WEIGHTS, "cuda", precision, fuse_blocks=False).run(tiles))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_device_input_gives_the_host_result_without_leaving_the_gpu(dtype):
    backend = CudaBackend(WEIGHTS, "cuda", "fp16", batch_size=2)
    tiles = random_tiles((3, 11, 7, 3), dtype, seed=9)
    expected = backend.run(tiles)
    device_tiles = torch.from_numpy(tiles).cuda()
    out = backend.run(device_tiles)
    assert isinstance(out, torch.Tensor) and out.is_cuda and out.dtype == device_tiles.dtype
    np.testing.assert_array_equal(out.cpu().numpy(), expected)
    # On a side stream, as a pipeline would call it: the result must be ordered on that stream.
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        again = backend.run(device_tiles)
        copied = again.cpu()
    np.testing.assert_array_equal(copied.numpy(), expected)


# The architectures the step plan runs on CUDA besides srresnet (WEIGHTS): image skips, 3x3 heads, the image
# store's shuffle, LeakyReLU and ReLU as fixed slopes (tests/test_step_plan.py checks their plans here).
PLANNED = ["msrresnet", "msrresnet-x2", "srvgg_compact", "srvgg_compact-x2-relu"]


def _planned_weights(name):
    from srgan_fast.weights import random_weights
    from test_step_plan import NETWORKS

    return random_weights(NETWORKS[name], seed=7)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", PLANNED)
def test_every_planned_architecture_matches_torch_within_twice_its_own_error(name, precision):
    weights = _planned_weights(name)
    scale = weights.network.scale
    tiles = random_tiles((2, 13, 21, 3), np.uint8, seed=3)
    out = CudaBackend(weights, "cuda", precision).run(tiles)
    assert out.shape == (2, 13 * scale, 21 * scale, 3)
    unit = tiles.astype(np.float64) / 255
    reference = quantize(torch_output(unit, torch.float64, weights), np.uint8)
    torch_low = quantize(torch_output(unit.astype(np.float32), TORCH_DTYPES[precision], weights), np.uint8)
    assert_at_most_twice_torch_error(out.astype(np.float64) / 255, torch_low, reference, f"{name} {precision}")


@pytest.mark.parametrize("name", PLANNED)
def test_every_planned_architecture_tiles_to_the_untiled_bits_and_fuses_to_the_two_kernel_bits(name):
    from srgan_fast import Upscaler

    weights = _planned_weights(name)
    image = random_tiles((1, 45, 38, 3), np.uint8, seed=4)[0]
    whole = Upscaler(weights, backend="cuda", precision="fp16", tile=1000)
    tiled = Upscaler(weights, backend="cuda", precision="fp16", tile=(24, 20))
    assert tiled.plan(image.shape[:2]).num_windows > 1
    np.testing.assert_array_equal(tiled(image), whole(image))
    tiles = random_tiles((2, 13, 18, 3), np.float32, seed=12)
    fused = CudaBackend(weights, "cuda", "fp16", fuse_blocks=True).run(tiles)
    np.testing.assert_array_equal(fused, CudaBackend(weights, "cuda", "fp16").run(tiles))


def test_reference_network_matches_float64_torch():
    engine = CudaBackend(WEIGHTS, "cuda", "fp16")._engine
    tiles = random_tiles((2, 9, 14, 3), np.float32, seed=6)
    ours = engine.run_reference(tiles)
    reference = torch_output(tiles.astype(np.float64), torch.float64)
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch32 = torch_output(tiles, torch.float32)
    finally:
        torch.backends.cudnn.allow_tf32 = previous
    assert relative_error(ours, reference) <= 2 * relative_error(torch32, reference) + 1e-7


def test_self_check_passes_and_catches_wrong_kernels():
    _C = cuda_native()
    layers, scale = engine_layers(WEIGHTS), WEIGHTS.network.scale
    good = _C.CudaEngine(layers, scale, "none", "fp16")
    report = good.self_check(17, 23)
    assert report["passed"] and report["max_abs_error"] <= report["max_abs_tolerance"], report["text"]
    assert report["max_abs_error"] > 0  # fp16 storage really ran: the comparison is not vacuous
    wrong_tail = [dict(layer) for layer in layers]
    wrong_tail[-1]["weight"] = -np.asarray(wrong_tail[-1]["weight"])
    broken = _C.CudaEngine(layers, scale, "none", "fp16", reference_layers=wrong_tail)
    assert not broken.self_check(17, 23)["passed"]
    with pytest.raises(RuntimeError, match="self-check failed .*refusing to run, use another backend"):
        broken.run(random_tiles((1, 17, 23, 3), np.uint8))


@pytest.mark.parametrize("scale", [2, 8])
def test_other_scales_match_torch_within_twice_its_own_error(scale):
    from srgan_fast.architecture import srresnet
    from srgan_fast.weights import random_weights

    weights = random_weights(srresnet(num_blocks=1, channels=16, scale=scale), seed=scale)
    tiles = random_tiles((2, 7, 9, 3), np.uint8, seed=scale)
    out = CudaBackend(weights, "cuda", "fp16").run(tiles)
    assert out.shape == (2, 7 * scale, 9 * scale, 3)
    unit = tiles.astype(np.float64) / 255
    reference = quantize(torch_output(unit, torch.float64, weights), np.uint8)
    torch_low = quantize(torch_output(unit.astype(np.float32), torch.float16, weights), np.uint8)
    assert_at_most_twice_torch_error(out.astype(np.float64) / 255, torch_low, reference, f"x{scale} fp16")


def test_large_tiles_are_checked_on_a_smaller_tile_and_still_correct():
    tiles = random_tiles((1, 131, 129, 3), np.uint8, seed=8)  # above the 128x128 self-check size
    out = CudaBackend(WEIGHTS, "cuda", "fp16").run(tiles)
    unit = tiles.astype(np.float64) / 255
    torch_low = quantize(torch_output(unit.astype(np.float32), torch.float16), np.uint8)
    reference = quantize(torch_output(unit, torch.float64), np.uint8)
    assert_at_most_twice_torch_error(out / 255.0, torch_low, reference, "engine 131x129")


@pytest.mark.parametrize("tiles, message", [
    (np.zeros((2, 4, 4), np.uint8), r"expected tiles of shape \[N, h, w, 3\], got shape \(2, 4, 4\)"),
    (np.zeros((1, 4, 4, 4), np.uint8), r"got shape \(1, 4, 4, 4\)"),
    (np.zeros((1, 4, 4, 3), np.float64), "expected uint8, uint16 or float32 tiles, got float64"),
])
def test_bad_host_tiles_are_named(tiles, message):
    with pytest.raises(ValueError, match=message):
        CudaBackend(WEIGHTS, "cuda", "fp16").run(tiles)


def test_an_empty_batch_gives_an_empty_result():
    backend = CudaBackend(WEIGHTS, "cuda", "fp16")
    out = backend.run(np.zeros((0, 5, 6, 3), np.uint16))
    assert out.shape == (0, 20, 24, 3) and out.dtype == np.uint16
    out = backend.run(torch.zeros(0, 5, 6, 3, dtype=torch.uint8, device="cuda"))
    assert out.shape == (0, 20, 24, 3) and out.dtype == torch.uint8 and out.is_cuda


def test_bad_device_tiles_precision_and_device_are_named():
    backend = CudaBackend(WEIGHTS, "cuda", "fp16")
    with pytest.raises(ValueError, match=r"expected device tiles of shape \[N, h, w, 3\], got shape \(1, 3, 4, 4\)"):
        backend.run(torch.zeros(1, 3, 4, 4, dtype=torch.uint8, device="cuda"))
    with pytest.raises(ValueError, match="expected C-contiguous device tiles"):
        backend.run(torch.zeros(1, 3, 4, 4, dtype=torch.uint8, device="cuda").permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="expected uint8, uint16 or float32 device tiles, got typestr '<f8'"):
        backend.run(torch.zeros(1, 4, 4, 3, dtype=torch.float64, device="cuda"))
    with pytest.raises(ValueError, match="runs fp16 or bf16, got precision 'fp32'"):
        CudaBackend(WEIGHTS, "cuda", "fp32")
    with pytest.raises(ValueError, match="runs on 'cuda' or 'cuda:N', got device 'cpu'"):
        CudaBackend(WEIGHTS, "cpu", "fp16")
    with pytest.raises(ValueError, match=r"must be device memory on cuda:0, got host memory"):
        host = np.zeros((1, 4, 4, 3), np.uint8)
        out = torch.empty(1, 16, 16, 3, dtype=torch.uint8, device="cuda")
        backend._engine.run_device(host.ctypes.data, out.data_ptr(), 1, 4, 4, "uint8", 0)


def test_channel_counts_the_kernels_cannot_run_are_refused_with_the_reason():
    from srgan_fast.backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="model 'random' .*a channel count that is a multiple of 16, got 8"):
        CudaBackend(random_generator_weights(num_blocks=1, channels=8), "cuda", "fp16")


@pytest.mark.parametrize("fuse_blocks", [False, True])
def test_profile_times_the_forward_and_names_every_layer(fuse_blocks):
    engine = CudaBackend(WEIGHTS, "cuda", "fp16", fuse_blocks=fuse_blocks)._engine
    report = engine.profile(2, 24, 40, repeats=3)
    blocks = (["blocks.0.conv1 + blocks.0.conv2 (fused)", "blocks.1.conv1 + blocks.1.conv2 (fused)"] if fuse_blocks
              else ["blocks.0.conv1", "blocks.0.conv2", "blocks.1.conv1", "blocks.1.conv2"])
    assert [layer["name"] for layer in report["layers"]] == \
        ["head", *blocks, "trunk_conv", "upsample.0.conv", "upsample.1.conv", "tail"]
    assert report["forward_ms"] > 0 and all(layer["ms"] > 0 for layer in report["layers"])
    # 4.44 MFLOP per input pixel at 16 blocks x 64 channels scales with the architecture; recount it here.
    c = WEIGHTS.channels
    flops = 2 * 24 * 40 * 2 * (3 * c * 81 + 2 * 2 * c * c * 9 + c * c * 9 + 4 * c * c * 9 * (1 + 4) + 16 * c * 3 * 81)
    assert report["forward_tflops"] == pytest.approx(flops / (report["forward_ms"] * 1e9), rel=1e-6)


def test_profile_command_writes_the_result_json(tmp_path):
    import argparse
    import json

    from srgan_fast.cli import cuda_profile

    parser = argparse.ArgumentParser()
    cuda_profile.register(parser.add_subparsers())
    target = tmp_path / "profile.json"
    args = parser.parse_args(["cuda-profile", "--size", "20x36", "--blocks", "2", "--channels", "16", "--repeats",
                              "2", "--json", str(target)])
    assert args.func(args) == 0
    result = json.loads(target.read_text())
    assert {"device", "driver", "commit", "backend", "precision", "size", "ms"} <= set(result)
    assert result["size"] == [20, 36] and result["ms"] > 0 and len(result["layers"]) == 9


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_shipped_models_keep_psnr_y_within_the_issue_target(precision):
    """Issue 5's accuracy target on real weights and a real image: uint8 PSNR-Y within 0.05 dB of fp32 (bf16:
    or within twice torch's own bf16 deviation, whichever is larger)."""
    from PIL import Image

    from srgan_fast.backends.torch_backend import TorchBackend
    from srgan_fast.degradation import bicubic_downscale
    from srgan_fast.metrics import psnr_y
    from srgan_fast.samples import sample_path
    from srgan_fast.weights import available_models, load_weights

    if not available_models():
        pytest.skip("no shipped model in srgan_fast/pretrained yet")
    high = np.asarray(Image.open(sample_path()).convert("RGB"))
    low = bicubic_downscale(high)[None]
    for name in available_models():
        weights = load_weights(name)
        fp32 = psnr_y(TorchBackend(weights, "cpu", "fp32").run(low)[0], high)
        ours = psnr_y(CudaBackend(weights, "cuda", precision).run(low)[0], high)
        torch_low = psnr_y(TorchBackend(weights, "cuda", precision).run(low)[0], high)
        bound = 0.05 if precision == "fp16" else max(0.05, 2 * abs(torch_low - fp32))
        assert abs(ours - fp32) <= bound, f"{name} {precision}: PSNR-Y {ours:.3f} dB vs fp32 {fp32:.3f} dB"
