"""Seam-free tiling: tiled results equal untiled ones, plans cover the image exactly, tiles stay bounded."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import random_generator_weights
from srgan_fast.api import Upscaler
from srgan_fast.tiler.plan import MIN_TILE, auto_tile, plan_axis, plan_tiles
from srgan_fast.tiler.seams import SeamGeometry

WEIGHTS = random_generator_weights(num_blocks=2, channels=8)


def _untiled_and_tiled(image, tile, weights=WEIGHTS):
    whole = Upscaler(weights, backend="torch", device="cpu", tile=10_000)
    tiled = Upscaler(weights, backend="torch", device="cpu", tile=tile, batch_size=3)
    assert whole.plan(image.shape[:2]).num_windows == 1
    return whole(image), tiled(image), tiled.plan(image.shape[:2])


# Tiny tiles on big images cost (tile + 2·halo)² / tile² each: keep those to small images.
sizes_and_tiles = st.one_of(
    st.tuples(st.integers(1, 300), st.integers(1, 300), st.sampled_from([16, 33, 64, 128])),
    st.tuples(st.integers(1, 60), st.integers(1, 60), st.sampled_from([1, 2, 7])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size_tile=sizes_and_tiles, seed=st.integers(0, 2**31))
@pytest.mark.slow
def test_tiled_equals_untiled_uint8(size_tile, seed):
    h, w, tile = size_tile
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    whole, tiled, _ = _untiled_and_tiled(image, tile)
    diff = np.abs(whole.astype(np.int16) - tiled)
    assert diff.max() <= 1 and diff.mean() < 0.01


@pytest.mark.slow
def test_tiled_equals_untiled_float_at_full_depth():
    """16 blocks: the real network's 40-pixel halo, on a float image (differences are float rounding only)."""
    weights = random_generator_weights(num_blocks=16, channels=4, seed=3)
    image = np.random.default_rng(1).random((150, 131, 3), dtype=np.float32)
    whole, tiled, plan = _untiled_and_tiled(image, 24, weights)
    assert plan.seams.before == 40 and plan.num_windows > 4
    assert np.abs(whole - tiled).max() < 1e-5


@given(length_h=st.integers(1, 2000), length_w=st.integers(1, 2000), tile=st.integers(1, 600),
       halo=st.integers(0, 50))
def test_plan_cores_partition_the_image_with_enough_halo(length_h, length_w, tile, halo):
    plan = plan_tiles((length_h, length_w), tile, SeamGeometry.plain(halo))
    for pieces, length, window in ((plan.rows, length_h, plan.window_hw[0]), (plan.cols, length_w, plan.window_hw[1])):
        assert pieces[0].core_start == 0 and pieces[-1].core_stop == length
        for a, b in zip(pieces, pieces[1:]):
            assert a.core_stop == b.core_start
        for p in pieces:
            assert 0 <= p.window_start and p.window_start + window <= length
            assert p.core_start - p.window_start >= halo or p.window_start == 0
            assert p.window_start + window - p.core_stop >= halo or p.window_start + window == length
        assert window <= max(tile + 2 * halo, 1) or len(pieces) == 1


def per_pixel(bytes_per_pixel: int):
    """A window cost of so many bytes per pixel, whatever its size."""
    return lambda height, width: height * width * bytes_per_pixel


def test_auto_tile_respects_the_memory_budget():
    seams, bpp, budget = SeamGeometry.plain(40), 10_000, 1 << 30
    for size in [(64, 64), (512, 512), (1080, 1920), (4000, 3000)]:
        plan = plan_tiles(size, auto_tile(size, seams, per_pixel(bpp), budget), seams)
        assert plan.window_hw[0] * plan.window_hw[1] * bpp <= budget
    small = plan_tiles((200, 300), auto_tile((200, 300), seams, per_pixel(bpp), budget), seams)
    assert small.num_windows == 1 and small.overhead == 1.0


seam_geometries = st.one_of(
    st.builds(SeamGeometry.plain, st.integers(0, 40)),
    st.builds(lambda before, after: SeamGeometry(12, before, tuple(after)), st.integers(0, 40),
              st.lists(st.integers(0, 40), min_size=12, max_size=12)))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), seam_geometries, st.integers(40 * 40, 300 * 300))
