"""The torch reference module of any network description: every fast path is tested against it.

``build_module(network)`` lays the description's tensors out as a module tree named by their dotted names,
so ``state_dict()`` holds exactly ``network.tensor_shapes()`` and each project's own checkpoints load as they
are. The forward is ``srgan_fast.reference.ops``'s ops in layer order; nothing here knows an architecture.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from srgan_fast.reference import ops as _torch_impl
from srgan_fast.architecture import IMAGE, Conv, Network


def _install(root: nn.Module, dotted_name: str, module: nn.Module) -> None:
    """Put ``module`` at ``dotted_name`` under ``root``, creating plain containers for the parents."""
    *parents, leaf = dotted_name.split(".")
    node = root
    for part in parents:
        child = node._modules.get(part)
        if child is None:
            child = nn.Module()
            node.add_module(part, child)
        node = child
    node.add_module(leaf, module)


def _prelu_module_name(conv: Conv) -> str | None:
    if conv.activation is None or conv.activation.slopes_tensor is None:
        return None
    name = conv.activation.slopes_tensor
    if not name.endswith(".weight"):
        raise ValueError(f"layer {conv.name!r}: PReLU slopes must be a '<module>.weight' tensor, got {name!r}")
    return name.removesuffix(".weight")


def _release_after(network: Network) -> list[list[str]]:
    """For each layer, the outputs nobody reads after it: dropped there, so memory follows the live set."""
    release: list[list[str]] = [[] for _ in network.layers]
    for name, index in network.last_readers().items():
        if name != IMAGE:  # the caller owns the image, and the image skip reads it at the end
            release[index].append(name)
    return release


class NetworkModule(nn.Module):
    """A network description as a torch module. x: [N, 3, H, W] in INPUT_RANGE -> [N, 3, sH, sW] in
    OUTPUT_RANGE, not clamped.

    batch_norm=True is the training form: each conv with ``batch_norm`` set is followed by a BatchNorm2d
    under that name and has no bias of its own (BN's shift replaces it); ``fold_batchnorm`` gives the
    inference form, whose tensors are the description's.
    """

    def __init__(self, network: Network, batch_norm: bool = False):
        super().__init__()
        self.network, self.batch_norm = network, batch_norm
        # Registration order is layer order (conv, its BN, its PReLU): parameters() then lists them as the
        # hand-written SRResNet did, so optimizer states in existing training checkpoints still line up.
        for conv in network.layers:
            with_bn = batch_norm and conv.batch_norm is not None
            _install(self, conv.name, nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel,
                                                padding=conv.kernel // 2, bias=not with_bn))
            if with_bn:
                _install(self, conv.batch_norm, nn.BatchNorm2d(conv.out_channels))
            prelu = _prelu_module_name(conv)
            if prelu is not None:
                _install(self, prelu, nn.PReLU(conv.result_channels))
        self._release = _release_after(network)

    @classmethod
    def _of(cls, network: Network, batch_norm: bool) -> NetworkModule:
        """A fresh module of this class for ``network``: subclasses that only name a network by its
        parameters (``srgan_fast.reference.model.Generator``) keep their class, and so their attributes, when folded."""
        module = cls.__new__(cls)
        NetworkModule.__init__(module, network, batch_norm)
        return module

    def _slopes(self, conv: Conv) -> torch.Tensor | float | None:
        if conv.activation is None:
            return None
        prelu = _prelu_module_name(conv)
        return conv.activation.slope if prelu is None else self.get_submodule(prelu).weight

    def _layer(self, conv: Conv, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        conv_module = self.get_submodule(conv.name)
        bn = self.get_submodule(conv.batch_norm) if self.batch_norm and conv.batch_norm is not None else None
        x = _torch_impl.conv_prologue([outputs[name] for name in conv.inputs], unshuffle=conv.unshuffle,
                                      upsample=conv.upsample)
        residual, outer = (None if name is None else outputs[name] for name in (conv.residual, conv.outer_residual))
        return _torch_impl.conv_epilogue(x, conv_module.weight, conv_module.bias, shuffle=conv.shuffle,
                                         slopes=self._slopes(conv), residual=residual, batch_norm=bn,
                                         residual_scale=conv.residual_scale, outer_residual=outer,
                                         outer_residual_scale=conv.outer_residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        outputs = {IMAGE: _torch_impl.pad_to_multiple(x, self.network.input_multiple)}
        for conv, release in zip(self.network.layers, self._release):
            outputs[conv.name] = self._layer(conv, outputs)
            for name in release:
                del outputs[name]
        scale = self.network.scale
        y = outputs[self.network.layers[-1].name][..., :scale * h, :scale * w]  # less the padding's share
        if self.network.image_skip is not None:
            y = y + _torch_impl.image_skip(x, scale, self.network.image_skip)
        return y


def build_module(network: Network, batch_norm: bool = False) -> NetworkModule:
    """The torch module of ``network``, with torch's default initialisation (see ``NetworkModule``)."""
    return NetworkModule(network, batch_norm)


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one conv: in eval mode BN is a per-channel affine map."""
    weight = conv.weight.detach().double()
    bias = (conv.bias.detach().double() if conv.bias is not None
            else torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device))
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return weight, bias


def fold_batchnorm(module: NetworkModule) -> NetworkModule:
    """The inference form of ``module``: no BatchNorm2d, equal to ``module.eval()`` (folded in float64),
    of the same class, in eval mode, float32 on the module's device."""
    if not module.batch_norm:
        return copy.deepcopy(module).eval()
    folded = module._of(module.network, batch_norm=False)
    state = {}
    for conv in module.network.layers:
        bn = module.get_submodule(conv.batch_norm) if conv.batch_norm is not None else None
        weight, bias = _folded_conv(module.get_submodule(conv.name), bn)
        state[f"{conv.name}.weight"], state[f"{conv.name}.bias"] = weight.float(), bias.float()
        prelu = _prelu_module_name(conv)
        if prelu is not None:
            state[f"{prelu}.weight"] = module.get_submodule(prelu).weight.detach().float()
    folded.load_state_dict(state)
    device = next(module.parameters()).device
    return folded.to(device).eval()
