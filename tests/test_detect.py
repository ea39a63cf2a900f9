"""Detection of other projects' state dicts: each layout built here in torch as its project publishes it
(module and key names, BatchNorm with statistics away from identity, bias-free convs, single-parameter
PReLU), detected from its keys and shapes, and the detected network's forward against the original's.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from conftest import randomise_batchnorm_and_prelu  # noqa: E402

from srgan_fast.architecture import srresnet  # noqa: E402
from srgan_fast.weights.detect import detect  # noqa: E402
from srgan_fast.backends.torch_backend import build_generator  # noqa: E402
from srgan_fast.reference.module import build_module  # noqa: E402
from srgan_fast.weights import WeightsError, random_weights, weights_for  # noqa: E402


class LornatangSRResNet(nn.Module):
    """Lornatang/SRGAN-PyTorch's SRResNet (model.py): conv1 = 9×9 conv + PReLU(); trunk of residual blocks
    ``rcb`` = conv(no bias), BN, PReLU(), conv(no bias), BN; conv2 = conv(no bias) + BN, plus conv1's output;
    upsampling blocks ``upsample_block`` = conv to 4C, PixelShuffle(2), PReLU(); conv3 9×9; clamped."""

    def __init__(self, channels: int, num_rcb: int, upscale: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU())
        self.trunk = nn.Sequential(*[Rcb(channels) for _ in range(num_rcb)])
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.upsampling = nn.Sequential(*[LornatangUpsample(channels) for _ in range(int(math.log2(upscale)))])
        self.conv3 = nn.Conv2d(channels, 3, 9, padding=4)

    def forward(self, x):
        head = self.conv1(x)
        return self.conv3(self.upsampling(self.conv2(self.trunk(head)) + head)).clamp(0.0, 1.0)


class Rcb(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.rcb = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                 nn.PReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(channels))

    def forward(self, x):
        return self.rcb(x) + x


class LornatangUpsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.upsample_block = nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2),
                                            nn.PReLU())

    def forward(self, x):
        return self.upsample_block(x)


class TwtygqyySRResNet(nn.Module):
    """twtygqyy/pytorch-SRResNet's _NetG in its BatchNorm form: bias-free convs, LeakyReLU(0.2), ×4."""

    def __init__(self, channels: int, num_blocks: int):
        super().__init__()
        c = channels
        self.conv_input = nn.Conv2d(3, c, 9, padding=4, bias=False)
        self.residual = nn.Sequential(*[TwtygqyyBlock(c) for _ in range(num_blocks)])
        self.conv_mid = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn_mid = nn.BatchNorm2d(c)
        self.upscale4x = nn.Sequential(nn.Conv2d(c, 4 * c, 3, padding=1, bias=False), nn.PixelShuffle(2),
                                       nn.LeakyReLU(0.2), nn.Conv2d(c, 4 * c, 3, padding=1, bias=False),
                                       nn.PixelShuffle(2), nn.LeakyReLU(0.2))
        self.conv_output = nn.Conv2d(c, 3, 9, padding=4, bias=False)

    def forward(self, x):
        head = F.leaky_relu(self.conv_input(x), 0.2)
        trunk = self.bn_mid(self.conv_mid(self.residual(head))) + head
        return self.conv_output(self.upscale4x(trunk))


class TwtygqyyBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn2(self.conv2(F.leaky_relu(self.bn1(self.conv1(x)), 0.2))) + x


