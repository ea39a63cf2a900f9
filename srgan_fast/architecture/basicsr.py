"""BasicSR's MSRResNet and its state-dict layout (BasicSR's own tensor names)."""
from __future__ import annotations

from srgan_fast.architecture.layers import IMAGE, Activation, Conv, Network
from srgan_fast.architecture.limits import check_params
from srgan_fast.architecture.state_dict import Layout, NotThisLayout, StateDict, build_or_mismatch, no_activation


def msrresnet(num_blocks: int = 16, channels: int = 64, scale: int = 4) -> Network:
    """BasicSR's MSRResNet: SRResNet modified (Wang et al., ESRGAN), under BasicSR's tensor names.

    3×3 conv + LeakyReLU(0.1); residual blocks of conv-ReLU-conv plus the block input, no BN and no long
    skip; ×4: two stages of conv to 4C + PixelShuffle(2) + LeakyReLU (×2: one; ×3: one to 9C +
    PixelShuffle(3)); 3×3 HR conv + LeakyReLU; 3×3 conv to RGB; plus the input upsampled bilinearly.
    """
    check_params("msrresnet", scale, channels, num_blocks, (2, 3, 4))
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


def _read_msrresnet(state: StateDict, activation: str | None):
    no_activation(activation, "BasicSR MSRResNet")
    channels = state.shape("conv_first.weight")[0]
    if state.has("upconv2.weight"):
        scale = 4
    else:
        scale = {4 * channels: 2, 9 * channels: 3}.get(state.shape("upconv1.weight")[0])
        if scale is None:
            raise NotThisLayout(f"'upconv1.weight' has {state.shape('upconv1.weight')[0]} output channels, "
                                 f"expected {4 * channels} (x2) or {9 * channels} (x3)")
    return build_or_mismatch(msrresnet, num_blocks=state.count(r"body\.(\d+)\.conv1\.weight"), channels=channels,
                  scale=scale), {}


LAYOUTS = (
    Layout("BasicSR MSRResNet", ("conv_first.weight", "upconv1.weight", "conv_hr.weight", "conv_last.weight"),
            _read_msrresnet),
)
