"""The reference networks: the paper's shapes, BN folding, and the receptive radius the tiler relies on."""
import math

import pytest
import torch
from conftest import randomise_batchnorm_and_prelu

from srgan_fast.architecture import receptive_radius
from srgan_fast.model import Discriminator, Generator, fold_batchnorm


def test_generator_shapes_and_parameter_count():
    g = Generator()
    x = torch.rand(2, 3, 11, 7)
    assert g(x).shape == (2, 3, 44, 28)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    # head, 16 blocks × 2, trunk, 2 upsampling, tail
    assert len(convs) == 1 + 32 + 1 + 2 + 1
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == 2


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
    size, centre = 41, 20
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    y = x.clone()
    y[0, :, centre, centre] += 1.0
    with torch.no_grad():
        changed = (g(x) - g(y)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    reach = max(4 * centre - int(rows.min()), int(rows.max()) - (4 * centre + 3))  # HR pixels beyond the footprint
    assert math.ceil(reach / 4) == math.ceil(receptive_radius(blocks))
    assert receptive_radius(16) == pytest.approx(39.5)
