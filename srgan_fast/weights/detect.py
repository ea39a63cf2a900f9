"""Which network another project's state dict holds, read from its keys and shapes alone (no torch).

``detect(state_dict)`` unwraps the usual checkpoint containers, finds the layout whose keys it has, derives
that architecture's parameters from the keys and shapes, and returns the description with its tensors under
the description's names, BatchNorm folded. Layouts it reads:

  srgan_fast srresnet        head, head_prelu, blocks.i.{conv1,prelu,conv2}[, blocks.i.bn1/bn2, trunk_bn],
                             trunk_conv, upsample.j.{conv,prelu}, tail
  Lornatang/SRGAN-PyTorch    conv1.{0,1} | conv_block1.{0,1}, trunk.i.rcb.{0..4} (conv, BN, PReLU, conv, BN),
                             conv2.{0,1} | conv_block2.{0,1}, upsampling.j.upsample_block.{0,2}, conv3 | conv_block3
  twtygqyy/pytorch-SRResNet  conv_input, residual.i.{conv1,bn1,conv2,bn2}, conv_mid, bn_mid, upscale4x.{0,3},
                             conv_output (its BatchNorm form; LeakyReLU 0.2 as fixed PReLU slopes)
  BasicSR MSRResNet          conv_first, body.i.{conv1,conv2}, upconv1[, upconv2], conv_hr, conv_last
  Real-ESRGAN SRVGGNetCompact  body.{0,2,..,2N+2} convs, body.{1,3,..} PReLU slopes

Layouts it recognises and refuses, because no description can represent them: leftthomas/SRGAN (a tanh
output) and twtygqyy's InstanceNorm SRResNet (normalisation by each image's own statistics).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np

from srgan_fast.architecture.layers import Network
from srgan_fast.architecture.zoo import SRVGG_ACTIVATIONS, msrresnet, srresnet, srvgg_compact
from srgan_fast.weights.format import WeightsError

# Containers other projects put the state dict in, most preferred first (BasicSR keeps the EMA beside the raw).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "netG")
# Key prefixes added by nn.DataParallel and torch.compile.
KEY_PREFIXES = ("module.", "_orig_mod.")
# srgan_fast's training checkpoints hold every module's tensors under module/<name>/ (training.checkpoint).
OUR_CHECKPOINT_PREFIX = "module/generator/"
BATCH_NORM_EPS = 1e-5  # torch's default; state dicts do not record it
MAX_UPSAMPLE_STAGES = 3  # srresnet's ×8
INSTANCE_NORM = "normalises by each image's own statistics, which no conv can fold in"


class _NotThisLayout(Exception):
    """The keys or shapes depart from a layout: the reason names the first key that does."""


class _Refusal(Exception):
    """A layout recognised that no description can represent: detection stops with this reason."""


@dataclass(frozen=True)
class Detected:
    network: Network
    tensors: dict[str, np.ndarray]  # float32, the description's names, BatchNorm folded
    source_layout: str              # e.g. "BasicSR MSRResNet (params_ema)"


class _StateDict:
    """The unwrapped state dict; remembers what a layout read, since keys left unread mean another network."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.unread = set(arrays)

    def has(self, key: str) -> bool:
        return key in self.arrays

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.arrays:
            raise _NotThisLayout(f"it has no {key!r}")
        return tuple(self.arrays[key].shape)

    def take(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if self.shape(key) != shape:
            raise _NotThisLayout(f"{key!r} has shape {self.shape(key)}, expected {shape}")
        array = self.arrays[key]
        if array.dtype.kind != "f":
            raise _NotThisLayout(f"{key!r} holds {array.dtype}, expected floating point")
        self.unread.discard(key)
        return array.astype(np.float64)

    def count(self, pattern: str) -> int:
        """1 + the highest index ``(\\d+)`` takes in keys matching ``pattern`` (0 if none): gaps surface later
        as missing keys. Indices are at most 4 digits, so what is built from them stays bounded."""
        regex = re.compile(pattern.replace(r"(\d+)", r"(\d{1,4})"))
        indices = [int(m.group(1)) for key in self.arrays if (m := regex.fullmatch(key))]
        return max(indices) + 1 if indices else 0

    def check_all_read(self) -> None:
        # BatchNorm's step counter is training state, meaningless for inference.
        unread = sorted(k for k in self.unread if not k.endswith(".num_batches_tracked"))
        if unread:
            raise _NotThisLayout(f"it has tensors this layout does not have: {unread[:3]}")


def _slopes(state: _StateDict, source: str | float, channels: int) -> np.ndarray:
    """PReLU slopes per channel: a learned tensor, torch's single-parameter PReLU (one slope for every
    channel) or a fixed LeakyReLU slope."""
    if isinstance(source, float):
        return np.full(channels, source)
    key = f"{source}.weight"
    shape = (1,) if state.shape(key) == (1,) else (channels,)
    return np.broadcast_to(state.take(key, shape), (channels,))


def _read_tensors(state: _StateDict, network: Network, renames: Mapping[str, str | float]) -> tuple[dict, bool]:
    """The description's tensors from ``state``, whose modules are named ``renames.get(ours, ours)``; a conv
    without a bias has bias 0; a BatchNorm after a conv is folded in float64. Returns (tensors, folded any)."""
    tensors, folded = {}, False
    for conv in network.layers:
        source = renames.get(conv.name, conv.name)
        weight = state.take(f"{source}.weight", (conv.out_channels, conv.in_channels, conv.kernel, conv.kernel))
        bias = (state.take(f"{source}.bias", (conv.out_channels,)) if state.has(f"{source}.bias")
                else np.zeros(conv.out_channels))
        norm = renames.get(conv.batch_norm, conv.batch_norm) if conv.batch_norm else None
        if norm is not None and state.has(f"{norm}.running_var"):
            channels = (conv.out_channels,)
            gamma, beta = state.take(f"{norm}.weight", channels), state.take(f"{norm}.bias", channels)
            mean, var = state.take(f"{norm}.running_mean", channels), state.take(f"{norm}.running_var", channels)
            scale = gamma / np.sqrt(var + BATCH_NORM_EPS)
            weight, bias = weight * scale[:, None, None, None], (bias - mean) * scale + beta
            folded = True
        elif norm is not None and state.has(f"{norm}.weight"):
            raise _Refusal(f"{norm!r} has an affine scale but no running statistics: an instance norm, which "
                           + INSTANCE_NORM)
        tensors[f"{conv.name}.weight"], tensors[f"{conv.name}.bias"] = weight, bias
        slopes = conv.activation.slopes_tensor if conv.activation else None
        if slopes is not None:
            module = slopes.removesuffix(".weight")
            tensors[slopes] = _slopes(state, renames.get(module, module), conv.result_channels)
    state.check_all_read()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, folded


def _build(builder: Callable[..., Network], **params) -> Network:
    try:
        return builder(**params)
    except ValueError as exc:
        raise _NotThisLayout(str(exc)) from None


def _upsample_scale(stages: int, what: str) -> int:
    if not 1 <= stages <= MAX_UPSAMPLE_STAGES:
        raise _NotThisLayout(f"it has {stages} {what}, expected 1..{MAX_UPSAMPLE_STAGES}")
    return 2**stages


def _no_activation(activation: str | None, layout: str) -> None:
    if activation is not None:
        raise _Refusal(f"activation={activation!r} applies to an SRVGGNetCompact without PReLU slopes only; "
                       f"a {layout} fixes its own activations")


def _read_ours(state: _StateDict, activation: str | None):
    _no_activation(activation, "srgan_fast srresnet")
    network = _build(srresnet, num_blocks=state.count(r"blocks\.(\d+)\.conv1\.weight"),
                     channels=state.shape("head.weight")[0],
                     scale=_upsample_scale(state.count(r"upsample\.(\d+)\.conv\.weight"), "upsample stages"))
    return network, {}


def _read_lornatang(state: _StateDict, activation: str | None, first: str, middle: str, last: str):
    _no_activation(activation, "Lornatang/SRGAN-PyTorch SRResNet")
    stages = state.count(r"upsampling\.(\d+)\.upsample_block\.0\.weight")
    network = _build(srresnet, num_blocks=state.count(r"trunk\.(\d+)\.rcb\.0\.weight"),
                     channels=state.shape(f"{first}.0.weight")[0], scale=_upsample_scale(stages, "upsampling blocks"))
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


def _read_twtygqyy(state: _StateDict, activation: str | None):
    _no_activation(activation, "twtygqyy/pytorch-SRResNet")
    if state.has("residual.0.in1.weight"):
        raise _Refusal("it uses InstanceNorm, which " + INSTANCE_NORM)
    network = _build(srresnet, num_blocks=state.count(r"residual\.(\d+)\.conv1\.weight"),
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


def _read_msrresnet(state: _StateDict, activation: str | None):
    _no_activation(activation, "BasicSR MSRResNet")
    channels = state.shape("conv_first.weight")[0]
    if state.has("upconv2.weight"):
        scale = 4
    else:
        scale = {4 * channels: 2, 9 * channels: 3}.get(state.shape("upconv1.weight")[0])
        if scale is None:
            raise _NotThisLayout(f"'upconv1.weight' has {state.shape('upconv1.weight')[0]} output channels, "
                                 f"expected {4 * channels} (x2) or {9 * channels} (x3)")
    return _build(msrresnet, num_blocks=state.count(r"body\.(\d+)\.conv1\.weight"), channels=channels,
                  scale=scale), {}


def _read_srvgg(state: _StateDict, activation: str | None):
    last_index = state.count(r"body\.(\d+)\.weight") - 1
    if last_index < 2 or last_index % 2:
        raise _NotThisLayout(f"its last body index is {last_index}, expected an even index of at least 2")
    has_slopes = state.has("body.1.weight")
    if has_slopes and activation not in (None, "prelu"):
        raise _Refusal(f"it has PReLU slopes ('body.1.weight'), got activation={activation!r}")
    if not has_slopes and activation in (None, "prelu"):
        raise _Refusal("it has no PReLU slopes, so its activation cannot be told from the state dict: pass "
                       "activation='relu' or 'leakyrelu' (--activation), as the network was trained")
    out_channels = state.shape(f"body.{last_index}.weight")[0]
    scale = round((out_channels / 3) ** 0.5)
    if 3 * scale * scale != out_channels:
        raise _NotThisLayout(f"'body.{last_index}.weight' has {out_channels} output channels, expected 3·scale²")
    return _build(srvgg_compact, num_convs=(last_index - 2) // 2, channels=state.shape("body.0.weight")[0],
                  scale=scale, activation="prelu" if has_slopes else activation), {}


def _refuse_leftthomas(state: _StateDict, activation: str | None):
    raise _Refusal("its output is (tanh(x) + 1) / 2, and srgan_fast's networks have no tanh output")


@dataclass(frozen=True)
class _Layout:
    name: str
    signature: tuple[str, ...]  # keys every instance of the layout has
    read: Callable[[_StateDict, str | None], tuple[Network, Mapping[str, str | float]]]


LAYOUTS = (
    _Layout("srgan_fast srresnet", ("head.weight", "head_prelu.weight", "trunk_conv.weight",
                                    "upsample.0.conv.weight", "tail.weight"), _read_ours),
    _Layout("Lornatang/SRGAN-PyTorch SRResNet", ("conv1.0.weight", "trunk.0.rcb.0.weight", "conv2.0.weight",
                                                 "upsampling.0.upsample_block.0.weight", "conv3.weight"),
            partial(_read_lornatang, first="conv1", middle="conv2", last="conv3")),
    _Layout("Lornatang/SRGAN-PyTorch Generator", ("conv_block1.0.weight", "trunk.0.rcb.0.weight",
                                                  "conv_block2.0.weight", "upsampling.0.upsample_block.0.weight",
                                                  "conv_block3.weight"),
            partial(_read_lornatang, first="conv_block1", middle="conv_block2", last="conv_block3")),
    _Layout("twtygqyy/pytorch-SRResNet", ("conv_input.weight", "conv_mid.weight", "upscale4x.0.weight",
                                          "conv_output.weight"), _read_twtygqyy),
    _Layout("BasicSR MSRResNet", ("conv_first.weight", "upconv1.weight", "conv_hr.weight", "conv_last.weight"),
            _read_msrresnet),
    _Layout("Real-ESRGAN SRVGGNetCompact", ("body.0.weight", "body.2.weight"), _read_srvgg),
)
# Recognised so that they are refused with the reason rather than reported as unknown.
REFUSED_LAYOUTS = (
    _Layout("leftthomas/SRGAN Generator", ("block1.0.weight", "block1.1.weight", "block8.0.conv.weight"),
            _refuse_leftthomas),
)


def unwrap(checkpoint: Mapping) -> tuple[dict[str, np.ndarray], list[str]]:
    """The state dict inside a checkpoint and the containers it sat in (e.g. ["params_ema", "module."])."""
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"expected a state dict (a mapping of tensor names to tensors), "
                           f"got {type(checkpoint).__name__}")
    node, path = checkpoint, []
    if any(isinstance(k, str) and k.startswith(OUR_CHECKPOINT_PREFIX) for k in node):
        node = {k.removeprefix(OUR_CHECKPOINT_PREFIX): v for k, v in node.items()
                if isinstance(k, str) and k.startswith(OUR_CHECKPOINT_PREFIX)}
        path.append("srgan_fast training checkpoint")
    # Bounded: each step goes one container deeper, and no real checkpoint nests more than a few.
    for _ in range(len(WRAPPER_KEYS)):
        key = next((k for k in WRAPPER_KEYS if isinstance(node.get(k), Mapping)), None)
        if key is None:
            break
        node, path = node[key], [*path, key]
    arrays = {k: v for k, v in node.items() if isinstance(k, str) and isinstance(v, np.ndarray)}
    for prefix in KEY_PREFIXES:
        if arrays and all(k.startswith(prefix) for k in arrays):
            arrays = {k.removeprefix(prefix): v for k, v in arrays.items()}
            path.append(prefix)
    return arrays, path


def detect(state_dict: Mapping, activation: str | None = None) -> Detected:
    """The network a state dict (or a checkpoint holding one) describes, with its folded float32 tensors.

    activation: for an SRVGGNetCompact without PReLU slopes only, whose activation the keys cannot tell:
    "relu" or "leakyrelu". Raises ``WeightsError`` (one line) for anything it cannot read.
    """
    if activation is not None and activation not in SRVGG_ACTIVATIONS:
        raise WeightsError(f"activation must be one of {', '.join(SRVGG_ACTIVATIONS)}, got {activation!r}")
    arrays, path = unwrap(state_dict)
    if not arrays:
        raise WeightsError("not a state dict: it holds no arrays" + (f" under {'/'.join(path)}" if path else ""))
    for layout in LAYOUTS + REFUSED_LAYOUTS:
        if not all(key in arrays for key in layout.signature):
            continue
        state = _StateDict(arrays)
        try:
            network, renames = layout.read(state, activation)
            tensors, folded = _read_tensors(state, network, renames)
        except (_NotThisLayout, _Refusal) as exc:
            verdict = "cannot be represented" if isinstance(exc, _Refusal) else "does not match it"
            raise WeightsError(f"looks like a {layout.name} state dict but {verdict}: {exc}") from None
        described = layout.name + (", BatchNorm folded" if folded else "")
        return Detected(network, tensors, described + (f" ({', '.join(path)})" if path else ""))
    raise WeightsError(_unknown_layout(arrays))


def _unknown_layout(arrays: dict[str, np.ndarray]) -> str:
    nearest = max(LAYOUTS + REFUSED_LAYOUTS, key=lambda layout: sum(key in arrays for key in layout.signature))
    missing = next(key for key in nearest.signature if key not in arrays)
    first_keys = ", ".join(list(arrays)[:3]) + (", ..." if len(arrays) > 3 else "")
    return (f"not an srgan_fast generator file nor a state dict it can read (it reads "
            f"{', '.join(layout.name for layout in LAYOUTS)}): its keys begin {first_keys}; "
            f"the nearest layout, {nearest.name}, lacks {missing!r}")
