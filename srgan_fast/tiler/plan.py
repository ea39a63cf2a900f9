"""Seam-free tiling: any image size at a memory cost bounded by the tile, with the untiled result.

Every window (the piece the network runs on) has one shape, so backends with fixed shapes (CUDA graphs,
TensorRT) build once. Each window carries a margin on every side that is not the image border, and only its
core is kept; the cores partition the image. The margins (``seams.SeamGeometry``) are at least the network's
receptive radius, so an output pixel of a core sees exactly the input it sees in the untiled network: real
pixels inside the image and the same zero padding beyond the image border (a window side that lies on the
border pads there, like the whole image does). Where the backend declares the output tiles its kernels
compute as one, windows also start on those tiles and the margins cover how far a tile's rounding reaches:
then tiled and untiled results are the same bits.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

from srgan_fast.tiler.seams import SeamGeometry

MIN_TILE = 16


@dataclass(frozen=True)
class AxisPiece:
    window_start: int  # first input row/column of the window
    core_start: int  # first input row/column kept from this window
    core_stop: int  # one past the last row/column kept


@dataclass(frozen=True)
class TilePlan:
    image_hw: tuple[int, int]
    window_hw: tuple[int, int]  # every window has this shape
    seams: SeamGeometry
    rows: tuple[AxisPiece, ...]
    cols: tuple[AxisPiece, ...]

    @property
    def num_windows(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def overhead(self) -> float:
        """Input pixels the network computes per image pixel (1.0 = no tiling cost)."""
        computed = self.num_windows * self.window_hw[0] * self.window_hw[1]
        return computed / (self.image_hw[0] * self.image_hw[1])

    def windows(self, scale: int):
        """(input window slices, output slices of the kept core in the window, output slices in the image),
        the output ones for a network that upscales ×``scale``."""
        for r in self.rows:
            for c in self.cols:
                window = (slice(r.window_start, r.window_start + self.window_hw[0]),
                          slice(c.window_start, c.window_start + self.window_hw[1]))
                in_window = (slice(scale * (r.core_start - r.window_start), scale * (r.core_stop - r.window_start)),
                             slice(scale * (c.core_start - c.window_start), scale * (c.core_stop - c.window_start)))
                in_image = (slice(scale * r.core_start, scale * r.core_stop),
                            slice(scale * c.core_start, scale * c.core_stop))
                yield window, in_window, in_image


def plan_axis(length: int, tile: int, seams: SeamGeometry) -> tuple[int, tuple[AxisPiece, ...]]:
    """Split one axis into cores of at most ``tile`` pixels; returns (window length, pieces)."""
    grid, before = seams.grid, seams.before
    if length <= tile + before + seams.after(length):
        return length, (AxisPiece(0, 0, length),)
    count = math.ceil(length / tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    # Every window starts on the grid, the last one at length - window: so window = length (mod grid), which
    # also fixes where each window ends relative to the tiles, and so the margin after its core.
    after = seams.after(length)
    window = max(b - a for a, b in zip(bounds, bounds[1:])) + before + after + grid - 1
    window = min(window + (length - window) % grid, length)
    pieces = []
    for start, stop in zip(bounds, bounds[1:]):
        # The last grid line at least `before` ahead of the core, then slid inside the image: a side that then
        # lies on the border needs no margin there, and the other side only gains context.
        window_start = min(max((start - before) // grid * grid, 0), length - window)
        pieces.append(AxisPiece(window_start, start, stop))
    return window, tuple(pieces)


def plan_tiles(image_hw: tuple[int, int], tile: int | tuple[int, int], seams: SeamGeometry) -> TilePlan:
    """Windows covering an H×W image with cores of at most ``tile`` (int or (h, w)) input pixels; ``seams``: the
    margins and the grid windows start on."""
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    if min(tile_h, tile_w) < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    window_h, rows = plan_axis(image_hw[0], tile_h, seams)
    window_w, cols = plan_axis(image_hw[1], tile_w, seams)
    return TilePlan(tuple(image_hw), (window_h, window_w), seams, rows, cols)


def auto_tile(image_hw: tuple[int, int], seams: SeamGeometry, window_bytes: Callable[[int, int], int],
              memory_budget: int) -> tuple[int, int]:
    """The (rows, cols) core size whose plan computes the fewest pixels with every window inside the budget (or,
    where no window fits it, the fewest pixels).

    window_bytes: the working memory of an h x w window (``Backend.window_bytes``).
    Windows need not be square: on the CPU budget a 1920×1080 frame is cheaper as full-height windows than as
    squares, because margins cost less where cores are longer. Every pair of per-axis splits into cores of at
    least MIN_TILE is tried (about 32,000 pairs at 4K, done once per image size); ties go to fewer windows.
    """
    best = cheapest = None
    for tile_h, window_h, count_h in axis_splits(image_hw[0], seams):
        for tile_w, window_w, count_w in axis_splits(image_hw[1], seams):
            cost = (count_h * count_w * window_h * window_w, count_h * count_w)
            if cheapest is None or cost < cheapest[0]:
                cheapest = (cost, (tile_h, tile_w))
            if (best is None or cost < best[0]) and window_bytes(window_h, window_w) <= memory_budget:
                best = (cost, (tile_h, tile_w))
    # Nothing fits (margins wider than any window the budget holds: RRDBNet's hundreds of pixels): the least
    # work, which is then no more memory than smaller windows whose margins cover the image many times over.
    return (best or cheapest)[1]


@functools.lru_cache(maxsize=64)
def axis_splits(length: int, seams: SeamGeometry) -> tuple[tuple[int, int, int], ...]:
    """(core size, window length, window count) of ``plan_axis`` for each count of cores of >= MIN_TILE."""
    splits = []
    for count in range(1, math.ceil(length / MIN_TILE) + 1):
        tile = math.ceil(length / count)
        window, pieces = plan_axis(length, tile, seams)
        splits.append((tile, window, len(pieces)))
    return tuple(splits)
