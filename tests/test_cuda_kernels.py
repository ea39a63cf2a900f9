"""Each CUDA kernel (csrc/ops/cuda) on device pointers against torch: the tensor-core conv with every epilogue,
the shuffle store, the fused image I/O of head and tail, and the fp32 reference kernels themselves."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cuda_helpers import assert_at_most_twice_torch_error, cuda_native, relative_error  # noqa: E402
from srgan_fast.reference.ops import conv_epilogue  # noqa: E402

pytestmark = pytest.mark.cuda

STORAGE = {"fp16": torch.float16, "bf16": torch.bfloat16}
# Odd sizes hit partial thread blocks (16x16 in conv_mma, 8x16 in the fused block) and every border; 8x16 is
# exactly one fused-block tile and half a conv_mma tile; 1x1 is all border.
SIZES = [(13, 21), (8, 16), (1, 1), (17, 35)]
RAW = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}  # full scale of each image kind


@pytest.fixture(autouse=True)
def _exact_torch_reference():
    """torch's float32 GPU convs use TF32 by default, which would loosen the float32 comparisons below."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = previous


def call(op, **arguments):
    """Call a cuda_ops kernel with tensors where it takes device pointers (None: null). The tensors stay referenced
    until the (synchronous) call returns: a temporary's memory could otherwise be reused by the next argument."""
    op(**{k: (0 if v is None else v.data_ptr()) if v is None or isinstance(v, torch.Tensor) else v
          for k, v in arguments.items()})


