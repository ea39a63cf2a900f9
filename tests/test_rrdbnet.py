"""ESRGAN's RRDBNet from the description against RRDBNet written out here from the paper (Wang et al., 2018,
as BasicSR/Real-ESRGAN implement it), and every path derived from the description: ONNX, the torch backend,
tiling, receptive radius, FLOPs, the memory estimate, and the engines' refusal.

Small networks (a block or two, 8-16 channels) keep it fast; the full-size description is checked by counts.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

from test_architectures import measured_peak_values, measured_reach  # noqa: E402
from srgan_fast.architecture import rrdbnet  # noqa: E402
from srgan_fast.reference.module import build_module  # noqa: E402
from srgan_fast.weights import random_weights, weights_for  # noqa: E402
from srgan_fast.weights.detect import detect  # noqa: E402

needs_onnxruntime = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
                                       reason="onnx or onnxruntime is not installed")


class DenseBlock(nn.Module):
    """Residual dense block: conv k reads the block input and every earlier conv's output; 0.2 × conv5 + input."""

    def __init__(self, channels, growth):
        super().__init__()
        for k in range(1, 5):
            setattr(self, f"conv{k}", nn.Conv2d(channels + (k - 1) * growth, growth, 3, 1, 1))
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, channels, growth):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(channels, growth) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class PaperRRDBNet(nn.Module):
    """The generator: trunk of RRDBs with a long skip, two nearest ×2 + conv stages, HR conv, last conv;
    ×2 runs it on the input pixel-unshuffled by 2 (Real-ESRGAN)."""

    def __init__(self, num_blocks, channels, growth, scale):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 // scale) ** 2, channels, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(channels, growth) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_hr = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(channels, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        feat = self.conv_first(F.pixel_unshuffle(x, 2) if self.scale == 2 else x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# (num_blocks, channels, growth, scale): x4 and x2 at reduced size, and the anime model's 6 blocks.
VARIANTS = [(2, 16, 8, 4), (2, 16, 8, 2), (6, 8, 4, 4)]
variants = pytest.mark.parametrize("params", VARIANTS, ids=lambda p: "rrdbnet-{}-{}-{}-x{}".format(*p))


def paper_network(params, seed=0):
    torch.manual_seed(seed)
    return PaperRRDBNet(*params).eval()


def numpy_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def description_module(weights):
    module = build_module(weights.network)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.tensors.items()})
    return module.eval()


def images(n, h, w, seed):
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


@variants
def test_description_module_equals_the_papers_rrdbnet_exactly(params):
    paper = paper_network(params)
    detected = detect({"params_ema": numpy_state(paper)})
    assert detected.network == rrdbnet(*params)
    x = torch.from_numpy(images(2, 10, 14, seed=1))
    with torch.no_grad():
        expected = paper(x)
        got = description_module(weights_for(detected.network, detected.tensors, "paper"))(x)
    assert got.shape == (2, 3, 10 * params[3], 14 * params[3])
    assert torch.equal(got, expected)


def test_x2_pads_odd_sides_by_reflection_and_crops_as_real_esrgan_infers():
    """RealESRGANer pads a ×2 model's input at the bottom and right by reflection to even sides, then crops."""
    params = (1, 8, 4, 2)
    paper = paper_network(params)
    module = description_module(weights_for(rrdbnet(*params), numpy_state(paper), "paper"))
    for h, w in ((7, 10), (10, 7), (5, 5)):
        x = torch.from_numpy(images(1, h, w, seed=h))
        with torch.no_grad():
            expected = paper(F.pad(x, (0, w % 2, 0, h % 2), mode="reflect"))[..., :2 * h, :2 * w]
            assert torch.equal(module(x), expected), (h, w)
    with torch.no_grad():  # a 1-pixel side has no mirror: its pixel is repeated
        x = torch.from_numpy(images(1, 1, 3, seed=0))
        padded = F.pad(F.pad(x, (0, 1, 0, 0), mode="reflect"), (0, 0, 0, 1), mode="replicate")
        assert torch.equal(module(x), paper(padded)[..., :2, :6])


@variants
def test_module_holds_exactly_the_descriptions_tensors(params):
    network = rrdbnet(*params)
    assert {k: tuple(v.shape) for k, v in build_module(network).state_dict().items()} == network.tensor_shapes()
    assert network.tensor_shapes() == {k: tuple(v.shape) for k, v in paper_network(params).state_dict().items()}


def macs_per_input_pixel(network, trunk_pixels):
    """The trunk's weights once per trunk pixel, conv_up1's at 2×2 those pixels, the last three's at 4×4."""
    pixels = {"conv_up1": 4, "conv_up2": 16, "conv_hr": 16, "conv_last": 16}
    return sum(math.prod(shape) * pixels.get(name.removesuffix(".weight"), 1) * trunk_pixels
               for name, shape in network.tensor_shapes().items() if name.endswith(".weight"))


