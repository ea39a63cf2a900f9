"""Facts about the generator that inference needs without PyTorch: scale, value ranges, receptive radius.

Value ranges are fixed here and only here:
  * generator input: RGB in [0, 1] (``INPUT_RANGE``);
  * generator output: RGB in [0, 1] (``OUTPUT_RANGE``). The paper trains HR targets in [-1, 1]; we keep
    [0, 1] so that input and output share one convention and the I/O conversions of every backend are the
    same scale by 255 (or 65535), without an affine remap.
"""
from __future__ import annotations

INPUT_RANGE = (0.0, 1.0)
OUTPUT_RANGE = (0.0, 1.0)
SCALE = 4
# The integer full scale of each image dtype, which maps onto [0, 1]; float32 is taken as [0, 1] already.
FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}


def receptive_radius(num_blocks: int) -> float:
    """How far (in input pixels) an output pixel sees: the halo a tile needs to equal the untiled result.

    Each k x k conv adds (k-1)/2 pixels at the resolution it runs at; after the two upsampling stages a pixel
    is 1/2 and then 1/4 of an input pixel.
    """
    lr = 4 + num_blocks * 2 * 1 + 1  # head 9x9, two 3x3 per block, trunk 3x3
    lr += 1  # first upsampling conv, at 1x
    lr += 1 / 2  # second upsampling conv, at 2x
    lr += 4 / 4  # tail 9x9, at 4x
    return lr
