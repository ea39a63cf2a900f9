"""How far from a window's edges its results stop being the untiled result's bits, and where windows may start.

A window is a crop of the image run as an image of its own: beyond its edges it sees zeros where the whole
image has pixels, and each layer spreads that difference inwards. By the receptive radius alone a conv moves
it by its kernel radius. But a kernel that computes a T×T output tile as one (Winograd: every output of the
tile is a mix of the whole input patch) rounds each output by what its whole patch holds, so one differing
input in the patch changes the last bits of all T outputs: the bit-exact front moves to the next tile edge.
And a tile's bits equal the untiled tile's only where both start at the same place, so a window starts on a
multiple of every layer's tile (``grid``, counted in input pixels).

``SeamGeometry`` follows both fronts through the layers (their sources, residuals, levels and shuffles) and
gives the margins a window must keep on each side for its core to be bit-exact. For backends whose kernels
declare no tiles it reduces to the receptive radius on both sides.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

from srgan_fast.architecture.layers import IMAGE, IMAGE_SKIP_RADIUS, Network

# Far enough from the other side that the two fronts never meet in the walk (input pixels).
_FAR = 1 << 20


@dataclass(frozen=True)
class SeamGeometry:
    """Margins and window grid along one axis, for a network on a backend.

    grid: window starts are multiples of it (input pixels);
    before: input pixels a core keeps from its window's start (unless the window starts at the image's);
    after_by_residue: the same at the window's end, by (window length mod grid): where a window ends
        relative to the tiles depends on that residue, and every window of a plan has the same length.
    """

    grid: int
    before: int
    after_by_residue: tuple[int, ...]

    @classmethod
    def plain(cls, halo: int) -> SeamGeometry:
        """Kernels without tiles: the receptive radius on both sides, windows starting anywhere."""
        return cls(1, halo, (halo,))

    @classmethod
    def of(cls, network: Network, tiles: tuple[int, ...] | None = None) -> SeamGeometry:
        """network: the description; tiles: per layer, the output tile its kernel computes as one (None: 1)."""
        tiles = tuple(tiles) if tiles is not None else (1,) * len(network.layers)
        if len(tiles) != len(network.layers) or min(tiles) < 1:
            raise ValueError(f"expected a positive tile for each of the {len(network.layers)} layers, got {tiles}")
        grid = 1
        for conv, tile in zip(network.layers, tiles):
            # The window's start, at the conv's resolution, must fall on a multiple of its tile (and on a
            # whole pixel: an unshuffled input groups pixels in pairs from the start).
            level = Fraction(conv.level)
            step = tile * level.denominator
            grid = math.lcm(grid, step // math.gcd(step, level.numerator))
        image_radius = math.ceil(IMAGE_SKIP_RADIUS[network.image_skip])
        first, _ = _fronts(network, tiles, 0, _FAR * grid)
        before = max(math.ceil(first / network.scale), image_radius)
        after = []
        for residue in range(grid):
            end = _FAR * grid + residue
            _, last = _fronts(network, tiles, -_FAR * grid, end)
            after.append(max(math.ceil((end * network.scale - last) / network.scale), image_radius))
        return cls(grid, before, tuple(after))

    def after(self, window_length: int) -> int:
        return self.after_by_residue[window_length % self.grid]

    @property
    def widest(self) -> int:
        """The larger margin of either side: what a window of one core needs around it, at most."""
        return max(self.before, *self.after_by_residue)


def _fronts(network: Network, tiles: tuple[int, ...], start: int, stop: int) -> tuple[int, int]:
    """The output pixels [first, last) (at the output's level) whose bits equal the untiled run's, for a window
    of input pixels [start, stop) whose start lies on the grid."""
    exact = {IMAGE: (start, stop)}  # name -> exact range of its output, at its own level
    for conv, tile in zip(network.layers, tiles):
        first = max(exact[name][0] for name in conv.inputs)  # a concatenation is exact where all its parts are
        last = min(exact[name][1] for name in conv.inputs)
        first, last = -(-first // conv.unshuffle), last // conv.unshuffle  # a group is exact if all its pixels are
        first, last = first * conv.upsample, last * conv.upsample
        radius = conv.kernel // 2
        # A tile is exact when its whole input patch is: tiles start on multiples of `tile` at this level.
        first = -(-(first + radius) // tile) * tile
        last = (last - radius) // tile * tile
        first, last = first * conv.shuffle, last * conv.shuffle
        for residual in (conv.residual, conv.outer_residual):
            if residual is not None:
                first, last = max(first, exact[residual][0]), min(last, exact[residual][1])
        exact[conv.name] = (first, last)
    return exact[network.layers[-1].name]


@functools.lru_cache(maxsize=32)
def seam_geometry(network: Network, tiles: tuple[int, ...] | None) -> SeamGeometry:
    return SeamGeometry.of(network, tiles)