def test_full_size_counts():
    """RRDBNet's 16,697,987 parameters (RealESRGAN_x4plus); ×2 runs its trunk on a quarter of the pixels."""
    network = rrdbnet()
    assert sum(math.prod(s) for s in network.tensor_shapes().values()) == 16_697_987
    assert network.flops_per_input_pixel() == 2 * macs_per_input_pixel(network, 1)
    assert rrdbnet(scale=2).flops_per_input_pixel() == 2 * macs_per_input_pixel(rrdbnet(scale=2), 1 / 4)
    assert len(network.layers) == 23 * 15 + 6 and network.channels == 64
    assert rrdbnet(num_blocks=6).describe().startswith("rrdbnet(num_blocks=6, channels=64, growth=32, scale=4): x4")


@variants
def test_receptive_radius_is_how_far_a_pixel_reaches(params):
    params = (1, *params[1:])
    network = rrdbnet(*params)
    module = description_module(random_weights(network, seed=7)).double()
    # An even size (x2 unshuffles the input by 2), centre 40.
    assert measured_reach(module, network.scale, 80) == math.ceil(network.receptive_radius())


@variants
def test_peak_activation_values_are_the_modules_live_set(params):
    network = rrdbnet(*params)
    assert measured_peak_values(build_module(network).eval(), 12, 10) == \
        network.peak_activation_values_per_input_pixel() * 12 * 10


@variants
@needs_onnxruntime
def test_onnx_through_onnxruntime_equals_the_module(params):
    import onnxruntime

    from srgan_fast.backends.onnx_graph import build_onnx_model

    weights = random_weights(rrdbnet(*params), seed=3)
    x = images(2, 10, 12, seed=4)
    with torch.no_grad():
        reference = description_module(weights).double()(torch.from_numpy(x).double()).numpy()
    for tile in ((10, 12), None):
        model = build_onnx_model(weights, tile=tile)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = session.run(None, {"image": x})[0]
        assert y.shape == reference.shape
        assert np.abs(y - reference).max() <= 1e-5 * np.abs(reference).max(), tile
    props = {p.key: p.value for p in model.metadata_props}
    assert (props["architecture"], props["scale"]) == ("rrdbnet", str(params[3]))


