"""SRResNet, the SRGAN paper's generator, and the state-dict layouts of it that srgan_fast reads: its own,
Lornatang/SRGAN-PyTorch's and twtygqyy/pytorch-SRResNet's (leftthomas/SRGAN's is recognised and refused)."""
from __future__ import annotations

import math
from functools import partial

from srgan_fast.architecture.layers import IMAGE, Activation, Conv, Network
from srgan_fast.architecture.limits import check_params
from srgan_fast.architecture.state_dict import (INSTANCE_NORM, Layout, Refusal, StateDict, build_or_mismatch,
                                                 no_activation, upsample_scale)


def srresnet(num_blocks: int = 16, channels: int = 64, scale: int = 4) -> Network:
    """SRResNet, the SRGAN paper's generator (Ledig et al., 2017), BatchNorm folded for inference.

    9×9 conv + PReLU; residual blocks of conv-BN-PReLU-conv-BN plus the block input; a conv-BN plus the
    head's output; log2(scale) stages of conv to 4C + PixelShuffle(2) + PReLU; a 9×9 conv to RGB.
    """
    check_params("srresnet", scale, channels, num_blocks, (2, 4, 8))
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


def _read_ours(state: StateDict, activation: str | None):
    no_activation(activation, "srgan_fast srresnet")
    network = build_or_mismatch(srresnet, num_blocks=state.count(r"blocks\.(\d+)\.conv1\.weight"),
                     channels=state.shape("head.weight")[0],
                     scale=upsample_scale(state.count(r"upsample\.(\d+)\.conv\.weight"), "upsample stages"))
    return network, {}


def _read_lornatang(state: StateDict, activation: str | None, first: str, middle: str, last: str):
    no_activation(activation, "Lornatang/SRGAN-PyTorch SRResNet")
    stages = state.count(r"upsampling\.(\d+)\.upsample_block\.0\.weight")
    network = build_or_mismatch(srresnet, num_blocks=state.count(r"trunk\.(\d+)\.rcb\.0\.weight"),
                     channels=state.shape(f"{first}.0.weight")[0], scale=upsample_scale(stages, "upsampling blocks"))
    renames = {"head": f"{first}.0", "head_prelu": f"{first}.1", "trunk_conv": f"{middle}.0",
               "trunk_bn": f"{middle}.1", "tail": last}
    for i in range(network.params["num_blocks"]):
        renames.update({f"blocks.{i}.{ours}": f"trunk.{i}.rcb.{index}"
                        for ours, index in (("conv1", 0), ("bn1", 1), ("prelu", 2), ("conv2", 3), ("bn2", 4))})
    for j in range(stages):
        renames.update({f"upsample.{j}.conv": f"upsampling.{j}.upsample_block.0",
                        f"upsample.{j}.prelu": f"upsampling.{j}.upsample_block.2"})
    return network, renames


TWTYGQYY_LEAKY_SLOPE = 0.2


def _read_twtygqyy(state: StateDict, activation: str | None):
    no_activation(activation, "twtygqyy/pytorch-SRResNet")
    if state.has("residual.0.in1.weight"):
        raise Refusal("it uses InstanceNorm, which " + INSTANCE_NORM)
    network = build_or_mismatch(srresnet, num_blocks=state.count(r"residual\.(\d+)\.conv1\.weight"),
                     channels=state.shape("conv_input.weight")[0], scale=4)
    leaky = TWTYGQYY_LEAKY_SLOPE
    renames: dict[str, str | float] = {"head": "conv_input", "head_prelu": leaky, "trunk_conv": "conv_mid",
                                       "trunk_bn": "bn_mid", "upsample.0.conv": "upscale4x.0",
                                       "upsample.0.prelu": leaky, "upsample.1.conv": "upscale4x.3",
                                       "upsample.1.prelu": leaky, "tail": "conv_output"}
    for i in range(network.params["num_blocks"]):
        renames.update({f"blocks.{i}.{name}": f"residual.{i}.{name}" for name in ("conv1", "bn1", "conv2", "bn2")})
        renames[f"blocks.{i}.prelu"] = leaky
    return network, renames


def _refuse_leftthomas(state: StateDict, activation: str | None):
    raise Refusal("its output is (tanh(x) + 1) / 2, and srgan_fast's networks have no tanh output")


LAYOUTS = (
    Layout("srgan_fast srresnet", ("head.weight", "head_prelu.weight", "trunk_conv.weight",
                                    "upsample.0.conv.weight", "tail.weight"), _read_ours),
    Layout("Lornatang/SRGAN-PyTorch SRResNet", ("conv1.0.weight", "trunk.0.rcb.0.weight", "conv2.0.weight",
                                                 "upsampling.0.upsample_block.0.weight", "conv3.weight"),
            partial(_read_lornatang, first="conv1", middle="conv2", last="conv3")),
    Layout("Lornatang/SRGAN-PyTorch Generator", ("conv_block1.0.weight", "trunk.0.rcb.0.weight",
                                                  "conv_block2.0.weight", "upsampling.0.upsample_block.0.weight",
                                                  "conv_block3.weight"),
            partial(_read_lornatang, first="conv_block1", middle="conv_block2", last="conv_block3")),
    Layout("twtygqyy/pytorch-SRResNet", ("conv_input.weight", "conv_mid.weight", "upscale4x.0.weight",
                                          "conv_output.weight"), _read_twtygqyy),
)
# Recognised so that they are refused with the reason rather than reported as unknown.
REFUSED_LAYOUTS = (
    Layout("leftthomas/SRGAN Generator", ("block1.0.weight", "block1.1.weight", "block8.0.conv.weight"),
            _refuse_leftthomas),
)