class BasicSRMSRResNet(nn.Module):
    """BasicSR's MSRResNet (archs/srresnet_arch.py): conv_first + LeakyReLU(0.1); body of ResidualBlockNoBN
    (identity + conv2(ReLU(conv1))); upconv1[/upconv2] + PixelShuffle + LeakyReLU; conv_hr + LeakyReLU;
    conv_last; plus the bilinearly upsampled input."""

    def __init__(self, num_feat: int, num_block: int, upscale: int):
        super().__init__()
        self.upscale = upscale
        self.conv_first = nn.Conv2d(3, num_feat, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        factor = 2 if upscale == 4 else upscale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * factor * factor, 3, padding=1)
        if upscale == 4:
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, padding=1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, x):
        def lrelu(v):
            return F.leaky_relu(v, 0.1)

        out = self.body(lrelu(self.conv_first(x)))
        factor = 2 if self.upscale == 4 else self.upscale
        out = lrelu(F.pixel_shuffle(self.upconv1(out), factor))
        if self.upscale == 4:
            out = lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact (archs/srvgg_arch.py): one ModuleList ``body`` = conv, act, num_conv ×
    (conv, act), conv to 3·upscale²; PixelShuffle(upscale); plus the nearest-upsampled input."""

    def __init__(self, num_feat: int, num_conv: int, upscale: int, act_type: str):
        super().__init__()
        self.upscale = upscale

        def act():
            return {"prelu": lambda: nn.PReLU(num_parameters=num_feat), "relu": nn.ReLU,
                    "leakyrelu": lambda: nn.LeakyReLU(0.1)}[act_type]()

        self.body = nn.ModuleList([nn.Conv2d(3, num_feat, 3, padding=1), act()])
        for _ in range(num_conv):
            self.body.extend([nn.Conv2d(num_feat, num_feat, 3, padding=1), act()])
        self.body.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, padding=1))

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.upscale) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def numpy_state(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def randomised(module: nn.Module, seed: int) -> nn.Module:
    """Random weights, BN statistics and PReLU slopes away from identity, output centred in [0, 1] so that
    a clamping original is compared where it does not clamp. Eval mode."""
    torch.manual_seed(seed)
    randomise_batchnorm_and_prelu(module, spread=0.3)
    last_conv = [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.mul_(0.5)
        if last_conv.bias is not None:
            last_conv.bias.add_(0.5)
    return module.eval()


def relative_error(got, reference) -> float:
    return float((got - reference).abs().max() / reference.abs().max())


def assert_detected_forward_equals(original: nn.Module, state: dict, expected_network, layout: str, **kwargs):
    detected = detect(state, **kwargs)
    assert detected.network == expected_network
    assert detected.source_layout == layout
    weights = weights_for(detected.network, detected.tensors, "detected")
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = original.double()(x)
        got = build_generator(weights).double()(x)
    if isinstance(original, LornatangSRResNet):  # its forward clamps to [0, 1]; the description does not
        got = got.clamp(0.0, 1.0)
        assert ((expected > 0) & (expected < 1)).double().mean() > 0.3  # compared where it does not clamp
    assert relative_error(got, expected) <= 1e-5


@pytest.mark.parametrize("num_rcb, channels, upscale", [(2, 8, 4), (1, 16, 2)])
def test_lornatang_srresnet_folds_batchnorm_and_broadcasts_prelu(num_rcb, channels, upscale):
    original = randomised(LornatangSRResNet(channels, num_rcb, upscale), seed=1)
    assert_detected_forward_equals(original, numpy_state(original), srresnet(num_rcb, channels, upscale),
                                   "Lornatang/SRGAN-PyTorch SRResNet, BatchNorm folded")


def test_lornatang_older_generator_names():
    original = randomised(LornatangSRResNet(8, 1, 4), seed=2)
    renamed = {"conv1": "conv_block1", "conv2": "conv_block2", "conv3": "conv_block3"}
    state = {}
    for key, value in numpy_state(original).items():
        head, rest = key.split(".", 1)
        state[f"{renamed.get(head, head)}.{rest}"] = value
    assert_detected_forward_equals(original, state, srresnet(1, 8, 4),
                                   "Lornatang/SRGAN-PyTorch Generator, BatchNorm folded")


def test_our_training_form_with_batchnorm_is_folded():
    network = srresnet(2, 8, 4)
    training = build_module(network, batch_norm=True)
    original = randomised(training, seed=4)
    state = numpy_state(original)
    assert "blocks.0.bn1.running_var" in state and "blocks.0.conv1.bias" not in state
    assert_detected_forward_equals(original, state, network, "srgan_fast srresnet, BatchNorm folded")


def test_our_folded_tensors_are_taken_as_they_are():
    weights = random_weights(srresnet(1, 8, 2), seed=5)
    detected = detect(weights.tensors)
    assert detected.network == weights.network and detected.source_layout == "srgan_fast srresnet"
    assert all(np.array_equal(detected.tensors[k], v) for k, v in weights.tensors.items())


def test_twtygqyy_batchnorm_form_with_fixed_leaky_slopes():
    original = randomised(TwtygqyySRResNet(8, 2), seed=6)
    assert_detected_forward_equals(original, numpy_state(original), srresnet(2, 8, 4),
                                   "twtygqyy/pytorch-SRResNet, BatchNorm folded")


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_basicsr_msrresnet_scale_from_its_upconv_layers(upscale):
    from srgan_fast.architecture import msrresnet

    original = randomised(BasicSRMSRResNet(8, 2, upscale), seed=7)
    assert_detected_forward_equals(original, numpy_state(original), msrresnet(2, 8, upscale), "BasicSR MSRResNet")


@pytest.mark.parametrize("upscale, act_type", [(2, "prelu"), (4, "prelu"), (4, "relu"), (2, "leakyrelu")])
def test_realesrgan_srvgg_compact(upscale, act_type):
    from srgan_fast.architecture import srvgg_compact

    original = randomised(SRVGGNetCompact(8, 3, upscale, act_type), seed=8)
    activation = None if act_type == "prelu" else act_type
    assert_detected_forward_equals(original, numpy_state(original), srvgg_compact(3, 8, upscale, act_type),
                                   "Real-ESRGAN SRVGGNetCompact", activation=activation)


def test_srvgg_without_slopes_asks_for_the_activation():
    state = numpy_state(SRVGGNetCompact(8, 1, 2, "relu"))
    with pytest.raises(WeightsError, match=r"^looks like a Real-ESRGAN SRVGGNetCompact state dict but cannot be "
                       r"represented: it has no PReLU slopes, .* pass activation='relu' or 'leakyrelu'"):
        detect(state)
    prelu = numpy_state(SRVGGNetCompact(8, 1, 2, "prelu"))
    with pytest.raises(WeightsError, match=r"has PReLU slopes \('body.1.weight'\), got activation='relu'"):
        detect(prelu, activation="relu")
    with pytest.raises(WeightsError, match=r"^activation must be one of prelu, leakyrelu, relu, got 'gelu'$"):
        detect(prelu, activation="gelu")
    with pytest.raises(WeightsError, match=r"activation='relu' applies to an SRVGGNetCompact without PReLU"):
        detect(numpy_state(BasicSRMSRResNet(8, 1, 4)), activation="relu")


def test_wrappers_prefer_params_ema_and_strip_module_prefixes():
    raw = numpy_state(BasicSRMSRResNet(8, 1, 4))
    ema = {k: v + 1.0 for k, v in raw.items()}
    detected = detect({"params": raw, "params_ema": ema})
    assert detected.source_layout == "BasicSR MSRResNet (params_ema)"
    assert np.array_equal(detected.tensors["conv_first.weight"], ema["conv_first.weight"])
    assert detect({"params": raw}).source_layout == "BasicSR MSRResNet (params)"
    parallel = {"state_dict": {f"module.{k}": v for k, v in raw.items()}, "epoch": 3}
    assert detect(parallel).source_layout == "BasicSR MSRResNet (state_dict, module.)"
    for wrapper in ("model", "generator", "netG"):
        assert detect({wrapper: raw}).source_layout == f"BasicSR MSRResNet ({wrapper})"
    compiled = {f"_orig_mod.{k}": v for k, v in raw.items()}
    assert detect(compiled).source_layout == "BasicSR MSRResNet (_orig_mod.)"


def test_unknown_state_dict_gets_one_line_naming_what_it_reads_and_what_did_not_match():
    state = {"encoder.weight": np.zeros((4, 3, 3, 3), np.float32), "encoder.bias": np.zeros(4, np.float32),
             "conv_first.weight": np.zeros((4, 3, 3, 3), np.float32), "decoder.weight": np.zeros(1, np.float32)}
    with pytest.raises(WeightsError) as info:
        detect(state)
    message = str(info.value)
    assert "\n" not in message
    assert message == ("not an srgan_fast generator file nor a state dict it can read (it reads srgan_fast srresnet, "
                       "Lornatang/SRGAN-PyTorch SRResNet, Lornatang/SRGAN-PyTorch Generator, "
                       "twtygqyy/pytorch-SRResNet, BasicSR MSRResNet, Real-ESRGAN SRVGGNetCompact, "
                       "BasicSR/Real-ESRGAN RRDBNet, ESRGAN RRDBNet): its keys begin "
                       "encoder.weight, encoder.bias, conv_first.weight, ...; the nearest layout, BasicSR MSRResNet, "
                       "lacks 'upconv1.weight'")
    with pytest.raises(WeightsError, match=r"^expected a state dict \(a mapping of tensor names to tensors\), "
                       r"got list$"):
        detect([np.zeros(3)])
    with pytest.raises(WeightsError, match=r"^not a state dict: it holds no arrays under params_ema$"):
        detect({"params_ema": {"step": 3}})


def test_a_recognised_layout_that_departs_says_where():
    state = numpy_state(BasicSRMSRResNet(8, 1, 2))
    state["upconv1.weight"] = np.zeros((40, 8, 3, 3), np.float32)
    state["upconv1.bias"] = np.zeros(40, np.float32)
    with pytest.raises(WeightsError, match=r"^looks like a BasicSR MSRResNet state dict but does not match it: "
                       r"'upconv1.weight' has 40 output channels, expected 32 \(x2\) or 72 \(x3\)$"):
        detect(state)
    extra = numpy_state(BasicSRMSRResNet(8, 1, 4)) | {"body.0.conv3.weight": np.zeros((8, 8, 3, 3), np.float32)}
    with pytest.raises(WeightsError, match=r"tensors this layout does not have: \['body.0.conv3.weight'\]"):
        detect(extra)
    gap = {k: v for k, v in numpy_state(BasicSRMSRResNet(8, 2, 4)).items() if not k.startswith("body.0.")}
    with pytest.raises(WeightsError, match=r"does not match it: it has no 'body.0.conv1.weight'$"):
        detect(gap)
    integers = {k: v.astype(np.int32) for k, v in numpy_state(BasicSRMSRResNet(8, 1, 4)).items()}
    with pytest.raises(WeightsError, match=r"'conv_first.weight' holds int32, expected floating point"):
        detect(integers)


def test_absurd_counts_are_refused_before_building():
    state = numpy_state(SRVGGNetCompact(4, 1, 2, "prelu"))
    state["body.9998.weight"] = state.pop("body.4.weight")
    state["body.9998.bias"] = state.pop("body.4.bias")
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"srvgg_compact: the block/conv count must be in 0..512, got 4998$"):
        detect(state)
    wide = {"body.0.weight": np.zeros((5000, 3, 3, 3), np.float32), "body.1.weight": np.zeros(5000, np.float32),
            "body.2.weight": np.zeros((12, 5000, 3, 3), np.float32)}
    with pytest.raises(WeightsError, match=r"channels must be in 1..1024, got 5000$"):
        detect(wide)
    assert time.perf_counter() - started < 1


def test_layouts_that_cannot_be_represented_are_refused_with_the_reason():
    leftthomas = {"block1.0.weight": np.zeros((8, 3, 9, 9), np.float32), "block1.1.weight": np.zeros(1, np.float32),
                  "block2.conv1.weight": np.zeros((8, 8, 3, 3), np.float32),
                  "block8.0.conv.weight": np.zeros((32, 8, 3, 3), np.float32)}
    with pytest.raises(WeightsError, match=r"^looks like a leftthomas/SRGAN Generator state dict but cannot be "
                       r"represented: its output is \(tanh\(x\) \+ 1\) / 2, .*no tanh output$"):
        detect(leftthomas)
    instance_norm = numpy_state(TwtygqyySRResNet(8, 1))
    for key in [k for k in instance_norm if ".bn" in k or "bn_mid" in k]:
        value = instance_norm.pop(key)
        if key.endswith((".weight", ".bias")):  # InstanceNorm2d(affine=True): no running statistics
            instance_norm[key.replace(".bn", ".in")] = value
    with pytest.raises(WeightsError, match=r"^looks like a twtygqyy/pytorch-SRResNet state dict but cannot be "
                       r"represented: it uses InstanceNorm, which normalises by each image's own statistics"):
        detect(instance_norm)
