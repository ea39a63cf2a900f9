"""The networks of SRGAN (Ledig et al., 2017) in PyTorch: the reference every fast path is tested against.

Value ranges, scale and receptive radius live in ``srgan_fast.architecture`` (no torch needed there).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from srgan_fast.architecture import SCALE


def _conv(in_ch: int, out_ch: int, k: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    # "same" zero padding, as the paper: the image border is treated as black beyond the edge.
    return nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=k // 2, bias=bias)


def _bn_or_identity(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the block input."""

    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        self.conv1 = _conv(channels, channels, 3, bias=not batch_norm)
        self.bn1 = _bn_or_identity(channels, batch_norm)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv(channels, channels, 3, bias=not batch_norm)
        self.bn2 = _bn_or_identity(channels, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.prelu(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(y))


class UpsampleStage(nn.Module):
    """conv3x3 C->4C, PixelShuffle(2), PReLU: doubles the resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = _conv(channels, 4 * channels, 3)
        self.shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    """SRResNet: the SRGAN generator. ``batch_norm=False`` is the inference form (BN folded into the convs).

    x: [N, 3, H, W] in INPUT_RANGE -> [N, 3, 4H, 4W] in OUTPUT_RANGE (not clamped).
    """

    def __init__(self, num_blocks: int = 16, channels: int = 64, batch_norm: bool = True):
        super().__init__()
        self.num_blocks = num_blocks
        self.channels = channels
        self.batch_norm = batch_norm
        self.head = _conv(3, channels, 9)
        self.head_prelu = nn.PReLU(channels)
        self.blocks = nn.ModuleList(ResidualBlock(channels, batch_norm) for _ in range(num_blocks))
        self.trunk_conv = _conv(channels, channels, 3, bias=not batch_norm)
        self.trunk_bn = _bn_or_identity(channels, batch_norm)
        self.upsample = nn.ModuleList(UpsampleStage(channels) for _ in range(int(math.log2(SCALE))))
        self.tail = _conv(channels, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.head_prelu(self.head(x))
        y = skip
        for block in self.blocks:
            y = block(y)
        y = skip + self.trunk_bn(self.trunk_conv(y))
        for stage in self.upsample:
            y = stage(y)
        return self.tail(y)


class Discriminator(nn.Module):
    """Eight 3x3 convs (64..512, stride 2 on every second, BN on all but the first), dense 1024, dense 1.

    x: [N, 3, H, W] in OUTPUT_RANGE -> logits [N]. Any H, W >= 16: an adaptive pool brings the last feature
    map to the 6x6 that a 96x96 crop gives, so the dense layers match the paper's at 96x96.
    """

    def __init__(self, base_channels: int = 64):
        super().__init__()
        widths = [base_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8)]
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(widths):
            stride = 2 if i % 2 == 1 else 1
            layers.append(_conv(in_ch, out_ch, 3, stride=stride, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_ch * 36, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1)
        )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each LeakyReLU, for the feature-matching content loss."""
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x))).squeeze(1)


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.Module, target: nn.Conv2d) -> None:
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    if isinstance(bn, nn.BatchNorm2d):
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.detach().double()
    target.weight.data.copy_(weight)
    target.bias.data.copy_(bias)


def fold_batchnorm(generator: Generator) -> Generator:
    """The inference form: a ``Generator(batch_norm=False)`` equal to ``generator.eval()``.

    BN is an affine map per channel in eval mode, so it folds into the conv before it (computed in float64).
    """
    if not generator.batch_norm:
        return copy.deepcopy(generator).eval()
    folded = Generator(generator.num_blocks, generator.channels, batch_norm=False)
    source = generator
    _fold_conv_bn(source.head, nn.Identity(), folded.head)
    folded.head_prelu.load_state_dict(source.head_prelu.state_dict())
    for src, dst in zip(source.blocks, folded.blocks):
        _fold_conv_bn(src.conv1, src.bn1, dst.conv1)
        _fold_conv_bn(src.conv2, src.bn2, dst.conv2)
        dst.prelu.load_state_dict(src.prelu.state_dict())
    _fold_conv_bn(source.trunk_conv, source.trunk_bn, folded.trunk_conv)
    folded.upsample.load_state_dict(source.upsample.state_dict())
    folded.tail.load_state_dict(source.tail.state_dict())
    return folded.eval()