def random_conv(cin, cout, k, seed):
    """Weights scaled as a trained layer (unit-variance outputs for unit-variance inputs)."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
    bias = torch.randn(cout, generator=g) * 0.1
    alpha = torch.rand(cout, generator=g) * 0.35 + 0.05
    return weight, bias, alpha


def packed(weight, cin_padded, cout_padded, precision, subpixel_major=False):
    bits = cuda_native().cuda_ops.pack_conv_weights(weight.numpy(), cin_padded, cout_padded, precision,
                                                    subpixel_major=subpixel_major)
    return torch.from_numpy(bits.view(np.int16)).cuda()


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()


def torch_conv_epilogue(x_nhwc, weight, bias, alpha=None, residual=None, dtype=torch.float64, shuffle=1):
    """The fused op's torch reference (srgan_fast.reference.ops) on NHWC tensors, at `dtype` (float64 reference
    or the low precision)."""
    device = x_nhwc.device
    y = conv_epilogue(nchw(x_nhwc.to(dtype)), weight.to(device, dtype), bias.to(device, dtype), shuffle=shuffle,
                      slopes=None if alpha is None else alpha.to(device, dtype),
                      residual=None if residual is None else nchw(residual.to(dtype)))
    return nhwc(y)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cin, cout", [(16, 16), (32, 32), (64, 64), (16, 48)])
@pytest.mark.parametrize("epilogue", ["bias", "prelu", "residual"])
def test_conv3x3_with_fused_epilogue(precision, size, cin, cout, epilogue):
    ops = cuda_native().cuda_ops
    dtype = STORAGE[precision]
    h, w = size
    weight, bias, alpha = random_conv(cin, cout, 3, seed=cin + cout + h)
    alpha = alpha if epilogue == "prelu" else None
    x32 = torch.randn(2, h, w, cin, device="cuda")
    residual32 = torch.randn(2, h, w, cout, device="cuda") if epilogue == "residual" else None
    x, residual = x32.to(dtype), None if residual32 is None else residual32.to(dtype)
    out = torch.empty(2, h, w, cout, device="cuda", dtype=dtype)
    call(ops.conv_mma, precision=precision, input=x, weights=packed(weight, cin, cout, precision),
         bias=bias.cuda(), alpha=None if alpha is None else alpha.cuda(), residual=residual,
         output=out, batch=2, height=h, width=w, in_channels=cin, cin_padded=cin, cout=cout,
         cout_padded=cout, ksize=3, input_kind="storage", output_kind="storage")
    reference = torch_conv_epilogue(x32, weight, bias, alpha, residual32)
    low = torch_conv_epilogue(x, weight, bias, alpha, residual, dtype=dtype)
    assert_at_most_twice_torch_error(out.cpu(), low.cpu(), reference.cpu(), f"conv3x3 {precision} {epilogue}")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("size", [(13, 21), (1, 1), (8, 16)])
@pytest.mark.parametrize("channels", [16, 64])
def test_upsampler_conv_pixel_shuffle_prelu(precision, size, channels):
    ops = cuda_native().cuda_ops
    dtype = STORAGE[precision]
    h, w = size
    weight, bias, _ = random_conv(channels, 4 * channels, 3, seed=channels + h)
    alpha = torch.rand(channels) * 0.35 + 0.05  # PReLU after the shuffle: one slope per output channel
    x32 = torch.randn(1, h, w, channels, device="cuda")
    x = x32.to(dtype)
    out = torch.empty(1, 2 * h, 2 * w, channels, device="cuda", dtype=dtype)
    weights = packed(weight, channels, 4 * channels, precision, subpixel_major=True)
    call(ops.conv_mma, precision=precision, input=x, weights=weights,
         bias=bias.cuda(), alpha=alpha.cuda(), residual=None, output=out, batch=1, height=h,
         width=w, in_channels=channels, cin_padded=channels, cout=4 * channels, cout_padded=4 * channels,
         ksize=3, input_kind="storage", output_kind="storage_shuffle2")

    def shuffled(x_nhwc, dtype):
        return torch_conv_epilogue(x_nhwc, weight, bias, alpha, dtype=dtype, shuffle=2)

    assert_at_most_twice_torch_error(out.cpu(), shuffled(x, dtype).cpu(), shuffled(x32, torch.float64).cpu(),
                                     f"upsampler {precision}")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("kind", list(RAW))
@pytest.mark.parametrize("size", [(11, 19), (1, 2)])
def test_head_9x9_reads_raw_images(precision, kind, size):
    ops = cuda_native().cuda_ops
    dtype = STORAGE[precision]
    full_scale = RAW[kind]
    h, w = size
    # Enough outputs that the worst error is a stable statistic: on a handful of values torch's max error can
    # fall well under the half-ulp of the output rounding that both sides pay (seen on an H200 with bf16, 1x2 px).
    batch = max(2, 2048 // (h * w * 16))
    weight, bias, alpha = random_conv(3, 16, 9, seed=h)
    if kind == "float32":
        image = raw = torch.rand(batch, h, w, 3, device="cuda")
    elif kind == "uint8":
        image = raw = torch.randint(0, 256, (batch, h, w, 3), device="cuda").to(torch.uint8)
    else:  # uint16 bits travel in an int16 tensor: torch has little uint16 support on CUDA
        image = torch.randint(0, 65536, (batch, h, w, 3), device="cuda", dtype=torch.int32)
        raw = torch.from_numpy(image.cpu().numpy().astype(np.uint16).view(np.int16)).cuda()
    out = torch.empty(batch, h, w, 16, device="cuda", dtype=dtype)
    call(ops.conv_mma, precision=precision, input=raw, weights=packed(weight, 16, 16, precision),
         bias=bias.cuda(), alpha=alpha.cuda(), residual=None, output=out, batch=batch, height=h,
         width=w, in_channels=3, cin_padded=16, cout=16, cout_padded=16, ksize=9, input_kind=kind,
         output_kind="storage")
    unit = image.double() / full_scale
    reference = torch_conv_epilogue(unit, weight, bias, alpha)
    low = torch_conv_epilogue((image.float() / full_scale).to(dtype), weight, bias, alpha, dtype=dtype)
    assert_at_most_twice_torch_error(out.cpu(), low.cpu(), reference.cpu(), f"head {precision} {kind}")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "float32_unclamped"])
@pytest.mark.parametrize("channels", [16, 64])
def test_tail_9x9_writes_images(precision, kind, channels):
    ops = cuda_native().cuda_ops
    dtype = STORAGE[precision]
    h, w = 19, 23
    weight, bias, _ = random_conv(channels, 3, 9, seed=channels)
    bias = bias + 0.5  # centre the output in [0, 1] so that the clamp cuts only the tails
    x32 = torch.randn(2, h, w, channels, device="cuda") * 0.5
    x = x32.to(dtype)
    out_dtype = {"uint8": torch.uint8, "uint16": torch.int16}.get(kind, torch.float32)
    out = torch.empty(2, h, w, 3, device="cuda", dtype=out_dtype)
    call(ops.conv_mma, precision=precision, input=x, weights=packed(weight, channels, 8, precision),
         bias=bias.cuda(), alpha=None, residual=None, output=out, batch=2, height=h, width=w,
         in_channels=channels, cin_padded=channels, cout=3, cout_padded=8, ksize=9, input_kind="storage",
         output_kind=kind)
    reference = torch_conv_epilogue(x32, weight, bias).cpu()
    low = torch_conv_epilogue(x, weight, bias, dtype=dtype).float().cpu()
    ours = out.cpu().numpy()
    if kind == "uint16":
        ours = ours.view(np.uint16)
    if kind == "float32_unclamped":
        assert_at_most_twice_torch_error(ours, low, reference, f"tail {precision} {kind}")
        return
    full_scale = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}[kind]
    assert (ours >= 0).all() and (ours <= full_scale).all()
    # Compare in [0, 1] after the same clamp (and rounding, for integers) that torch's backend applies.
    def to_image(y):
        y = y.clamp(0, 1)
        return y if kind == "float32" else torch.round(y * full_scale) / full_scale

    assert_at_most_twice_torch_error(ours / full_scale, to_image(low.double()), reference.clamp(0, 1),
                                     f"tail {precision} {kind}")


def test_conv_params_are_validated_with_the_field_named():
    ops = cuda_native().cuda_ops
    x = torch.zeros(1, 4, 4, 16, device="cuda", dtype=torch.float16)
    with pytest.raises(ValueError, match="cin_padded must be a positive multiple of 16, got 8"):
        call(ops.conv_mma, precision="fp16", input=x, weights=x, bias=x, alpha=None, residual=None,
             output=x, batch=1, height=4, width=4, in_channels=8, cin_padded=8, cout=16,
             cout_padded=16, ksize=3, input_kind="storage", output_kind="storage")
    with pytest.raises(ValueError, match="ksize must be 3 or 9, got 5"):
        call(ops.conv_mma, precision="fp16", input=x, weights=x, bias=x, alpha=None, residual=None,
             output=x, batch=1, height=4, width=4, in_channels=16, cin_padded=16, cout=16,
             cout_padded=16, ksize=5, input_kind="storage", output_kind="storage")
    with pytest.raises(ValueError, match="precision must be 'fp16' or 'bf16', got 'fp32'"):
        call(ops.conv_mma, precision="fp32", input=x, weights=x, bias=x, alpha=None, residual=None,
             output=x, batch=1, height=4, width=4, in_channels=16, cin_padded=16, cout=16,
             cout_padded=16, ksize=3, input_kind="storage", output_kind="storage")


# --- the fp32 reference kernels against float64 torch ---------------------------------------------------------

@pytest.mark.parametrize("ksize, cin, cout", [(3, 16, 16), (9, 3, 16), (9, 16, 3), (3, 5, 7)])
@pytest.mark.parametrize("epilogue", ["bias", "prelu", "residual"])
def test_reference_conv2d(ksize, cin, cout, epilogue):
    ops = cuda_native().cuda_ops
    h, w = 10, 13
    weight, bias, alpha = random_conv(cin, cout, ksize, seed=ksize * cin)
    alpha = alpha.cuda() if epilogue == "prelu" else None
    x = torch.randn(2, h, w, cin, device="cuda")
    residual = torch.randn(2, h, w, cout, device="cuda") if epilogue == "residual" else None
    out = torch.empty(2, h, w, cout, device="cuda")
    weight_cuda, bias_cuda = weight.cuda().contiguous(), bias.cuda()
    call(ops.reference_conv2d, input=x, weights=weight_cuda, bias=bias_cuda, alpha=alpha,
         residual=residual, output=out, batch=2, height=h, width=w, cin=cin, cout=cout,
         ksize=ksize)
    reference = torch_conv_epilogue(x, weight, bias, alpha, residual)
    torch32 = torch_conv_epilogue(x, weight, bias, alpha, residual, dtype=torch.float32)
    assert relative_error(out.cpu(), reference.cpu()) <= 2 * relative_error(torch32.cpu(), reference.cpu()) + 1e-7


def test_reference_pixel_shuffle_prelu_is_exact():
    ops = cuda_native().cuda_ops
    x = torch.randn(2, 5, 7, 4 * 6, device="cuda")
    alpha = torch.rand(6, device="cuda")
    out = torch.empty(2, 10, 14, 6, device="cuda")
    call(ops.reference_pixel_shuffle_prelu, input=x, alpha=alpha, output=out, batch=2, height=5, width=7,
         channels=6)
    # A 1x1 identity conv leaves only the epilogue's shuffle and PReLU, computed exactly.
    identity = torch.zeros(4 * 6, 4 * 6, 1, 1, device="cuda")
    identity[range(24), range(24)] = 1.0
    expected = torch_conv_epilogue(x, identity, torch.zeros(24, device="cuda"), alpha, dtype=torch.float32, shuffle=2)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("shuffle, skip, kind", [(1, "bilinear", "uint8"), (4, "nearest", "uint8"),
                                                 (2, "none", "float32")])
def test_image_store_is_the_shuffle_the_skip_and_the_output_rule(shuffle, skip, kind):
    """MSRResNet's last conv at the output's resolution + the bilinear input; SRVGGNetCompact's shuffle by 4 +
    the nearest input; a shuffle alone: against torch's pixel_shuffle and F.interpolate."""
    from srgan_fast.reference.ops import image_skip

    ops = cuda_native().cuda_ops
    n, h, w, scale = 2, 5, 7, 4
    features = torch.randn(n, scale * h // shuffle, scale * w // shuffle, 3 * shuffle * shuffle, device="cuda") / 4
    image = torch.rand(n, h, w, 3, device="cuda")
    dtype = {"uint8": torch.uint8, "float32": torch.float32}[kind]
    full = {"uint8": 255, "float32": 1}[kind]
    stored = (image * full).round().to(dtype) if kind != "float32" else image
    out = torch.empty(n, scale * h, scale * w, 3, device="cuda", dtype=dtype)
    call(ops.image_store, features=features, image=stored, output=out, batch=n, height=h, width=w, scale=scale,
         shuffle=shuffle, skip=skip, image_kind=kind, output_kind=kind)
    unit = stored.double() / full
    expected = torch.nn.functional.pixel_shuffle(features.double().permute(0, 3, 1, 2), shuffle)
    if skip != "none":
        expected = expected + image_skip(unit.permute(0, 3, 1, 2), scale, skip)
    expected = expected.clamp(0, 1).permute(0, 2, 3, 1)
    if kind != "float32":
        expected = (expected * full).round()
    assert (out.double() - expected).abs().max() <= (1 if kind != "float32" else 1e-6)


def test_reference_image_conversions_match_torch_backend_rules():
    ops = cuda_native().cuda_ops
    image = torch.randint(0, 256, (1000,), device="cuda").to(torch.uint8)
    unit = torch.empty(1000, device="cuda")
    call(ops.reference_input_to_float, input=image, kind="uint8", output=unit, count=1000)
    # IEEE float32 division, as the torch backend does on the CPU. (torch on CUDA multiplies by 1/255 instead,
    # which can differ by one ulp, so it is not the yardstick here.)
    exact = torch.from_numpy(image.cpu().numpy().astype(np.float32) / np.float32(255.0))
    assert torch.equal(unit.cpu(), exact)
    values = torch.linspace(-0.5, 1.5, 1001, device="cuda")
    out8 = torch.empty(1001, device="cuda", dtype=torch.uint8)
    call(ops.reference_output_from_float, input=values, kind="uint8", output=out8, count=1001)
    assert torch.equal(out8, torch.round(values.clamp(0, 1) * 255).to(torch.uint8))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("channels", [16, 32, 64])
@pytest.mark.parametrize("size", [(13, 21), (8, 16), (1, 1), (9, 17)])
def test_fused_residual_block_matches_torch_and_the_two_kernel_path(precision, channels, size):
    ops = cuda_native().cuda_ops
    dtype = STORAGE[precision]
    h, w = size
    weight1, bias1, alpha1 = random_conv(channels, channels, 3, seed=channels + h)
    weight2, bias2, _ = random_conv(channels, channels, 3, seed=channels + h + 1)
    packed1, packed2 = packed(weight1, channels, channels, precision), packed(weight2, channels, channels, precision)
    bias1, alpha1, bias2 = bias1.cuda(), alpha1.cuda(), bias2.cuda()
    x32 = torch.randn(2, h, w, channels, device="cuda")
    x = x32.to(dtype)
    fused = torch.empty_like(x)
    call(ops.residual_block_fused, precision=precision, input=x, weights1=packed1, bias1=bias1,
         alpha1=alpha1, weights2=packed2, bias2=bias2, output=fused, batch=2,
         height=h, width=w, channels=channels)
    # The same block as two conv_mma launches: the fused kernel promises identical rounding and K order.
    intermediate, two_kernel = torch.empty_like(x), torch.empty_like(x)
    common = dict(precision=precision, batch=2, height=h, width=w, in_channels=channels, cin_padded=channels,
                  cout=channels, cout_padded=channels, ksize=3, input_kind="storage", output_kind="storage")
    call(ops.conv_mma, input=x, weights=packed1, bias=bias1, alpha=alpha1, residual=None,
         output=intermediate, **common)
    call(ops.conv_mma, input=intermediate, weights=packed2, bias=bias2, alpha=None, residual=x,
         output=two_kernel, **common)
    assert torch.equal(fused, two_kernel)

    def block(x_nhwc, dtype):
        y = torch_conv_epilogue(x_nhwc, weight1, bias1.cpu(), alpha1.cpu(), dtype=dtype)
        return torch_conv_epilogue(y, weight2, bias2.cpu(), residual=x_nhwc, dtype=dtype)

    assert_at_most_twice_torch_error(fused.cpu(), block(x, dtype).cpu(), block(x32, torch.float64).cpu(),
                                     f"fused residual block {precision} C={channels}")


def test_fused_residual_block_refuses_unsupported_channels():
    ops = cuda_native().cuda_ops
    with pytest.raises(ValueError, match="channels must be 16, 32 or 64, got 48"):
        call(ops.residual_block_fused, precision="fp16", input=16, weights1=16, bias1=16, alpha1=16, weights2=16,
             bias2=16, output=32, batch=1, height=4, width=4, channels=48)
