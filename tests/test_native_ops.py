"""Each fused op of the native engine (srgan_fast._C.ops) against its torch float64 mirror, on every kernel
path this machine runs: fp32 within 1e-5 relative; bf16 at most 2x as far from float64 as torch's own bf16."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import random_generator_weights

pytestmark = pytest.mark.native
torch = pytest.importorskip("torch")

from srgan_fast.reference.ops import conv_epilogue  # noqa: E402

SHAPES = [(1, 1, 1), (2, 5, 7), (1, 9, 4), (1, 13, 17)]  # [N, h, w]: 1x1, partial Winograd tiles, batches


def _C():
    from srgan_fast import _C

    return _C


def fp32_paths():
    return _C().cpu_info()["paths_fp32"]


def bf16_paths():
    return _C().cpu_info()["paths_bf16"]


def relative_error(got, reference) -> float:
    """Largest deviation relative to the largest reference magnitude."""
    got = np.asarray(got, dtype=np.float64)
    return float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30))


def nchw(x: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype).permute(0, 3, 1, 2)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).double().numpy()


def tensors(channels: int, seed: int) -> dict[str, np.ndarray]:
    return random_generator_weights(1, channels, seed=seed).tensors


def t(w: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy(w).to(dtype)


# Each op as srgan_fast.reference.ops composes it, in any dtype (float64 for the reference, bfloat16 for
# torch's own bf16 error).
def torch_layer(x, w, conv: str, dtype, **epilogue):
    return conv_epilogue(x, t(w[f"{conv}.weight"], dtype), t(w[f"{conv}.bias"], dtype), **epilogue)


def torch_residual_block(x, w, dtype):
    x = nchw(x, dtype)
    y = torch_layer(x, w, "blocks.0.conv1", dtype, slopes=t(w["blocks.0.prelu.weight"], dtype))
    return nhwc(torch_layer(y, w, "blocks.0.conv2", dtype, residual=x))


def torch_conv3x3_add(x, skip, w, dtype):
    return nhwc(torch_layer(nchw(x, dtype), w, "trunk_conv", dtype, residual=nchw(skip, dtype)))


def torch_upsampler(x, w, dtype):
    return nhwc(torch_layer(nchw(x, dtype), w, "upsample.0.conv", dtype, shuffle=2,
                            slopes=t(w["upsample.0.prelu.weight"], dtype)))


def features(shape, channels, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (*shape, channels)).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_head_matches_torch(shape, dtype):
    w = tensors(8, seed=1)
    rng = np.random.default_rng(2)
    if dtype == "float32":
        image, scale = rng.random((*shape, 3), dtype=np.float32), 1.0
    else:
        info = np.iinfo(dtype)
        image, scale = rng.integers(0, info.max + 1, (*shape, 3)).astype(dtype), float(info.max)
    x = nchw(image, torch.float64) / scale
    ref = nhwc(torch_layer(x, w, "head", torch.float64, slopes=t(w["head_prelu.weight"], torch.float64)))
    for path in fp32_paths():
        got = _C().ops.head(image, w["head.weight"], w["head.bias"], w["head_prelu.weight"], path=path, threads=2)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert relative_error(got, ref) <= 1e-5, path


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels", [8, 16, 24])
def test_residual_block_matches_torch(shape, channels):
    w, x = tensors(channels, seed=3), features(shape, channels, seed=4)
    ref = torch_residual_block(x, w, torch.float64)
    args = (w["blocks.0.conv1.weight"], w["blocks.0.conv1.bias"], w["blocks.0.prelu.weight"],
            w["blocks.0.conv2.weight"], w["blocks.0.conv2.bias"])
    for path in fp32_paths():
        got = _C().ops.residual_block(x, *args, path=path, threads=2)
        assert got.shape == ref.shape
        assert relative_error(got, ref) <= 1e-5, path
    torch_error = relative_error(torch_residual_block(x, w, torch.bfloat16), ref)
    for path in bf16_paths():
        got = _C().ops.residual_block(x, *args, path=path, precision="bf16", threads=2)
        assert relative_error(got, ref) <= 2 * torch_error, path


@pytest.mark.parametrize("shape", SHAPES)
def test_conv3x3_add_matches_torch(shape):
    w = tensors(16, seed=5)
    x, skip = features(shape, 16, seed=6), features(shape, 16, seed=7)
    ref = torch_conv3x3_add(x, skip, w, torch.float64)
    for path in fp32_paths():
        got = _C().ops.conv3x3_add(x, skip, w["trunk_conv.weight"], w["trunk_conv.bias"], path=path, threads=2)
        assert relative_error(got, ref) <= 1e-5, path
    torch_error = relative_error(torch_conv3x3_add(x, skip, w, torch.bfloat16), ref)
    for path in bf16_paths():
        got = _C().ops.conv3x3_add(x, skip, w["trunk_conv.weight"], w["trunk_conv.bias"], path=path,
                                   precision="bf16", threads=2)
        assert relative_error(got, ref) <= 2 * torch_error, path


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels", [8, 16])
def test_upsampler_matches_torch(shape, channels):
    w, x = tensors(channels, seed=8), features(shape, channels, seed=9)
    ref = torch_upsampler(x, w, torch.float64)
    args = (w["upsample.0.conv.weight"], w["upsample.0.conv.bias"], w["upsample.0.prelu.weight"])
    for path in fp32_paths():
        got = _C().ops.upsampler(x, *args, path=path, threads=2)
        assert got.shape == (shape[0], 2 * shape[1], 2 * shape[2], channels)
        assert relative_error(got, ref) <= 1e-5, path
    torch_error = relative_error(torch_upsampler(x, w, torch.bfloat16), ref)
    for path in bf16_paths():
        got = _C().ops.upsampler(x, *args, path=path, precision="bf16", threads=2)
        assert relative_error(got, ref) <= 2 * torch_error, path


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_tail_matches_torch(shape, dtype):
    w = tensors(16, seed=10)
    x = features(shape, 16, seed=11) * 0.3  # outputs spread over [0, 1] and beyond, to exercise the clamp
    y = torch_layer(nchw(x, torch.float64), w, "tail", torch.float64)
    ref = nhwc(y).clip(0, 1)
    assert (nhwc(y) < 0).any() or (nhwc(y) > 1).any() or shape == (1, 1, 1)
    for path in fp32_paths():
        got = _C().ops.tail(x, w["tail.weight"], w["tail.bias"], dtype=dtype, path=path, threads=2)
        assert got.dtype == np.dtype(dtype) and got.shape == (*shape, 3)
        if dtype == "float32":
            assert relative_error(got, ref) <= 1e-5, path
        else:
            expected = np.round(ref * np.iinfo(dtype).max)
            # Values within float32 rounding of a .5 boundary may round either way: at most one level apart.
            assert np.abs(got.astype(np.float64) - expected).max() <= 1, path
            assert (got == expected).mean() > 0.99, path


@pytest.mark.parametrize("channels", [16, 40])  # 40: bf16 pads channels to 64, two 32-wide dot products
def test_tail_bf16_is_within_twice_torch_bf16_error(channels):
    if not bf16_paths():
        pytest.skip("this CPU has no AVX512_BF16")
    w = tensors(channels, seed=14)
    x = features((2, 11, 9), channels, seed=15) * 0.3

    def torch_tail(dtype):
        return nhwc(torch_layer(nchw(x, dtype), w, "tail", dtype).clamp(0, 1))

    ref = torch_tail(torch.float64)
    torch_error = relative_error(torch_tail(torch.bfloat16), ref)
    for path in bf16_paths():
        got = _C().ops.tail(x, w["tail.weight"], w["tail.bias"], path=path, precision="bf16", threads=2)
        assert relative_error(got, ref) <= 2 * torch_error, path


def test_ops_reject_bad_arguments():
    C, w = _C(), tensors(8, seed=12)
    x = features((1, 4, 4), 8, seed=13)
    block = (w["blocks.0.conv1.weight"], w["blocks.0.conv1.bias"], w["blocks.0.prelu.weight"],
             w["blocks.0.conv2.weight"], w["blocks.0.conv2.bias"])
    with pytest.raises(ValueError, match=r"x: expected 8 channels to match the weights, got shape \(1, 4, 4, 3\)"):
        C.ops.residual_block(x[..., :3].copy(), *block)
    with pytest.raises(ValueError, match=r"weight'?: expected shape \(32, 8, 3, 3\), got \(8, 8, 3, 3\)"):
        C.ops.upsampler(x, w["trunk_conv.weight"], w["trunk_conv.bias"], w["upsample.0.prelu.weight"])
    with pytest.raises(ValueError, match="x: expected dtype float32, got float64"):
        C.ops.residual_block(x.astype(np.float64), *block)
    with pytest.raises(ValueError, match="expected a C-contiguous array"):
        C.ops.residual_block(np.asfortranarray(x), *block)
    with pytest.raises(ValueError, match="unknown cpu path 'sse'"):
        C.ops.residual_block(x, *block, path="sse")
    with pytest.raises(ValueError, match="the CPU engine runs precision 'fp32', 'bf16' or 'int8', got 'fp16'"):
        C.ops.residual_block(x, *block, precision="fp16")
    with pytest.raises(ValueError, match="dtype: expected 'uint8', 'uint16' or 'float32', got 'int32'"):
        C.ops.tail(x, w["tail.weight"], w["tail.bias"], dtype="int32")
    with pytest.raises(ValueError, match="cpu path 'reference' is unavailable"):
        C.ops.residual_block(x, *block, path="reference", precision="bf16")
