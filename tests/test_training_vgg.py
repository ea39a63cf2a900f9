"""The VGG19 φ5,4 feature module and its loading from torchvision-layout files, without pickle."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from training.vgg import (IMAGENET_MEAN, IMAGENET_STD, Vgg19Features, VggWeightsError, load_vgg19_features,
                          main as vgg_main)

# torchvision's vgg19().features: conv layers sit at these indices (ReLU after each, max-pools at 4, 9, 18, 27).
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


class NotATensor:
    """Something a pickle-based loader would have to construct: weights_only loading must refuse it."""


@pytest.fixture(scope="module")
def vgg_state():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in Vgg19Features().state_dict().items()}


def test_parameter_names_and_shapes_follow_torchvision_vgg19_features():
    state = Vgg19Features().state_dict()
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias"))
    assert state["features.0.weight"].shape == (64, 3, 3, 3) and state["features.34.weight"].shape == (512, 512, 3, 3)
    assert all(not p.requires_grad for p in Vgg19Features().parameters())


def test_features_are_relu5_4_of_the_normalised_image_divided_by_12_75(vgg_state):
    vgg, unscaled = Vgg19Features(), Vgg19Features(feature_scale=1.0)
    vgg.load_state_dict(vgg_state)
    unscaled.load_state_dict(vgg_state)
    image = torch.rand(2, 3, 48, 32)
    out = vgg(image)
    assert out.shape == (2, 512, 3, 2) and float(out.min()) >= 0.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    by_hand = unscaled.features((image - mean) / std)
    torch.testing.assert_close(out, by_hand / 12.75, rtol=1e-5, atol=1e-7)


def test_safetensors_and_weights_only_pth_load_the_same_weights(tmp_path, vgg_state):
    # A torchvision file also holds the classifier; those tensors are ignored.
    full = dict(vgg_state, **{"classifier.0.weight": torch.zeros(4, 4)})
    torch.save(full, tmp_path / "vgg19.pth")
    save_file({k: v.contiguous() for k, v in full.items()}, str(tmp_path / "vgg19.safetensors"))
    image = torch.rand(1, 3, 32, 32)
    a = load_vgg19_features(tmp_path / "vgg19.pth")(image)
    b = load_vgg19_features(tmp_path / "vgg19.safetensors")(image)
    reference = Vgg19Features()
    reference.load_state_dict(vgg_state)
    assert torch.equal(a, b) and torch.equal(a, reference(image))


def test_convert_writes_features_only_safetensors(tmp_path, vgg_state):
    torch.save(dict(vgg_state, **{"classifier.6.bias": torch.zeros(1000)}), tmp_path / "vgg19.pth")
    vgg_main(["convert", str(tmp_path / "vgg19.pth"), str(tmp_path / "out.safetensors")])
    from safetensors.torch import load_file

    converted = load_file(str(tmp_path / "out.safetensors"))
    assert sorted(converted) == sorted(vgg_state)
    assert all(torch.equal(converted[k], vgg_state[k]) for k in vgg_state)


def test_pickled_objects_are_refused(tmp_path, vgg_state):
    torch.save(dict(vgg_state, extra=NotATensor()), tmp_path / "evil.pth")
    with pytest.raises(VggWeightsError, match=r"evil\.pth: not a plain state dict of tensors"):
        load_vgg19_features(tmp_path / "evil.pth")


def test_wrong_layout_suffix_and_missing_file_are_named(tmp_path, vgg_state):
    save_file({"features.0.weight": vgg_state["features.0.weight"]}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(VggWeightsError, match=r"not torchvision VGG19 features \(missing \['features\.0\.bias', "
                                              r"'features\.2\.bias', 'features\.2\.weight'\]"):
        load_vgg19_features(tmp_path / "partial.safetensors")
    (tmp_path / "vgg.h5").write_bytes(b"x")
    with pytest.raises(VggWeightsError, match=r"expected a \.safetensors or \.pth file, got '\.h5'"):
        load_vgg19_features(tmp_path / "vgg.h5")
    with pytest.raises(VggWeightsError, match="VGG weights file not found: .*nope.pth.*vgg19-dcbb9e9d.pth"):
        load_vgg19_features(tmp_path / "nope.pth")
