"""RRDBNet weights as users have them: BasicSR/Real-ESRGAN's keys (RealESRGAN_x4plus, _anime_6B, _x2plus, under
params_ema or params) and the original ESRGAN repository's (RRDB_ESRGAN_x4), detected from names and shapes;
near misses refused on one line naming what did not match; ``convert`` to safetensors and back.

The state dicts are random, at reduced size (a few blocks, 8-16 channels): real pretrained files were never
available here.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from srgan_fast.architecture import rrdbnet
from srgan_fast.weights import WeightsError, load_weights, random_weights
from srgan_fast.weights.convert import convert
from srgan_fast.weights.detect import detect

BASICSR = "BasicSR/Real-ESRGAN RRDBNet"
ESRGAN = "ESRGAN RRDBNet"
# (num_blocks, channels, growth, scale): x4 (23 blocks in the real files), x2 (unshuffled input), anime's 6 blocks.
VARIANTS = [(2, 16, 8, 4), (2, 16, 8, 2), (6, 8, 4, 4)]


def basicsr_state(params, seed=0):
    """Random tensors under BasicSR's names, which are the description's."""
    return dict(random_weights(rrdbnet(*params), seed).tensors)


def esrgan_name(name: str, num_blocks: int) -> str:
    """The original repository's name of a BasicSR tensor name."""
    module, kind = name.rsplit(".", 1)
    dense = re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)", module)
    if dense:
        block, rdb, conv = dense.groups()
        return f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0.{kind}"
    return {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_blocks}", "conv_up1": "model.3",
            "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}[module] + f".{kind}"


def esrgan_state(params, seed=0):
    return {esrgan_name(k, params[0]): v for k, v in basicsr_state(params, seed).items()}


@pytest.mark.parametrize("params", VARIANTS, ids=lambda p: "{}-{}-{}-x{}".format(*p))
@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_basicsr_layout_in_its_wrappers(params, wrapper):
    state = basicsr_state(params)
    detected = detect({wrapper: state, "params": {}} if wrapper == "params_ema" else {wrapper: state} if wrapper
                      else state)
    assert detected.network == rrdbnet(*params)
    assert detected.source_layout == BASICSR + (f" ({wrapper})" if wrapper else "")
    assert detected.tensors.keys() == state.keys()
    assert all(np.array_equal(detected.tensors[k], state[k]) for k in state)


@pytest.mark.parametrize("params", [(2, 16, 8, 4), (6, 8, 4, 4)], ids=["x4", "6-blocks"])
def test_original_esrgan_layout(params):
    detected = detect(esrgan_state(params))
    assert detected.network == rrdbnet(*params)
    assert detected.source_layout == ESRGAN
    state = basicsr_state(params)
    assert all(np.array_equal(detected.tensors[k], state[k]) for k in state)


def drop(state, prefix):
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


def reshaped(state, key, shape):
    return {**state, key: np.zeros(shape, np.float32)}


NEAR_MISSES = [
    # a middle block missing: the block count comes from the highest index, so its keys are missed
    (BASICSR, drop(basicsr_state((3, 16, 8, 4)), "body.1."), "it has no 'body.1.rdb1.conv1.weight'"),
    (ESRGAN, drop(esrgan_state((3, 16, 8, 4)), "model.1.sub.1."), "it has no 'model.1.sub.1.RDB1.conv1.0.weight'"),
    # the last block missing in ESRGAN's layout: conv_body then sits one index past where the blocks end
    (ESRGAN, drop(esrgan_state((3, 16, 8, 4)), "model.1.sub.2."), "it has no 'model.1.sub.2.weight'"),
    # one dense conv of another growth than the first's
    (BASICSR, reshaped(basicsr_state((2, 16, 8, 4)), "body.1.rdb2.conv3.weight", (4, 32, 3, 3)),
     "'body.1.rdb2.conv3.weight' has shape (4, 32, 3, 3), expected (8, 32, 3, 3)"),
    (ESRGAN, reshaped(esrgan_state((2, 16, 8, 4)), "model.1.sub.0.RDB1.conv5.0.weight", (16, 44, 3, 3)),
     "'model.1.sub.0.RDB1.conv5.0.weight' has shape (16, 44, 3, 3), expected (16, 48, 3, 3)"),
    # x1 (the input unshuffled by 4) is not one of the scales
    (BASICSR, reshaped(basicsr_state((1, 16, 8, 4)), "conv_first.weight", (16, 48, 3, 3)),
     "'conv_first.weight' reads 48 channels, expected 3 (x4) or 12 (x2, the input pixel-unshuffled by 2)"),
    # a tensor no RRDBNet has
    (BASICSR, {**basicsr_state((1, 16, 8, 4)), "body.0.rdb1.conv6.weight": np.zeros((8, 48, 3, 3), np.float32)},
     "it has tensors this layout does not have: ['body.0.rdb1.conv6.weight']"),
]


@pytest.mark.parametrize("layout, state, reason", NEAR_MISSES,
                         ids=["missing-block", "esrgan-missing-block", "esrgan-missing-last-block", "wrong-growth",
                              "esrgan-wrong-growth", "x1", "extra-conv"])
def test_near_misses_are_refused_on_one_line_naming_what_did_not_match(layout, state, reason):
    with pytest.raises(WeightsError) as refused:
        detect(state)
    assert str(refused.value) == f"looks like a {layout} state dict but does not match it: {reason}"


def test_convert_writes_safetensors_that_load_to_the_same_network(tmp_path):
    torch = pytest.importorskip("torch")
    params = (2, 8, 4, 2)
    state = basicsr_state(params)
    checkpoint = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": {k: torch.from_numpy(v) for k, v in state.items()}}, checkpoint)
    from_pth = load_weights(checkpoint)
    assert from_pth.describe() == ("rrdbnet(num_blocks=2, channels=8, growth=4, scale=2), from "
                                   f"{BASICSR} (params_ema)")
    converted = load_weights(convert(checkpoint, tmp_path / "x2.safetensors"))
    assert converted.network == rrdbnet(*params) and converted.scale == 2
    assert converted.metadata["architecture"] == "rrdbnet"
    assert converted.metadata["detected_from"] == f"{BASICSR} (params_ema)"
    assert converted.sha256 == from_pth.sha256
    assert all(np.array_equal(converted.tensors[k], state[k]) for k in state)


def test_original_esrgan_pth_converts_too(tmp_path):
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save({k: torch.from_numpy(v) for k, v in esrgan_state((1, 8, 4, 4)).items()}, checkpoint)
    converted = load_weights(convert(checkpoint, tmp_path / "esrgan.safetensors"))
    assert converted.describe() == f"rrdbnet(num_blocks=1, channels=8, growth=4, scale=4), from {ESRGAN}"


class NotATensor:
    pass


def test_a_pth_that_would_run_code_is_refused_as_before(tmp_path):
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "RealESRGAN_x4plus.pth"
    state = {k: torch.from_numpy(v) for k, v in basicsr_state((1, 8, 4, 4)).items()}
    torch.save({"params_ema": state, "extra": NotATensor()}, checkpoint)
    with pytest.raises(WeightsError, match=r"refused to unpickle it \(it references "
                                           r"test_rrdbnet_weights\.NotATensor\): only tensors and plain containers "
                                           r"load, never pickled objects or code$"):
        load_weights(checkpoint)
