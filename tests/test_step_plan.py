"""The step plan both engines walk (csrc/engine/step_plan.h): the CPU engine's and the CUDA engine's plans are
made and checked here on any machine. Each plan is run by an interpreter that keeps every map only in the
buffer the plan gives it (a dense block's inputs as channel ranges of one buffer, residual adds in place),
so a buffer reused while a map in it is still to be read, or a concatenation laid out wrong, changes the
result by the size of the values; it must equal the description's torch module to float32 rounding (the fixed
LeakyReLU slopes reach the engines as float32)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srgan_fast.architecture import msrresnet, rrdbnet, srresnet, srvgg_compact
from srgan_fast.backends.base import engine_layers
from srgan_fast.reference.ops import conv_epilogue, conv_prologue, image_skip
from srgan_fast.weights import random_weights

pytestmark = pytest.mark.native

NETWORKS = {
    "srresnet": srresnet(3, 16),
    "srresnet-x2": srresnet(2, 16, scale=2),
    "msrresnet": msrresnet(3, 16),
    "msrresnet-x2": msrresnet(2, 16, scale=2),
    "srvgg_compact": srvgg_compact(3, 16),
    "srvgg_compact-x2-relu": srvgg_compact(2, 16, scale=2, activation="relu"),
}


def _C():
    from srgan_fast import _C

    return _C


def cpu_plan(weights, precision="fp32"):
    network = weights.network
    engine = _C().Engine(engine_layers(weights), network.scale, network.image_skip or "none", precision=precision,
                         tail_band_rows=0, threads=1)
    return engine.plan


def cuda_plan(weights, precision="fp16", fuse_residual_blocks=False):
    network = weights.network
    return _C().cuda_step_plan(engine_layers(weights), network.scale, network.image_skip or "none", precision,
                               fuse_residual_blocks)


def run_plan(plan, weights, image: torch.Tensor) -> torch.Tensor:
    """The network on image [1, 3, h, w] in float64, every map read from and written to its planned buffer."""
    records = engine_layers(weights)
    h, w = image.shape[2:]
    buffers = [torch.full((1, b["channels"], b["level"] * h, b["level"] * w), float("nan"), dtype=torch.float64)
               for b in plan["buffers"]]
    maps = plan["maps"]

    def view(m: int, channels: int) -> torch.Tensor:
        info = maps[m]
        start = info["offset"] if info["group"] >= 0 else 0
        return buffers[info["buffer"]][:, start:start + channels]

    result = None
    for step in plan["steps"]:
        assert step["kind"] in ("head", "conv", "tail"), step  # float plans have no int8 steps
        r = records[step["layer"]]
        # A conv reading a concatenation reads its first source's channel range, as wide as all its inputs.
        x = image if step["source"] < 0 else view(step["source"], r["in_channels"])
        x = conv_prologue([x], upsample=r["upsample"])
        slopes = None if r["slopes"] is None else torch.from_numpy(np.asarray(r["slopes"], np.float64))
        channels = r["out_channels"] // r["shuffle"] ** 2
        residual = None if step["residual"] < 0 else view(step["residual"], channels).clone()
        outer = None if step["outer"] < 0 else view(step["outer"], channels).clone()
        # The last conv before the image store writes its map unshuffled; the store shuffles.
        shuffle = 1 if step["layer"] == len(records) - 1 and plan["output_shuffle"] else r["shuffle"]
        y = conv_epilogue(x, torch.from_numpy(np.asarray(r["weight"], np.float64)),
                          torch.from_numpy(np.asarray(r["bias"], np.float64)), shuffle=shuffle, slopes=slopes,
                          residual=residual, residual_scale=r["residual_scale"], outer_residual=outer, outer_residual_scale=r["outer_residual_scale"])
        if step["output"] < 0:
            result = y
        else:
            view(step["output"], y.shape[1])[:] = y
    if plan["output_shuffle"]:
        last = len(maps) - 1
        features = view(last, records[last]["out_channels"])
        result = torch.nn.functional.pixel_shuffle(features, plan["output_shuffle"])
        if weights.network.image_skip:
            result = result + image_skip(image, weights.network.scale, weights.network.image_skip)
    return result


def torch_reference(weights, image: torch.Tensor) -> torch.Tensor:
    from srgan_fast.backends.torch_backend import build_generator

    with torch.no_grad():
        return build_generator(weights).to(torch.float64)(image)


def _image(h, w, seed):
    return torch.from_numpy(np.random.default_rng(seed).random((1, 3, h, w)))


def _steps(plan):
    return [(s["kind"], s["layer"], s["source"], s["residual"], s["outer"], s["output"]) for s in plan["steps"]]


def _sharing(plan, maps):
    """Which of `maps` share a buffer: for each, the first of them in the same buffer."""
    buffer_of = [plan["maps"][m]["buffer"] for m in maps]
    return [maps[buffer_of.index(b)] for b in buffer_of]


@pytest.mark.parametrize("name", list(NETWORKS) + ["rrdbnet", "rrdbnet-x2"])
def test_the_cpu_plan_keeps_every_map_alive_until_its_last_reader(name):
    network = {"rrdbnet": rrdbnet(2, 16, 16), "rrdbnet-x2": rrdbnet(1, 16, 16, scale=2)}.get(name) or NETWORKS[name]
    weights = random_weights(network, seed=5)
    if network.layers[0].unshuffle > 1:
        pytest.skip("the engine reads the image unshuffled by the caller; the interpreter reads RGB")
    plan = cpu_plan(weights)
    assert len(plan["buffers"]) < len(plan["maps"])  # buffers are reused: the check below has something to see
    image = _image(9, 11, seed=1)
    with torch.no_grad():
        np.testing.assert_allclose(run_plan(plan, weights, image), torch_reference(weights, image), rtol=0, atol=1e-6)


def test_a_reused_buffer_is_seen_by_the_interpreter():
    """The check above can fail: the same plan with two live maps put in one buffer gives another result."""
    weights = random_weights(NETWORKS["srresnet"], seed=5)
    plan = cpu_plan(weights)
    image = _image(9, 11, seed=1)
    head, first_block_input = plan["maps"][0], plan["maps"][1]
    head["buffer"] = first_block_input["buffer"]  # the head's map is read again by the trunk's long skip
    with torch.no_grad():
        assert not torch.allclose(run_plan(plan, weights, image), torch_reference(weights, image))


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_the_cuda_plan_is_the_cpu_plan_in_16_bit_storage(name, precision):
    """Same steps, same maps sharing the same buffers at the same resolutions; the maps inside the network in
    16-bit storage on CUDA, and the last conv's map (before the image store) float32 on both."""
    weights = random_weights(NETWORKS[name], seed=5)
    cpu, cuda = cpu_plan(weights), cuda_plan(weights, precision)
    assert _steps(cuda) == _steps(cpu)
    assert cuda["output_shuffle"] == cpu["output_shuffle"]
    stored = [m for m, info in enumerate(cuda["maps"]) if info["stored"] and info["storage"] != "f32"]
    assert stored and _sharing(cuda, stored) == _sharing(cpu, stored)
    for m in stored:
        assert cuda["maps"][m]["storage"] == {"fp16": "f16", "bf16": "bf16"}[precision]
        mine, theirs = cuda["buffers"][cuda["maps"][m]["buffer"]], cpu["buffers"][cpu["maps"][m]["buffer"]]
        assert (mine["level"], mine["channels"]) == (theirs["level"], theirs["channels"])
    if cuda["output_shuffle"]:
        last = cuda["maps"][-1]
        assert last["storage"] == "f32" and last["channels"] == weights.network.layers[-1].out_channels
    image = _image(7, 10, seed=2)
    with torch.no_grad():
        np.testing.assert_allclose(run_plan(cuda, weights, image), torch_reference(weights, image), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["srresnet", "msrresnet"])
