"""Every architecture's description against the network it describes, and every path derived from it.

The oracle for each architecture is its original project's forward written out here with plain torch ops on
a state dict in that project's key layout: SRGAN's SRResNet as this project wrote it by hand before the
description, BasicSR's MSRResNet, Real-ESRGAN's SRVGGNetCompact. The torch module built from the description
must equal it; ONNX, the receptive radius, BN folding and the memory estimate must follow the description.
"""
from __future__ import annotations

import importlib.util
import math
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

from conftest import randomise_batchnorm_and_prelu  # noqa: E402
from srgan_fast.architecture import msrresnet, srresnet, srvgg_compact  # noqa: E402
from srgan_fast.backends.onnx_graph import build_onnx_model  # noqa: E402
from srgan_fast.reference.module import build_module, fold_batchnorm  # noqa: E402
from srgan_fast.weights import random_weights, weights_for  # noqa: E402


class RecordingTensors(dict):
    """A state dict that remembers which tensors the oracle read: all of them must be, no more, no fewer."""

    def __init__(self, tensors):
        super().__init__(tensors)
        self.read = set()

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)


def conv(x, t, name):
    weight = t[f"{name}.weight"]
    return F.conv2d(x, weight, t[f"{name}.bias"], padding=weight.shape[-1] // 2)


def srresnet_oracle(t, x, num_blocks, channels, scale):
    """SRGAN's generator with BN folded, as srgan_fast.reference.model.Generator wrote it out before the description."""
    head = F.prelu(conv(x, t, "head"), t["head_prelu.weight"])
    y = head
    for i in range(num_blocks):
        inner = F.prelu(conv(y, t, f"blocks.{i}.conv1"), t[f"blocks.{i}.prelu.weight"])
        y = y + conv(inner, t, f"blocks.{i}.conv2")
    y = head + conv(y, t, "trunk_conv")
    for j in range(int(math.log2(scale))):
        y = F.prelu(F.pixel_shuffle(conv(y, t, f"upsample.{j}.conv"), 2), t[f"upsample.{j}.prelu.weight"])
    return conv(y, t, "tail")


def msrresnet_oracle(t, x, num_blocks, channels, scale):
    """BasicSR's MSRResNet.forward: LeakyReLU(0.1) features; blocks of identity + conv2(ReLU(conv1)) without BN;
    ×4 as two PixelShuffle(2) stages, ×2/×3 as one; conv_last(lrelu(conv_hr)); + the bilinear ×scale input."""
    def lrelu(v):
        return F.leaky_relu(v, 0.1)

    out = lrelu(conv(x, t, "conv_first"))
    for i in range(num_blocks):
        out = out + conv(F.relu(conv(out, t, f"body.{i}.conv1")), t, f"body.{i}.conv2")
    stages = [2, 2] if scale == 4 else [scale]
    for j, factor in enumerate(stages, start=1):
        out = lrelu(F.pixel_shuffle(conv(out, t, f"upconv{j}"), factor))
    out = conv(lrelu(conv(out, t, "conv_hr")), t, "conv_last")
    return out + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def srvgg_oracle(t, x, num_convs, channels, scale, activation):
    """Real-ESRGAN's SRVGGNetCompact.forward: one ModuleList body = conv, act, num_convs × (conv, act), a conv
    to 3·scale² channels (so the PReLU of conv 2k sits at index 2k+1); PixelShuffle(scale); + the nearest
    ×scale input."""
    def act(v, index):
        if activation == "prelu":
            return F.prelu(v, t[f"body.{index}.weight"])
        return F.leaky_relu(v, 0.1) if activation == "leakyrelu" else F.relu(v)

    out = x
    for index in range(0, 2 * (num_convs + 1), 2):
        out = act(conv(out, t, f"body.{index}"), index + 1)
    out = F.pixel_shuffle(conv(out, t, f"body.{2 * (num_convs + 1)}"), scale)
    return out + F.interpolate(x, scale_factor=scale, mode="nearest")


ORACLES = {"srresnet": srresnet_oracle, "msrresnet": msrresnet_oracle, "srvgg_compact": srvgg_oracle}
NETWORKS = [srresnet(2, 8), msrresnet(2, 8, 4), msrresnet(2, 8, 2), msrresnet(2, 8, 3),
            srvgg_compact(3, 8, 2), srvgg_compact(3, 8, 4), srvgg_compact(3, 8, 2, "leakyrelu"),
            srvgg_compact(3, 8, 4, "leakyrelu")]


def network_id(network) -> str:
    return "-".join([network.architecture, *map(str, network.params.values())])


architectures = pytest.mark.parametrize("network", NETWORKS, ids=network_id)
needs_onnxruntime = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
                                       reason="onnx or onnxruntime is not installed")


