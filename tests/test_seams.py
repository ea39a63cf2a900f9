"""Windows that give the untiled bits: margins from the kernels' output tiles (tiler/seams.py), windows on their
grid, and the native engine tiled == untiled bit for bit at every precision and path this CPU runs, in plans of
many windows."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import srgan_fast
from srgan_fast import Upscaler
from srgan_fast.architecture import msrresnet, rrdbnet, srresnet, srvgg_compact
from srgan_fast.tiler.plan import plan_axis
from srgan_fast.tiler.seams import SeamGeometry
from srgan_fast.weights import random_weights

NETWORKS = [srresnet(2, 8), srresnet(1, 16, scale=2), msrresnet(2, 8), srvgg_compact(3, 8, scale=3)]


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_kernels_without_tiles_need_the_receptive_radius(network):
    seams = SeamGeometry.of(network)
    radius = math.ceil(network.receptive_radius())
    assert (seams.grid, seams.before, seams.after_by_residue) == (1, radius, (radius,))


def test_a_chain_of_tiled_convs_moves_the_exact_front_a_whole_tile_per_conv():
    """srvgg_compact(2): four 3x3 convs at the input's resolution, the first direct, the others on 4-pixel
    tiles. From a window's start (on a tile edge) the exact front moves 1, then to the next tile edge each
    conv: 1 -> 4 -> 8 -> 12. From its end it depends on where the end falls in a tile: at an edge (length 0
    mod 4) 1 -> 4 -> 8 -> 12; two past one, 1 -> 2 (back to the edge) -> 6 -> 10."""
    seams = SeamGeometry.of(srvgg_compact(2, 8), (1, 4, 4, 4))
    assert (seams.grid, seams.before, seams.after_by_residue) == (4, 12, (12, 13, 10, 11))


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 1500), tile=st.integers(1, 400), grid=st.sampled_from([1, 2, 3, 4, 12]),
       before=st.integers(0, 60), data=st.data())
def test_windows_start_on_the_grid_and_keep_their_margins(length, tile, grid, before, data):
    after = tuple(data.draw(st.lists(st.integers(0, 60), min_size=grid, max_size=grid)))
    seams = SeamGeometry(grid, before, after)
    window, pieces = plan_axis(length, tile, seams)
    assert pieces[0].core_start == 0 and pieces[-1].core_stop == length
    assert all(a.core_stop == b.core_start for a, b in zip(pieces, pieces[1:]))
    for p in pieces:
        assert 0 <= p.window_start and p.window_start + window <= length
        assert p.window_start % grid == 0
        assert p.core_start - p.window_start >= before or p.window_start == 0
        assert p.window_start + window - p.core_stop >= seams.after(window) or p.window_start + window == length
    if len(pieces) > 1:
        assert window <= tile + before + seams.after(length) + 2 * (grid - 1) or window == length


def _photo(h: int, w: int) -> np.ndarray:
    photo = np.asarray(Image.open(Path(srgan_fast.__file__).parent / "samples" / "astronaut.png").convert("RGB"))
    return np.ascontiguousarray(np.tile(photo, (2, 2, 1))[:h, :w])


def _runnable(precision: str, path: str) -> str | None:
    from srgan_fast import _C

    cpu = _C.cpu_info()
    if path not in cpu[f"paths_{precision}"]:
        return f"this CPU runs {precision} on {cpu[f'paths_{precision}'] or 'no path'}, not {path}"
    return None


def _tiled_and_whole(model, image, precision, path, tile, **options):
    whole = Upscaler(model, backend="native", precision=precision, path=path, tile=100_000, **options)
    tiled = Upscaler(model, backend="native", precision=precision, path=path, tile=tile, **options)
    plan = tiled.plan(image.shape[:2])
    assert plan.num_windows > 1 and whole.plan(image.shape[:2]).num_windows == 1
    assert all(p.window_start % tiled.seams.grid == 0 for p in plan.rows + plan.cols)
    return tiled(image), whole(image), tiled


@pytest.mark.native
@pytest.mark.slow
@pytest.mark.parametrize("precision,path", [("int8", "avx512"), ("int8", "avx2"), ("bf16", "avx512"),
                                            ("int8", "amx"), ("bf16", "amx")])
def test_the_shipped_model_tiled_is_the_untiled_bits(precision, path, tmp_path, monkeypatch):
    """The case that showed seams (6-7 levels at int8, 2 at bf16, on a VNNI + bf16 CPU): many windows of
    24x20 cores on a photo crop, uint8 and uint16."""
    pytest.importorskip("srgan_fast._C")
    reason = _runnable(precision, path)
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path))
    image = _photo(96, 200)
    tiled, whole, upscaler = _tiled_and_whole("srresnet", image, precision, path, (24, 20))
    assert upscaler.plan(image.shape[:2]).num_windows >= 8
    assert np.array_equal(tiled, whole)
    low_bits = np.random.default_rng(1).integers(0, 256, (60, 200, 3), dtype=np.uint16)
    deep = image[:60].astype(np.uint16) * 256 + low_bits
    assert np.array_equal(upscaler(deep), Upscaler("srresnet", backend="native", precision=precision, path=path,
                                                   tile=100_000)(deep))


@pytest.mark.native
@pytest.mark.parametrize("path", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("network", [srresnet(2, 8), msrresnet(1, 8), srvgg_compact(2, 8, scale=3),
                                     rrdbnet(1, 16, 16)], ids=lambda n: n.architecture)
def test_fp32_windows_on_the_engine_tiles_give_the_untiled_bits(network, path):
    """fp32 keeps receptive-radius margins by default (native_backend.seam_tiles says why); with the engine's
    own tiles (F(4x4) convs, F(3x3) tail) the same geometry makes it exact too, on every path."""
    pytest.importorskip("srgan_fast._C")
    reason = _runnable("fp32", path)
    if reason:
        pytest.skip(reason)
    weights = random_weights(network, seed=3)
    seams = SeamGeometry.of(network, tuple(native_engine_tiles(weights, path)))
    # Full-height windows, four across: the axes are planned alike, and wide margins make many windows dear.
    tiled = Upscaler(weights, backend="native", path=path, tile=(40, seams.widest))
    tiled.seams = seams
    image = np.random.default_rng(4).integers(0, 256, (40, 3 * seams.widest + 29, 3), dtype=np.uint8)
    whole = Upscaler(weights, backend="native", path=path, tile=100_000)(image)
    plan = tiled.plan(image.shape[:2])
    assert plan.num_windows > 1 and all(p.window_start % tiled.seams.grid == 0 for p in plan.rows + plan.cols)
    assert np.array_equal(tiled(image), whole)


def native_engine_tiles(weights, path):
    from srgan_fast.backends.native_backend import NativeBackend

    return NativeBackend(weights, "cpu", "fp32", path=path).engine.seam_tiles


def test_an_unshuffled_input_puts_windows_on_even_pixels():
    """Real-ESRGAN x2 unshuffles the image by 2: a window starting on an odd pixel would pair other pixels than
    the whole image does. The grid is 2, and tiled equals untiled up to float rounding."""
    pytest.importorskip("torch")
    from srgan_fast.architecture import rrdbnet

    network = rrdbnet(1, 8, 4, scale=2)
    assert SeamGeometry.of(network).grid == 2
    weights = random_weights(network, seed=2)
    image = np.random.default_rng(5).integers(0, 256, (41, 187, 3), dtype=np.uint8)
    whole = Upscaler(weights, backend="torch", tile=100_000)(image)
    tiled = Upscaler(weights, backend="torch", tile=(41, 23))
    plan = tiled.plan(image.shape[:2])
    assert plan.num_windows > 2 and all(p.window_start % 2 == 0 for p in plan.cols)
    assert np.abs(tiled(image).astype(int) - whole).max() <= 1
