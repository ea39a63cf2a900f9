"""Phase-2 losses: the adversarial pair and the two content losses.

Generator images are [N, 3, H, W] in [0, 1]; discriminator outputs are logits [N].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srgan_fast.reference.model import Discriminator
from training.vgg import Vgg19Features


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(HR) - log(1 - D(G(LR))), as BCE with logits (numerically stable for any logit)."""
    return (F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float))
            + F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float)))


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating -log D(G(LR)) of Goodfellow et al., which the SRGAN paper uses."""
    return F.binary_cross_entropy_with_logits(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float))


def discriminator_logits(discriminator: Discriminator, feature_maps: list[torch.Tensor]) -> torch.Tensor:
    """Logits from the last of ``Discriminator.feature_maps``: one pass gives both the features and the verdict."""
    return discriminator.classifier(discriminator.pool(feature_maps[-1])).squeeze(1)


class VggContentLoss:
    """The paper's l_VGG/5,4: MSE between φ5,4 feature maps (after the ReLU, divided by 12.75) of SR and HR."""

    name = "vgg54"

    def __init__(self, vgg: Vgg19Features):
        self.vgg = vgg

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor, discriminator: Discriminator,
                 fake_maps: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            target = self.vgg(hr).float()
        loss = F.mse_loss(self.vgg(sr).float(), target)
        return loss, {"content_vgg": loss.item()}


class PixelFeatureMatchingLoss:
    """The content loss that needs no download: pixel MSE plus ``fm_weight`` × the mean over the discriminator's
    eight LeakyReLU outputs of the MSE between SR and HR activations (feature matching, Salimans et al. 2016).

    The discriminator's features stand in for VGG's: learned on this very task, they react to textures that
    the pixel loss averages away.
    """

    name = "pixel_mse+feature_matching"

    def __init__(self, fm_weight: float):
        self.fm_weight = fm_weight

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor, discriminator: Discriminator,
                 fake_maps: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        pixel = F.mse_loss(sr.float(), hr.float())
        with torch.no_grad():
            real_maps = discriminator.feature_maps(hr)
        matching = torch.stack([F.mse_loss(f.float(), r.float()) for f, r in zip(fake_maps, real_maps)]).mean()
        return pixel + self.fm_weight * matching, {"content_pixel": pixel.item(), "content_fm": matching.item()}
