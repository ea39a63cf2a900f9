"""ESRGAN's RRDBNet (Wang et al., 2018), the generator of ESRGAN and Real-ESRGAN, and the two state-dict layouts
its public weights come in: BasicSR's / Real-ESRGAN's (RealESRGAN_x4plus, _x4plus_anime_6B, _x2plus) and the
original ESRGAN repository's (RRDB_ESRGAN_x4)."""
from __future__ import annotations

from srgan_fast.architecture.layers import IMAGE, Activation, Conv, Network
from srgan_fast.architecture.limits import MAX_CHANNELS, check_params
from srgan_fast.architecture.state_dict import Layout, NotThisLayout, StateDict, build_or_mismatch, no_activation

# The paper's residual scaling: each dense block and each RRDB adds 0.2 × its result to its input.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2
DENSE_CONVS = 5  # per residual dense block: four growing convs, then one back to the trunk's width
# Scale -> the pixel unshuffle of the input that brings it to ×4: Real-ESRGAN ×2 runs the trunk at half size.
UNSHUFFLE = {4: 1, 2: 2}


def rrdbnet(num_blocks: int = 23, channels: int = 64, growth: int = 32, scale: int = 4) -> Network:
    """RRDBNet under BasicSR's tensor names: conv_first; ``num_blocks`` RRDBs of three residual dense blocks
    (conv k reads the concatenation of the block input and convs 1..k-1; LeakyReLU(0.2) after convs 1-4;
    0.2 × conv5 + block input), each RRDB 0.2 × its third block + its input; conv_body plus conv_first's
    output; two stages of nearest ×2 then conv + LeakyReLU; conv_hr + LeakyReLU; conv_last to RGB.
    ×2 (Real-ESRGAN x2plus): the same ×4 network on the input pixel-unshuffled by 2 (12 channels).
    """
    check_params("rrdbnet", scale, channels, num_blocks, tuple(UNSHUFFLE))
    if not 1 <= growth <= MAX_CHANNELS:
        raise ValueError(f"rrdbnet: growth must be in 1..{MAX_CHANNELS}, got {growth}")
    c, g, unshuffle, leaky = channels, growth, UNSHUFFLE[scale], Activation(slope=LEAKY_SLOPE)
    trunk = 1 if unshuffle == 1 else 1 / unshuffle  # the trunk's level
    layers = [Conv("conv_first", 3 * unshuffle**2, c, 3, trunk, IMAGE, unshuffle=unshuffle)]
    block_input = "conv_first"
    for i in range(num_blocks):
        rdb_input = block_input
        for j in range(1, 4):
            prefix, dense = f"body.{i}.rdb{j}", (rdb_input,)
            for k in range(1, DENSE_CONVS):
                layers.append(Conv(f"{prefix}.conv{k}", c + (k - 1) * g, g, 3, trunk,
                                   dense if k > 1 else rdb_input, activation=leaky))
                dense += (f"{prefix}.conv{k}",)
            around_rrdb = {"outer_residual": block_input, "outer_residual_scale": RESIDUAL_SCALE} if j == 3 else {}
            layers.append(Conv(f"{prefix}.conv{DENSE_CONVS}", c + (DENSE_CONVS - 1) * g, c, 3, trunk, dense,
                               residual=rdb_input, residual_scale=RESIDUAL_SCALE, **around_rrdb))
            rdb_input = f"{prefix}.conv{DENSE_CONVS}"
        block_input = rdb_input
    layers.append(Conv("conv_body", c, c, 3, trunk, block_input, residual="conv_first"))
    layers.append(Conv("conv_up1", c, c, 3, 2 // unshuffle, "conv_body", upsample=2, activation=leaky))
    layers.append(Conv("conv_up2", c, c, 3, 4 // unshuffle, "conv_up1", upsample=2, activation=leaky))
    layers.append(Conv("conv_hr", c, c, 3, scale, "conv_up2", activation=leaky))
    layers.append(Conv("conv_last", c, 3, 3, scale, "conv_hr"))
    params = {"num_blocks": num_blocks, "channels": channels, "growth": growth, "scale": scale}
    return Network("rrdbnet", params, scale, tuple(layers))


def _read_basicsr(state: StateDict, activation: str | None):
    no_activation(activation, "BasicSR/Real-ESRGAN RRDBNet")
    channels, in_channels = state.shape("conv_first.weight")[:2]
    scale = {3 * u * u: s for s, u in UNSHUFFLE.items()}.get(in_channels)
    if scale is None:
        raise NotThisLayout(f"'conv_first.weight' reads {in_channels} channels, expected 3 (x4) or 12 (x2, the "
                            "input pixel-unshuffled by 2)")
    return build_or_mismatch(rrdbnet, num_blocks=state.count(r"body\.(\d+)\.rdb1\.conv1\.weight"),
                             channels=channels, growth=state.shape("body.0.rdb1.conv1.weight")[0], scale=scale), {}


def _read_esrgan(state: StateDict, activation: str | None):
    """The original repository's nn.Sequential: model.0 conv_first, model.1.sub.i the RRDBs and at index
    num_blocks conv_body, model.2/5 the nearest upsamplings, model.3/6 their convs, model.8 the HR conv,
    model.10 the last; each dense conv sits in a Sequential of its own (``.0``)."""
    no_activation(activation, "ESRGAN RRDBNet")
    channels, in_channels = state.shape("model.0.weight")[:2]
    if in_channels != 3:
        raise NotThisLayout(f"'model.0.weight' reads {in_channels} channels, expected 3")
    num_blocks = state.count(r"model\.1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight")
    network = build_or_mismatch(rrdbnet, num_blocks=num_blocks, channels=channels,
                                growth=state.shape("model.1.sub.0.RDB1.conv1.0.weight")[0], scale=4)
    renames = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_blocks}", "conv_up1": "model.3",
               "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    for i in range(num_blocks):
        renames.update({f"body.{i}.rdb{j}.conv{k}": f"model.1.sub.{i}.RDB{j}.conv{k}.0"
                        for j in range(1, 4) for k in range(1, DENSE_CONVS + 1)})
    return network, renames


LAYOUTS = (
    Layout("BasicSR/Real-ESRGAN RRDBNet", ("conv_first.weight", "conv_body.weight", "conv_up1.weight",
                                            "conv_up2.weight", "conv_hr.weight", "conv_last.weight"), _read_basicsr),
    Layout("ESRGAN RRDBNet", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.3.weight",
                               "model.6.weight", "model.8.weight", "model.10.weight"), _read_esrgan),
)
