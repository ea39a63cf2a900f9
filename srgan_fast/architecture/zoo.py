"""The architectures: each a function of its parameters that returns a ``Network`` description.

Layer names are the tensor names of each project's own state dicts (ours for ``srresnet``, BasicSR's for
``msrresnet``, Real-ESRGAN's for ``srvgg_compact``), so their checkpoints load without renaming.
"""
from __future__ import annotations

import math

from srgan_fast.architecture.layers import IMAGE, Activation, Conv, Network

# Bounds on what a weights file may declare, checked before anything is allocated for it: far above every
# published configuration, far below what would exhaust memory while building the description.
MAX_LAYERS = 512
MAX_CHANNELS = 1024


def _check_params(architecture: str, scale: int, channels: int, layers: int, scales: tuple[int, ...]) -> None:
    if scale not in scales:
        raise ValueError(f"{architecture}: scale must be one of {', '.join(map(str, scales))}, got {scale}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{architecture}: channels must be in 1..{MAX_CHANNELS}, got {channels}")
    if not 0 <= layers <= MAX_LAYERS:
        raise ValueError(f"{architecture}: the block/conv count must be in 0..{MAX_LAYERS}, got {layers}")


def srresnet(num_blocks: int = 16, channels: int = 64, scale: int = 4) -> Network:
    """SRResNet, the SRGAN paper's generator (Ledig et al., 2017), BatchNorm folded for inference.

    9×9 conv + PReLU; residual blocks of conv-BN-PReLU-conv-BN plus the block input; a conv-BN plus the
    head's output; log2(scale) stages of conv to 4C + PixelShuffle(2) + PReLU; a 9×9 conv to RGB.
    """
    _check_params("srresnet", scale, channels, num_blocks, (2, 4, 8))
    c = channels
    layers = [Conv("head", 3, c, 9, 1, IMAGE, activation=Activation("head_prelu.weight"))]
    previous = "head"
    for i in range(num_blocks):
        b = f"blocks.{i}"
        layers.append(Conv(f"{b}.conv1", c, c, 3, 1, previous, activation=Activation(f"{b}.prelu.weight"),
                           batch_norm=f"{b}.bn1"))
        layers.append(Conv(f"{b}.conv2", c, c, 3, 1, f"{b}.conv1", residual=previous, batch_norm=f"{b}.bn2"))
        previous = f"{b}.conv2"
    layers.append(Conv("trunk_conv", c, c, 3, 1, previous, residual="head", batch_norm="trunk_bn"))
    previous, level = "trunk_conv", 1
    for j in range(int(math.log2(scale))):
        u = f"upsample.{j}"
        layers.append(Conv(f"{u}.conv", c, 4 * c, 3, level, previous, shuffle=2,
                           activation=Activation(f"{u}.prelu.weight")))
        previous, level = f"{u}.conv", 2 * level
    layers.append(Conv("tail", c, 3, 9, scale, previous))
    return Network("srresnet", {"num_blocks": num_blocks, "channels": channels, "scale": scale}, scale,
                   tuple(layers))


def msrresnet(num_blocks: int = 16, channels: int = 64, scale: int = 4) -> Network:
    """BasicSR's MSRResNet: SRResNet modified (Wang et al., ESRGAN), under BasicSR's tensor names.

    3×3 conv + LeakyReLU(0.1); residual blocks of conv-ReLU-conv plus the block input, no BN and no long
    skip; ×4: two stages of conv to 4C + PixelShuffle(2) + LeakyReLU (×2: one; ×3: one to 9C +
    PixelShuffle(3)); 3×3 HR conv + LeakyReLU; 3×3 conv to RGB; plus the input upsampled bilinearly.
    """
    _check_params("msrresnet", scale, channels, num_blocks, (2, 3, 4))
    c, leaky = channels, Activation(slope=0.1)
    layers = [Conv("conv_first", 3, c, 3, 1, IMAGE, activation=leaky)]
    previous = "conv_first"
    for i in range(num_blocks):
        b = f"body.{i}"
        layers.append(Conv(f"{b}.conv1", c, c, 3, 1, previous, activation=Activation(slope=0.0)))
        layers.append(Conv(f"{b}.conv2", c, c, 3, 1, f"{b}.conv1", residual=previous))
        previous = f"{b}.conv2"
    stages = {2: [2], 3: [3], 4: [2, 2]}[scale]
    level = 1
    for j, factor in enumerate(stages, start=1):
        layers.append(Conv(f"upconv{j}", c, factor * factor * c, 3, level, previous, shuffle=factor,
                           activation=leaky))
        previous, level = f"upconv{j}", level * factor
    layers.append(Conv("conv_hr", c, c, 3, scale, previous, activation=leaky))
    layers.append(Conv("conv_last", c, 3, 3, scale, "conv_hr"))
    return Network("msrresnet", {"num_blocks": num_blocks, "channels": channels, "scale": scale}, scale,
                   tuple(layers), image_skip="bilinear")


SRVGG_ACTIVATIONS = ("prelu", "leakyrelu", "relu")


def srvgg_compact(num_convs: int = 16, channels: int = 64, scale: int = 4, activation: str = "prelu") -> Network:
    """Real-ESRGAN's SRVGGNetCompact (the realesr-*v3 video models), under Real-ESRGAN's tensor names.

    conv + activation, ``num_convs`` × [conv + activation], a conv to 3·scale² channels, PixelShuffle(scale),
    plus the input upsampled by nearest neighbour. All convs 3×3 at the input's resolution.
    """
    _check_params("srvgg_compact", scale, channels, num_convs, (1, 2, 3, 4))
    if activation not in SRVGG_ACTIVATIONS:
        raise ValueError(f"srvgg_compact: activation must be one of {', '.join(SRVGG_ACTIVATIONS)}, "
                         f"got {activation!r}")

    def act(index: int) -> Activation:
        if activation == "prelu":
            return Activation(f"body.{index}.weight")
        return Activation(slope=0.1 if activation == "leakyrelu" else 0.0)

    c = channels
    layers = [Conv("body.0", 3, c, 3, 1, IMAGE, activation=act(1))]
    for i in range(num_convs):
        layers.append(Conv(f"body.{2 * i + 2}", c, c, 3, 1, layers[-1].name, activation=act(2 * i + 3)))
    layers.append(Conv(f"body.{2 * num_convs + 2}", c, 3 * scale * scale, 3, 1, layers[-1].name, shuffle=scale))
    params = {"num_convs": num_convs, "channels": channels, "scale": scale, "activation": activation}
    return Network("srvgg_compact", params, scale, tuple(layers), image_skip="nearest")


ARCHITECTURES = {"srresnet": srresnet, "msrresnet": msrresnet, "srvgg_compact": srvgg_compact}


def build(architecture: str, params: dict) -> Network:
    """The description of a named architecture with these parameters (as recorded in weights files)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[architecture](**params)
    except TypeError as exc:
        raise ValueError(f"{architecture}: bad parameters {params} ({exc})") from None
