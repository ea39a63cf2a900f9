"""Real-ESRGAN's SRVGGNetCompact and its state-dict layout (Real-ESRGAN's own tensor names)."""
from __future__ import annotations

from srgan_fast.architecture.layers import IMAGE, Activation, Conv, Network
from srgan_fast.architecture.limits import check_params
from srgan_fast.architecture.state_dict import Layout, NotThisLayout, Refusal, StateDict, build_or_mismatch

SRVGG_ACTIVATIONS = ("prelu", "leakyrelu", "relu")


def srvgg_compact(num_convs: int = 16, channels: int = 64, scale: int = 4, activation: str = "prelu") -> Network:
    """Real-ESRGAN's SRVGGNetCompact (the realesr-*v3 video models), under Real-ESRGAN's tensor names.

    conv + activation, ``num_convs`` × [conv + activation], a conv to 3·scale² channels, PixelShuffle(scale),
    plus the input upsampled by nearest neighbour. All convs 3×3 at the input's resolution.
    """
    check_params("srvgg_compact", scale, channels, num_convs, (1, 2, 3, 4))
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


def _read_srvgg(state: StateDict, activation: str | None):
    last_index = state.count(r"body\.(\d+)\.weight") - 1
    if last_index < 2 or last_index % 2:
        raise NotThisLayout(f"its last body index is {last_index}, expected an even index of at least 2")
    has_slopes = state.has("body.1.weight")
    if has_slopes and activation not in (None, "prelu"):
        raise Refusal(f"it has PReLU slopes ('body.1.weight'), got activation={activation!r}")
    if not has_slopes and activation in (None, "prelu"):
        raise Refusal("it has no PReLU slopes, so its activation cannot be told from the state dict: pass "
                       "activation='relu' or 'leakyrelu' (--activation), as the network was trained")
    out_channels = state.shape(f"body.{last_index}.weight")[0]
    scale = round((out_channels / 3) ** 0.5)
    if 3 * scale * scale != out_channels:
        raise NotThisLayout(f"'body.{last_index}.weight' has {out_channels} output channels, expected 3·scale²")
    return build_or_mismatch(srvgg_compact, num_convs=(last_index - 2) // 2, channels=state.shape("body.0.weight")[0],
                  scale=scale, activation="prelu" if has_slopes else activation), {}


LAYOUTS = (
    Layout("Real-ESRGAN SRVGGNetCompact", ("body.0.weight", "body.2.weight"), _read_srvgg),
)
