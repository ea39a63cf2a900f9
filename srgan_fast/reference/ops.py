"""The torch reference of every fused op the engines implement, in one place (any dtype, NCHW).

The torch module built from a description (``srgan_fast.reference.module``) is these ops in layer order, and the op
tests compare each engine kernel with the function here that names it. Keeping one copy means a change to
an epilogue's order is made once, and every test sees it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGE_SKIP_MODES = ("nearest", "bilinear")


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H', W'], H' and W' the next multiples of ``multiple`` (1 or 2: Real-ESRGAN ×2's
    unshuffle): a missing row (column) is the mirror of the last but one, as ``F.pad(mode="reflect")``, and the
    pixel itself on a 1-pixel side, where reflect has no mirror. The ONNX graph slices the same rows."""
    if multiple not in (1, 2):
        raise ValueError(f"inputs are padded to a multiple of 1 or 2, got {multiple}")
    for axis in (2, 3):
        size = image.shape[axis]
        if size % multiple:
            image = torch.cat([image, image.narrow(axis, max(size - 2, 0), 1)], dim=axis)
    return image


def conv_prologue(inputs: list[torch.Tensor], *, unshuffle: int = 1, upsample: int = 1) -> torch.Tensor:
    """A layer's conv input, in the order of ``srgan_fast.architecture.layers``: the inputs concatenated along
    channels (ESRGAN's dense connections), PixelUnshuffle(unshuffle) (Real-ESRGAN ×2), nearest ×upsample
    (ESRGAN's upsampling). inputs: [N, Ci, H, W] each -> [N, ΣCi·unshuffle², H·upsample/unshuffle, ...].
    Each step rebinds ``x``, so one tensor of its own is alive when the conv runs. The native engine fuses them
    (channel ranges of one buffer, the upsampling in the conv's addressing, the unshuffle before the engine);
    the ONNX graph writes them as Concat, a Reshape/Transpose and Resize."""
    x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    if upsample > 1:
        x = F.interpolate(x, scale_factor=upsample, mode="nearest")
    return x


def conv_epilogue(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, shuffle: int = 1,
                  slopes: torch.Tensor | float | None = None, residual: torch.Tensor | None = None,
                  batch_norm: torch.nn.Module | None = None, residual_scale: float = 1.0,
                  outer_residual: torch.Tensor | None = None, outer_residual_scale: float = 1.0) -> torch.Tensor:
    """One layer of ``srgan_fast.architecture.layers``, in its order: k×k conv with "same" zero padding
    + bias, PixelShuffle(shuffle), activation, y·residual_scale + residual, y·outer_residual_scale +
    outer_residual (ESRGAN's scaled residuals, each its own rounding as in ESRGAN's ``x5 * 0.2 + x``).

    x: [N, Cin, H, W]; weight: [Cout, Cin, k, k] (k odd); bias: [Cout] or None; slopes: PReLU's learned slopes
    [Cout / shuffle²], one fixed slope for every channel (LeakyReLU; 0 is ReLU), or None; residual:
    [N, Cout / shuffle², shuffle·H, shuffle·W] or None -> that shape. batch_norm: training only, the BN after
    the conv that inference folds into weight and bias. Each step rebinds ``y`` so that only two of its
    tensors are alive at once (the working set ``Network.peak_activation_values_per_input_pixel`` counts).

    Mirrors, on the CPU (``csrc/ops/cpu/``): the 3×3 Winograd convs of ``kernels_{portable,avx2,avx512}.cpp``
    with ``Epilogue::bias_prelu`` (slopes), ``bias_add_skip`` (residual) and ``bias_shuffle_prelu``
    (shuffle=2 with slopes), the fused residual block (two of them), and the 9×9 head (slopes) and tail (none)
    of ``head_tail_kernels.h`` / ``tail_winograd_kernels.h``; on CUDA (``csrc/ops/cuda/``): ``conv_mma_kernel``
    in ``conv_mma.cu`` (alpha, residual, ``kStorageShuffle2``), ``residual_block_kernel`` in
    ``residual_block.cu``, and ``reference_conv2d_kernel`` / ``reference_pixel_shuffle_prelu_kernel`` in
    ``reference_kernels.cu``.
    """
    y = F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
    if batch_norm is not None:
        y = batch_norm(y)
    if shuffle > 1:
        y = F.pixel_shuffle(y, shuffle)
    if isinstance(slopes, torch.Tensor):
        y = F.prelu(y, slopes)
    elif slopes is not None:
        y = F.leaky_relu(y, float(slopes))
    for add, scale in ((residual, residual_scale), (outer_residual, outer_residual_scale)):
        if add is not None:
            y = (y if scale == 1.0 else y * scale) + add
    return y


def image_skip(image: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    """The network's input upsampled ×scale, which the last layer's output is added to.

    image: [N, 3, H, W] -> [N, 3, scale·H, scale·W]. "nearest" repeats each pixel; "bilinear" is torch's
    ``align_corners=False`` (source coordinates (dst + 0.5) / scale - 0.5, clamped at the border), as BasicSR
    and Real-ESRGAN compute it. Mirrors ``ImageSkip`` of ``csrc/ops/cpu/image_output.cpp``, fused into the
    store of the network's output.
    """
    if mode not in IMAGE_SKIP_MODES:
        raise ValueError(f"image skip mode must be one of {', '.join(IMAGE_SKIP_MODES)}, got {mode!r}")
    if mode == "nearest":
        return F.interpolate(image, scale_factor=scale, mode="nearest")
    return F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False)
