"""Which network another project's state dict holds, read from its keys and shapes alone (no torch).

``detect(state_dict)`` unwraps the usual checkpoint containers, finds the layout whose keys it has, derives
that architecture's parameters from the keys and shapes, and returns the description with its tensors under
the description's names, BatchNorm folded. Each architecture's readers sit beside its description
(``srgan_fast.architecture.paper``, ``basicsr``, ``realesrgan``, ``esrgan``); the layouts they read:

  srgan_fast srresnet        head, head_prelu, blocks.i.{conv1,prelu,conv2}[, blocks.i.bn1/bn2, trunk_bn],
                             trunk_conv, upsample.j.{conv,prelu}, tail
  Lornatang/SRGAN-PyTorch    conv1.{0,1} | conv_block1.{0,1}, trunk.i.rcb.{0..4} (conv, BN, PReLU, conv, BN),
                             conv2.{0,1} | conv_block2.{0,1}, upsampling.j.upsample_block.{0,2}, conv3 | conv_block3
  twtygqyy/pytorch-SRResNet  conv_input, residual.i.{conv1,bn1,conv2,bn2}, conv_mid, bn_mid, upscale4x.{0,3},
                             conv_output (its BatchNorm form; LeakyReLU 0.2 as fixed PReLU slopes)
  BasicSR MSRResNet          conv_first, body.i.{conv1,conv2}, upconv1[, upconv2], conv_hr, conv_last
  Real-ESRGAN SRVGGNetCompact  body.{0,2,..,2N+2} convs, body.{1,3,..} PReLU slopes
  BasicSR/Real-ESRGAN RRDBNet  conv_first (3 input channels: x4; 12: x2 on the unshuffled input),
                             body.i.rdb{1,2,3}.conv{1..5}, conv_body, conv_up1, conv_up2, conv_hr, conv_last
  ESRGAN RRDBNet             model.0, model.1.sub.i.RDB{1,2,3}.conv{1..5}.0, model.1.sub.N (N blocks: conv_body),
                             model.3, model.6, model.8, model.10 (x4)

Layouts it recognises and refuses, because no description can represent them: leftthomas/SRGAN (a tanh
output) and twtygqyy's InstanceNorm SRResNet (normalisation by each image's own statistics).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from srgan_fast.architecture.layers import Network
from srgan_fast.architecture.state_dict import INSTANCE_NORM, NotThisLayout, Refusal, StateDict
from srgan_fast.architecture.zoo import LAYOUTS, REFUSED_LAYOUTS, SRVGG_ACTIVATIONS
from srgan_fast.weights.format import WeightsError

# Containers other projects put the state dict in, most preferred first (BasicSR keeps the EMA beside the raw).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "netG")
# Key prefixes added by nn.DataParallel and torch.compile.
KEY_PREFIXES = ("module.", "_orig_mod.")
# srgan_fast's training checkpoints hold every module's tensors under module/<name>/ (training.checkpoint).
OUR_CHECKPOINT_PREFIX = "module/generator/"
BATCH_NORM_EPS = 1e-5  # torch's default; state dicts do not record it


@dataclass(frozen=True)
class Detected:
    network: Network
    tensors: dict[str, np.ndarray]  # float32, the description's names, BatchNorm folded
    source_layout: str              # e.g. "BasicSR MSRResNet (params_ema)"


def _slopes(state: StateDict, source: str | float, channels: int) -> np.ndarray:
    """PReLU slopes per channel: a learned tensor, torch's single-parameter PReLU (one slope for every
    channel) or a fixed LeakyReLU slope."""
    if isinstance(source, float):
        return np.full(channels, source)
    key = f"{source}.weight"
    shape = (1,) if state.shape(key) == (1,) else (channels,)
    return np.broadcast_to(state.take(key, shape), (channels,))


def _read_tensors(state: StateDict, network: Network, renames: Mapping[str, str | float]) -> tuple[dict, bool]:
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
            raise Refusal(f"{norm!r} has an affine scale but no running statistics: an instance norm, which "
                           + INSTANCE_NORM)
        tensors[f"{conv.name}.weight"], tensors[f"{conv.name}.bias"] = weight, bias
        slopes = conv.activation.slopes_tensor if conv.activation else None
        if slopes is not None:
            module = slopes.removesuffix(".weight")
            tensors[slopes] = _slopes(state, renames.get(module, module), conv.result_channels)
    state.check_all_read()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, folded


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
        state = StateDict(arrays)
        try:
            network, renames = layout.read(state, activation)
            tensors, folded = _read_tensors(state, network, renames)
        except (NotThisLayout, Refusal) as exc:
            verdict = "cannot be represented" if isinstance(exc, Refusal) else "does not match it"
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