def test_with_fused_blocks_no_residual_add_writes_over_the_block_input(name):
    """The fused residual block reads its input's neighbours while it writes its output: another buffer."""
    weights = random_weights(NETWORKS[name], seed=5)
    fused, plain = cuda_plan(weights, fuse_residual_blocks=True), cuda_plan(weights)
    assert _steps(fused) == _steps(plain)
    for step in fused["steps"]:
        if step["residual"] >= 0:
            assert fused["maps"][step["output"]]["buffer"] != fused["maps"][step["residual"]]["buffer"], step
    in_place = [s for s in plain["steps"] if s["residual"] >= 0
                and plain["maps"][s["output"]]["buffer"] == plain["maps"][s["residual"]]["buffer"]]
    assert in_place  # without fusion the adds do write in place
    image = _image(6, 5, seed=3)
    with torch.no_grad():
        np.testing.assert_allclose(run_plan(fused, weights, image), torch_reference(weights, image), rtol=0, atol=1e-6)


@pytest.mark.parametrize("network, message", [
    (rrdbnet(1, 16, 16), "the CUDA engine cannot run layer 2 'body.0.rdb1.conv2': it reads a concatenation "
                         "(a dense connection)"),
    (msrresnet(1, 16, scale=3), "the CUDA engine cannot run layer 3 'upconv1': inside the network the CUDA kernels "
                                "pixel-shuffle by 2 only, without a residual after it, got x3"),
    (srresnet(1, 8), "the CUDA engine cannot run layer 0 'head': its output has 8 channels; the CUDA kernels "
                     "store multiples of 16"),
])
def test_what_the_cuda_kernels_cannot_run_is_refused_by_layer(network, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cuda_plan(random_weights(network, seed=1))
