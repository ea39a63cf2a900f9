"""The networks of SRGAN (Ledig et al., 2017) in PyTorch: the generator by its parameters, and the discriminator.

The generator's layers come from its description (``srgan_fast.architecture.srresnet``) through
``srgan_fast.reference.module``; value ranges, scale and receptive radius live in ``srgan_fast.architecture``.
"""
from __future__ import annotations

import torch
from torch import nn

from srgan_fast.architecture import srresnet
from srgan_fast.reference.module import NetworkModule, fold_batchnorm

__all__ = ["Discriminator", "Generator", "fold_batchnorm"]


class Generator(NetworkModule):
    """SRResNet, the SRGAN generator, as training code names it. ``batch_norm=False`` is the inference form.

    x: [N, 3, H, W] in INPUT_RANGE -> [N, 3, 4H, 4W] in OUTPUT_RANGE (not clamped).
    """

    def __init__(self, num_blocks: int = 16, channels: int = 64, batch_norm: bool = True):
        super().__init__(srresnet(num_blocks, channels), batch_norm)

    @property
    def num_blocks(self) -> int:
        return self.network.params["num_blocks"]

    @property
    def channels(self) -> int:
        return self.network.params["channels"]


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
            layers.append(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=(i == 0)))
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