@needs_onnxruntime
def test_onnx_pads_and_crops_odd_sides_like_the_module():
    import onnxruntime

    from srgan_fast.backends.onnx_graph import build_onnx_model

    weights = random_weights(rrdbnet(1, 8, 4, 2), seed=3)
    session = onnxruntime.InferenceSession(build_onnx_model(weights).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    module = description_module(weights).double()
    for h, w in ((1, 1), (1, 4), (3, 1), (7, 10), (9, 9)):
        x = images(1, h, w, seed=h + w)
        with torch.no_grad():
            reference = module(torch.from_numpy(x).double()).numpy()
        y = session.run(None, {"image": x})[0]
        assert y.shape == reference.shape == (1, 3, 2 * h, 2 * w)
        assert np.abs(y - reference).max() <= 1e-5 * np.abs(reference).max(), (h, w)


@needs_onnxruntime
@pytest.mark.parametrize("params", [(1, 8, 4, 4), (1, 8, 4, 2)], ids=["x4", "x2"])
def test_onnx_fp16_at_most_twice_as_wrong_as_torch_fp16(params):
    import onnxruntime

    from srgan_fast.backends.onnx_graph import build_onnx_model

    weights = random_weights(rrdbnet(*params), seed=5)
    x = images(1, 9, 7, seed=6)
    module = description_module(weights)
    with torch.no_grad():
        reference = module.double()(torch.from_numpy(x).double()).numpy()
        torch16 = module.half()(torch.from_numpy(x).half()).double().numpy()
    session = onnxruntime.InferenceSession(build_onnx_model(weights, precision="fp16").SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    y = session.run(None, {"image": x})[0]
    assert np.abs(y - reference).max() <= 2 * np.abs(torch16 - reference).max()


@pytest.mark.parametrize("scale", [4, 2])
def test_int8_keeps_the_convs_reading_the_first_the_long_skip_and_the_upsampling_float(scale):
    """The shared int8 policy: the first block's first dense block reads conv_first in every conv; conv_body adds
    it back across the trunk; conv_up1/2 upsample; conv_hr and conv_last run at the output's level."""
    from srgan_fast.architecture import int8_convs

    network = rrdbnet(2, 8, 4, scale)
    float_convs = {"conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last",
                   *(f"body.0.rdb1.conv{k}" for k in range(1, 6))}
    assert int8_convs(network) == [conv.name for conv in network.layers if conv.name not in float_convs]


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime", marks=needs_onnxruntime)])
@pytest.mark.parametrize("params", [(1, 8, 4, 4), (1, 8, 4, 2)], ids=["x4", "x2"])
def test_backends_run_it_like_the_reference(backend, params):
    from srgan_fast.backends import get_backend_class

    weights = random_weights(rrdbnet(*params), seed=5)
    tiles = np.random.default_rng(6).random((2, 7, 10, 3), dtype=np.float32)  # an odd side: ×2 pads it
    got = get_backend_class(backend)(weights, "cpu", "fp32").run(tiles)
    with torch.no_grad():
        reference = description_module(weights).double()(torch.from_numpy(tiles.transpose(0, 3, 1, 2)).double())
    expected = reference.clamp(0, 1).numpy().transpose(0, 2, 3, 1)
    assert got.shape == expected.shape == (2, 7 * params[3], 10 * params[3], 3)
    assert np.abs(got - expected).max() <= 1e-5


@pytest.mark.slow
def test_tiled_equals_untiled_on_the_torch_backend_with_the_derived_halo():
    from srgan_fast.backends.torch_backend import TorchBackend
    from srgan_fast.tiler.plan import plan_tiles
    from srgan_fast.tiler.seams import SeamGeometry

    weights = random_weights(rrdbnet(1, 8, 4, 4), seed=9)
    backend = TorchBackend(weights, "cpu", "fp32")
    image = np.random.default_rng(10).random((1, 70, 64, 3), dtype=np.float32)
    whole = backend.run(image)[0]
    plan = plan_tiles((70, 64), 12, SeamGeometry.plain(math.ceil(weights.network.receptive_radius())))
    assert plan.num_windows > 1
    tiled = np.full_like(whole, np.nan)
    for window, in_window, in_image in plan.windows(weights.scale):
        tiled[in_image] = backend.run(np.ascontiguousarray(image[(0, *window)])[None])[0][in_window]
    assert np.abs(tiled - whole).max() <= 1e-5


@pytest.mark.parametrize("params", [(1, 8, 4, 4), (1, 8, 4, 2)], ids=["x4", "x2"])
def test_upscaler_tiles_it_like_the_whole_image(params):
    """Through the tiler's own plan (for ×2 its windows start on even pixels, where the unshuffle pairs them)."""
    import srgan_fast

    weights = random_weights(rrdbnet(*params), seed=11)
    image = np.random.default_rng(12).random((121, 135, 3), dtype=np.float32)  # ×2: margins of 37 px
    whole = srgan_fast.Upscaler(weights, backend="torch", tile=512)(image)
    tiled = srgan_fast.Upscaler(weights, backend="torch", tile=16)
    assert tiled.plan(image.shape[:2]).num_windows > 1
    assert np.abs(tiled(image) - whole).max() <= 1e-5


@pytest.mark.parametrize("scale, layer", [(4, "layer 2 'body.0.rdb1.conv2': it reads the concatenation of 2 "
                                                "outputs (a dense connection)"),
                                          (2, "layer 0 'conv_first': it reads its input pixel-unshuffled by 2")])
def test_the_cuda_engine_refuses_it_by_name_on_one_line(scale, layer):
    from srgan_fast.backends.native_backend import engine_refusal

    assert engine_refusal(rrdbnet(1, 16, 16, scale), "CUDA") == f"rrdbnet: the CUDA engine cannot run {layer}"


def _native_or_skip():
    from srgan_fast.backends.native_backend import NativeBackend

    if NativeBackend.unavailable_reason() is not None:
        pytest.skip(f"native engine: {NativeBackend.unavailable_reason()}")
    return NativeBackend


def test_what_the_native_engine_cannot_run_is_refused_by_layer_on_one_line():
    from srgan_fast.backends import BackendUnavailable

    native = _native_or_skip()
    with pytest.raises(BackendUnavailable) as refused:
        native(random_weights(rrdbnet(1, 16, 8)), "cpu")
    assert str(refused.value) == ("rrdbnet: the native engine cannot run layer 2 'body.0.rdb1.conv2': its inputs' "
                                  "channel counts must be multiples of 16, got 8 from 'body.0.rdb1.conv1'")


def test_a_layer_with_only_a_scaled_residual_is_for_the_native_engine_and_not_cuda():
    from srgan_fast.architecture import Conv, Network
    from srgan_fast.backends.native_backend import engine_refusal

    network = Network("test", {}, 1, (Conv("a", 3, 16, 3, 1), Conv("b", 16, 16, 3, 1, "a", residual="a",
                                                                    residual_scale=0.5), Conv("c", 16, 3, 3, 1, "b")))
    assert engine_refusal(network, "CUDA") == ("test: the CUDA engine cannot run layer 1 'b': it scales its "
                                               "residual or adds a second one (a residual-in-residual)")
    assert engine_refusal(network, "native") is None
