"""Self-ensemble: the mean of the 8 transformed runs, computed here through the torch reference; alpha, gray
and tiling as without it."""
from __future__ import annotations

import numpy as np
import pytest

from srgan_fast import Upscaler
from srgan_fast.architecture import srvgg_compact
from srgan_fast.tiler.ensemble import TRANSFORMS, forward, inverse
from srgan_fast.weights import random_weights

torch = pytest.importorskip("torch")
NETWORKS = {"srresnet": None, "srvgg_compact": srvgg_compact(2, 8)}


def _weights(name):
    from conftest import random_generator_weights

    return random_generator_weights(1, 8, seed=4) if NETWORKS[name] is None else random_weights(NETWORKS[name], 4)


def torch_tta(weights, image: np.ndarray) -> np.ndarray:
    """Mean over the 8 flips/rotations of the float64 reference, each clamped, brought back; [0, 1]."""
    from srgan_fast.backends.torch_backend import build_generator

    model = build_generator(weights).double()
    unit = image.astype(np.float64) / 255.0
    runs = []
    for transpose, turns in TRANSFORMS:
        x = torch.from_numpy(np.ascontiguousarray(forward(unit, transpose, turns))).permute(2, 0, 1)[None]
        with torch.no_grad():
            y = model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        runs.append(inverse(y, transpose, turns))
    return np.mean(runs, axis=0)


def test_the_transforms_are_the_eight_symmetries_of_the_square_and_invert():
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    seen = {forward(image, t, k).tobytes() + bytes(forward(image, t, k).shape) for t, k in TRANSFORMS}
    assert len(seen) == 8
    for t, k in TRANSFORMS:
        assert np.array_equal(inverse(forward(image, t, k), t, k), image)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("tile", [None, 8])
def test_tta_equals_the_mean_of_the_eight_reference_runs(name, tile):
    weights = _weights(name)
    image = np.random.default_rng(5).integers(0, 256, (13, 18, 3), dtype=np.uint8)
    fp32 = dict(backend="native", device="cpu", precision="fp32")  # the default is bf16 on AMX tiles
    out = Upscaler(weights, tta=True, tile=tile, **fp32)(image).astype(np.float64)
    expected = np.round(torch_tta(weights, image) * 255)
    assert np.abs(out - expected).max() <= 1 and np.mean(out != expected) < 0.01
    single = Upscaler(weights, **fp32)(image).astype(np.float64)
    assert np.mean(np.abs(out - single)) > 0.1  # the ensemble really differs from one run


def test_alpha_and_gray_as_without_tta():
    weights = _weights("srresnet")
    rng = np.random.default_rng(6)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    plain, ensemble = Upscaler(weights, device="cpu"), Upscaler(weights, device="cpu", tta=True)
    assert np.array_equal(ensemble(rgba)[..., 3], plain(rgba)[..., 3])
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint16)
    assert ensemble(gray).shape == (36, 44) and ensemble(gray).dtype == np.uint16