def module64(weights):
    module = build_module(weights.network)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.tensors.items()})
    return module.double().eval()


def relative_error(got, reference) -> float:
    got, reference = np.asarray(got, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def run_onnx(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def images(n, h, w, seed):
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


@architectures
def test_module_holds_exactly_the_descriptions_tensors(network):
    shapes = {k: tuple(v.shape) for k, v in build_module(network).state_dict().items()}
    assert shapes == network.tensor_shapes()


@architectures
def test_module_equals_the_original_projects_forward(network):
    weights = random_weights(network, seed=1)
    x = torch.from_numpy(images(2, 9, 11, seed=2)).double()
    tensors = RecordingTensors({k: torch.from_numpy(v).double() for k, v in weights.tensors.items()})
    with torch.no_grad():
        expected = ORACLES[network.architecture](tensors, x, **network.params)
        got = module64(weights)(x)
    assert got.shape == (2, 3, network.scale * 9, network.scale * 11)
    assert tensors.read == set(tensors)
    assert relative_error(got, expected) <= 1e-12


@architectures
@needs_onnxruntime
def test_onnx_through_onnxruntime_equals_the_module(network):
    weights = random_weights(network, seed=3)
    x = images(2, 11, 13, seed=4)
    with torch.no_grad():
        reference = module64(weights)(torch.from_numpy(x).double()).numpy()
    for tile in ((11, 13), None):
        model = build_onnx_model(weights, tile=tile)
        y = run_onnx(model, x)
        assert y.shape == reference.shape
        assert relative_error(y, reference) <= 1e-5, tile
    props = {p.key: p.value for p in model.metadata_props}
    assert (props["architecture"], props["scale"]) == (network.architecture, str(network.scale))


@needs_onnxruntime
@pytest.mark.parametrize("network", [msrresnet(1, 4, 2), msrresnet(1, 4, 3), msrresnet(1, 4, 4),
                                     srvgg_compact(1, 4, 2), srvgg_compact(1, 4, 4)], ids=network_id)
def test_onnx_image_skip_equals_torch_at_the_borders(network):
    """With the last conv zeroed the output is the upsampled input alone: ONNX's Resize against torch's
    interpolate, border rows and columns and 1-pixel images included."""
    last = network.layers[-1].name
    tensors = dict(random_weights(network).tensors)
    tensors[f"{last}.weight"] = np.zeros_like(tensors[f"{last}.weight"])
    tensors[f"{last}.bias"] = np.zeros_like(tensors[f"{last}.bias"])
    model = build_onnx_model(weights_for(network, tensors, "skip only"))
    mode = network.image_skip
    for h, w in ((1, 1), (2, 3), (7, 5)):
        x = images(1, h, w, seed=h)
        expected = F.interpolate(torch.from_numpy(x).double(), scale_factor=network.scale, mode=mode,
                                 **({"align_corners": False} if mode == "bilinear" else {})).numpy()
        assert np.abs(run_onnx(model, x) - expected).max() <= 1e-6, (h, w)


@pytest.mark.parametrize("network", [msrresnet(2, 8, 4), srvgg_compact(3, 8, 4)], ids=network_id)
@needs_onnxruntime
def test_onnx_fp16_at_most_twice_as_wrong_as_torch_fp16(network):
    """The fp16 graph adds the image skip in float32 after the body; torch's fp16 module adds it in fp16."""
    weights = random_weights(network, seed=5)
    x = images(1, 9, 7, seed=6)
    with torch.no_grad():
        reference = module64(weights)(torch.from_numpy(x).double()).numpy()
        torch16 = module64(weights).half()(torch.from_numpy(x).half()).double().numpy()
    model = build_onnx_model(weights, precision="fp16")
    y = run_onnx(model, x)
    assert relative_error(y, reference) <= 2 * relative_error(torch16, reference)


@architectures
def test_receptive_radius_is_how_far_a_pixel_reaches(network):
    """Perturb one input pixel: outputs change up to ceil(radius) input pixels beyond its footprint, no further."""
    module = module64(random_weights(network, seed=7))
    assert measured_reach(module, network.scale, 41) == math.ceil(network.receptive_radius())


def measured_reach(module, scale: int, size: int) -> int:
    """Perturb the centre pixel of a random size² input: how far (in input pixels, rounded up) beyond its
    footprint the outputs of ``module`` (float64) change."""
    centre = size // 2
    x = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    y = x.clone()
    y[0, :, centre, centre] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(y)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    reach = max(scale * centre - int(rows.min()), int(rows.max()) - (scale * centre + scale - 1))
    return math.ceil(reach / scale)


@architectures
def test_training_module_with_batchnorm_folds_to_the_same_output(network):
    torch.manual_seed(9)
    training = build_module(network, batch_norm=True)
    randomise_batchnorm_and_prelu(training, spread=0.5)
    training.eval()
    has_bn = any(conv.batch_norm for conv in network.layers)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in training.modules()) == has_bn
    folded = fold_batchnorm(training)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert {k: tuple(v.shape) for k, v in folded.state_dict().items()} == network.tensor_shapes()
    x = torch.rand(2, 3, 10, 7)
    with torch.no_grad():
        reference = training.double()(x.double())
        got = folded(x)
    assert relative_error(got, reference) <= 1e-5


class LiveTensorValues(TorchDispatchMode):
    """The most tensor values alive at once among the tensors made inside the mode (each storage once)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(result)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in self.storages:
                self._track(tensor)
        return result

    def _track(self, tensor):
        storage = tensor.untyped_storage()
        key, values = storage.data_ptr(), storage.nbytes() // tensor.element_size()
        self.storages.add(key)
        self.live += values
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, values)

    def _free(self, key, values):
        self.live -= values
        self.storages.discard(key)


@architectures
@pytest.mark.slow
def test_peak_activation_values_are_the_modules_live_set(network):
    """The estimate the tiler sizes tiles from, against what the torch module actually holds at its peak."""
    assert measured_peak_values(build_module(network).eval(), 12, 10) == \
        network.peak_activation_values_per_input_pixel() * 12 * 10


def measured_peak_values(module, h: int, w: int) -> int:
    """The most activation values ``module`` holds at once on a random h x w input, plus the input itself (held
    by the caller throughout, and counted by the estimate)."""
    x = torch.rand(1, 3, h, w)
    mode = LiveTensorValues()
    # Views of the weights (PReLU reshapes its slopes) are not activations.
    mode.storages.update(p.untyped_storage().data_ptr() for p in module.parameters())
    with torch.no_grad(), mode:
        module(x)
    return mode.peak + 3 * h * w


@architectures
def test_torch_backend_runs_every_architecture(network):
    from srgan_fast.backends.torch_backend import TorchBackend

    backend = TorchBackend(random_weights(network, seed=10), "cpu", "fp32")
    tiles = np.random.default_rng(11).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    assert backend.run(tiles).shape == (2, 5 * network.scale, 6 * network.scale, 3)
    assert backend.bytes_per_input_pixel() == 4 * network.peak_activation_values_per_input_pixel() + 64
