"""VGG19 φ5,4 features for the SRGAN content loss, loaded from a user's file without torchvision or pickle.

The weights are torchvision's ImageNet VGG19 (IMAGENET1K_V1), in its state-dict layout ``features.N.weight``
and ``features.N.bias``. Get and convert them once, on a machine with internet access:

    curl -LO https://download.pytorch.org/models/vgg19-dcbb9e9d.pth
    python -m training.vgg convert vgg19-dcbb9e9d.pth vgg19_features.safetensors

``.safetensors`` files are read as they are; ``.pth`` files only through ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so no code in the file can run.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from srgan_fast.io.atomic import atomic_output

# (out_channels per conv) per stage; a 2x2 max-pool closes every stage but the last.
_STAGES = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Ledig et al. rescale the VGG feature maps by 1/12.75 so that the VGG loss is of the scale of the pixel MSE.
PAPER_FEATURE_SCALE = 1.0 / 12.75

HOW_TO_GET = ("VGG19 ImageNet weights: download torchvision's IMAGENET1K_V1 file "
              "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth and pass it to --vgg-weights "
              "(or convert it once: python -m training.vgg convert vgg19-dcbb9e9d.pth vgg19_features.safetensors)")


class VggWeightsError(ValueError):
    """A --vgg-weights file that is missing or does not hold VGG19 features."""


def _vgg19_layers_to_relu5_4() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for stage_index, stage in enumerate(_STAGES):
        for out_ch in stage:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = out_ch
        if stage_index < len(_STAGES) - 1:
            layers.append(nn.MaxPool2d(2, 2))
    return layers  # ends with the ReLU after conv5_4: index 35 in torchvision's vgg19().features


class Vgg19Features(nn.Module):
    """Image in [0, 1], [N, 3, H, W] -> φ5,4 (after the ReLU of conv5_4) × ``feature_scale``, [N, 512, H/16, W/16].

    Parameter names match torchvision's ``vgg19().features`` (``features.0.weight`` ... ``features.34.bias``).
    Frozen: it only defines the loss.
    """

    def __init__(self, feature_scale: float = PAPER_FEATURE_SCALE):
        super().__init__()
        self.features = nn.Sequential(*_vgg19_layers_to_relu5_4())
        self.feature_scale = feature_scale
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features((image - self.mean) / self.std) * self.feature_scale


def read_vgg_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a VGG19 weights file (.safetensors, or .pth read with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise VggWeightsError(f"VGG weights file not found: {path}. {HOW_TO_GET}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses pickled code with an UnpicklingError, among others
            raise VggWeightsError(f"{path}: not a plain state dict of tensors ({exc})") from None
    else:
        raise VggWeightsError(f"VGG weights file {path}: expected a .safetensors or .pth file, got {path.suffix!r}")
    if not isinstance(state, dict):
        raise VggWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k: v for k, v in state.items() if k.startswith("features.")}


def load_vgg19_features(path: str | os.PathLike, feature_scale: float = PAPER_FEATURE_SCALE) -> Vgg19Features:
    vgg = Vgg19Features(feature_scale)
    state = read_vgg_state_dict(path)
    expected = {k: tuple(v.shape) for k, v in vgg.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if k in expected}
    if got != expected:
        missing = sorted(set(expected) - set(got), key=lambda k: (int(k.split(".")[1]), k))[:3]
        wrong = [k for k in got if got[k] != expected[k]][:3]
        raise VggWeightsError(f"{path}: not torchvision VGG19 features (missing {missing}, wrong shape {wrong}; "
                              f"expected features.0.weight {expected['features.0.weight']} ... features.34.bias)")
    vgg.load_state_dict({k: state[k].float() for k in expected})
    return vgg


def convert(source: str, target: str) -> None:
    """Keep the ``features.*`` tensors of a torchvision VGG19 file, written as safetensors (atomically)."""
    from safetensors.torch import save_file

    state = read_vgg_state_dict(source)
    load_vgg19_features(source)  # validates the layout before anything is written
    with atomic_output(target) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert torchvision's VGG19 .pth to safetensors (features only).")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert")
    conv.add_argument("source", help="vgg19-dcbb9e9d.pth (torchvision IMAGENET1K_V1)")
    conv.add_argument("target", help="output .safetensors")
    args = parser.parse_args(argv)
    try:
        convert(args.source, args.target)
    except VggWeightsError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {args.target}")


if __name__ == "__main__":
    main()
