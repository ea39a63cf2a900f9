"""The SRGAN networks: the paper's shapes, BN folding, training checkpoints, and the receptive radius the
tiler relies on (other architectures: test_architectures.py)."""
import math
from pathlib import Path

import pytest
import torch
from conftest import randomise_batchnorm_and_prelu

from srgan_fast.architecture import srresnet
from srgan_fast.reference.model import Discriminator, Generator, fold_batchnorm

CHECKPOINTS = Path(__file__).resolve().parents[1] / "training" / "checkpoints"


def test_generator_shapes_and_parameter_count():
    g = Generator()
    x = torch.rand(2, 3, 11, 7)
    assert g(x).shape == (2, 3, 44, 28)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    # head, 16 blocks × 2, trunk, 2 upsampling, tail
    assert len(convs) == 1 + 32 + 1 + 2 + 1
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert g.network == srresnet(16, 64) and (g.num_blocks, g.channels) == (16, 64)


def test_generator_tensors_are_the_descriptions():
    """Training form: BN under the description's names and no conv bias before it; inference form: exactly
    the description's tensors, so exported weights files and the engines agree on every name."""
    training = Generator(2, 8, batch_norm=True)
    keys = set(training.state_dict())
    assert {"blocks.1.bn2.running_var", "trunk_bn.weight", "head_prelu.weight"} <= keys
    assert "blocks.0.conv1.bias" not in keys and "trunk_conv.bias" not in keys
    folded = fold_batchnorm(training.eval())
    assert type(folded) is Generator and folded.num_blocks == 2
    shapes = {k: tuple(v.shape) for k, v in folded.state_dict().items()}
    assert shapes == srresnet(2, 8).tensor_shapes()


@pytest.mark.slow
def test_training_checkpoint_resumes_and_folds():
    """A checkpoint of the hand-written SRResNet: modules by name, and Adam's moments by parameter order."""
    from training.checkpoint import load_checkpoint, read_checkpoint_meta

    path = next(iter(sorted(CHECKPOINTS.glob("*.safetensors"))), None)
    if path is None:
        pytest.skip(f"no training checkpoint in {CHECKPOINTS}")
    config = read_checkpoint_meta(path)["config"]
    generator = Generator(config["num_blocks"], config["channels"], config.get("batch_norm", True))
    optimizer = torch.optim.Adam(generator.parameters())
    load_checkpoint(path, {"generator": generator}, {"generator": optimizer})
    assert all(optimizer.state[p]["exp_avg"].shape == p.shape for p in generator.parameters())
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        ref = generator.eval().double()(x.double())
        out = fold_batchnorm(generator.float())(x)
    assert (out.double() - ref).abs().max() / ref.abs().max() < 1e-5


@pytest.mark.parametrize("blocks,channels", [(1, 4), (3, 16)])
def test_folded_generator_equals_eval_mode(blocks, channels):
    torch.manual_seed(blocks)
    g = Generator(blocks, channels)
    randomise_batchnorm_and_prelu(g, spread=0.5)
    g.eval()
    folded = fold_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 13, 9)
    with torch.no_grad():
        ref = g.double()(x.double())
        out = folded(x)
    err = (out.double() - ref).abs().max() / ref.abs().max()
    assert err < 1e-5, f"folded model differs by {err:.2e} relative"


def test_discriminator_accepts_paper_crops_and_other_sizes():
    d = Discriminator()
    assert d(torch.rand(3, 3, 96, 96)).shape == (3,)
    assert d(torch.rand(2, 3, 130, 72)).shape == (2,)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 7


@pytest.mark.parametrize("blocks", [0, 2])
def test_receptive_radius_matches_the_network(blocks):
    """Perturb one input pixel: outputs change exactly within the radius the tiler uses as halo."""
    torch.manual_seed(0)
    g = fold_batchnorm(Generator(blocks, 4).eval()).double()
    scale, radius = g.network.scale, g.network.receptive_radius()
    size, centre = 41, 20
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    y = x.clone()
    y[0, :, centre, centre] += 1.0
    with torch.no_grad():
        changed = (g(x) - g(y)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    # HR pixels changed beyond the perturbed pixel's own footprint
    reach = max(scale * centre - int(rows.min()), int(rows.max()) - (scale * centre + scale - 1))
    assert math.ceil(reach / scale) == math.ceil(radius)
    assert srresnet(16).receptive_radius() == pytest.approx(39.5)
