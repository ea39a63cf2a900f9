"""What a local batch shows while it works: a bar per image over a folder, a bar per tile over a big image, and
lines written above them; ``--quiet`` keeps only the errors, warnings and the summary."""
from __future__ import annotations

import sys

from tqdm import tqdm

# An image cut into fewer tiles than this finishes before a bar would tell anything.
MIN_TILES_FOR_A_BAR = 2
TTA_RUNS = 8  # the self-ensemble runs every tile once per flip and rotation


class Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.images = None

    def start(self, images: int) -> None:
        """The bar over the images, once the lines about the plan and the model are out."""
        self.images = tqdm(total=images, unit="image", file=sys.stderr, disable=self.quiet or images < 2,
                           dynamic_ncols=True)

    def say(self, line: str) -> None:
        """A line above the bars, not through them."""
        tqdm.write(line, file=sys.stderr)

    def tell(self, line: str) -> None:
        """A line that ``--quiet`` leaves out."""
        if not self.quiet:
            self.say(line)

    def image_done(self) -> None:
        self.images.update()

    def close(self) -> None:
        if self.images is not None:
            self.images.close()

    def upscale_call(self, upscaler):
        """``upscale(frame)``: ``upscaler.upscale``, with a bar over the tiles of an image that has several.

        The tiles are counted where the backend runs them, through the Upscaler's ``run_windows`` hook, which
        returns exactly what the backend does: the result is the one ``upscaler.upscale`` gives.
        """
        def upscale(frame):
            tiles = upscaler.plan(frame.shape[:2]).num_windows
            if self.quiet or tiles < MIN_TILES_FOR_A_BAR:
                return upscaler.upscale(frame)
            with tqdm(total=tiles * (TTA_RUNS if upscaler.tta else 1), unit="tile", file=sys.stderr, leave=False,
                      dynamic_ncols=True, desc=f"{frame.shape[1]}x{frame.shape[0]}") as bar:
                def run_windows(windows, _max_batch):
                    result = upscaler.backend.run(windows)
                    bar.update(len(windows))
                    return result
                return upscaler.upscale(frame, run_windows=run_windows)
        return upscale