def test_auto_tile_finds_the_cheapest_plan_that_fits(height, width, seams, max_pixels):
    """Against a search over every pair of even splits: nothing that fits computes fewer pixels."""
    plan = plan_tiles((height, width), auto_tile((height, width), seams, per_pixel(1), max_pixels), seams)

    def splits(length):  # (window length, window count) for every core size auto_tile may use
        cores = range(min(MIN_TILE, length), length + 1)
        return {(window, len(pieces)) for window, pieces in (plan_axis(length, t, seams) for t in cores)}

    fitting = [nh * nw * wh * ww for wh, nh in splits(height) for ww, nw in splits(width) if wh * ww <= max_pixels]
    if fitting:
        assert plan.window_hw[0] * plan.window_hw[1] <= max_pixels
        assert plan.num_windows * plan.window_hw[0] * plan.window_hw[1] == min(fitting)


def test_auto_tile_uses_long_windows_where_they_cut_the_halo_cost():
    # A 1920×1080 frame on the CPU budget: square 468² cores would need 12 windows (overhead 1.43).
    seams, max_pixels = SeamGeometry.plain(40), 440_000
    plan = plan_tiles((1080, 1920), auto_tile((1080, 1920), seams, per_pixel(1), max_pixels), seams)
    assert plan.window_hw[0] * plan.window_hw[1] <= max_pixels
    assert plan.overhead < 1.3


def test_plan_rejects_nonpositive_tiles():
    with pytest.raises(ValueError, match="tile size must be positive, got 0"):
        plan_tiles((10, 10), 0, SeamGeometry.plain(4))


def test_windows_fit_the_budget_by_the_backends_own_measure():
    """The native backend's window cost is its engine's workspace at that size (not a per-pixel constant from
    a small tile): large images take fewer, larger windows, each within the budget."""
    pytest.importorskip("srgan_fast._C")
    upscaler = Upscaler("srresnet", backend="native", threads=2)
    for hw in [(720, 1280), (1080, 1920), (2160, 3840)]:
        plan = upscaler.plan(hw)
        assert upscaler.backend.window_bytes(*plan.window_hw) <= upscaler.memory_budget
    assert upscaler.plan((720, 1280)).num_windows == 1  # 3 windows when 64x64 tiles set the cost per pixel



def test_a_plan_computing_many_times_the_pixels_says_which_budget_avoids_it(caplog):
    """A budget far below what the image needs: the planner keeps to it, and says what it costs and the budget
    that runs the image in one window; a budget that fits says nothing."""
    pytest.importorskip("srgan_fast._C")
    from srgan_fast.options import format_bytes

    weights = random_generator_weights(num_blocks=1, channels=16, seed=4)
    small = Upscaler(weights, backend="native", precision="fp32", threads=1, memory_budget="12M")
    with caplog.at_level("WARNING", logger="srgan_fast"):
        plan = small.plan((400, 600))
    assert plan.overhead > 2
    one_window = format_bytes(small.backend.window_bytes(400, 600))
    margin = small.seams.before
    assert [r.getMessage() for r in caplog.records] == [
        f"srgan_fast: srresnet at 400x600 is planned as {plan.num_windows} windows computing {plan.overhead:.1f}x "
        f"its pixels within memory_budget 12.0 MiB (seam-free windows need {margin}-pixel margins); one window needs "
        f"{one_window}: a memory_budget that large runs it in one"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="srgan_fast"):
        assert Upscaler(weights, backend="native", threads=1).plan((400, 600)).num_windows == 1
    assert not caplog.records
    # A budget below even the smallest window that holds a core between the margins: said, not hidden.
    tiny = Upscaler(weights, backend="native", threads=1, memory_budget="64k")
    with caplog.at_level("WARNING", logger="srgan_fast"):
        plan = tiny.plan((400, 600))
    window = format_bytes(tiny.backend.window_bytes(*plan.window_hw))
    assert [r.getMessage() for r in caplog.records] == [
        f"srgan_fast: srresnet at 400x600 needs {window} per window, over memory_budget 64.0 KiB: seam-free windows "
        f"need {tiny.seams.before}-pixel margins, so no smaller window holds a core"]
