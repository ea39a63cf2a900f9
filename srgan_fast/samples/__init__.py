"""A bundled sample for ``srgan-fast demo`` and the README.

astronaut.png: a 256×256 crop of NASA's public-domain portrait of astronaut Eileen Collins (image S95-00071),
as distributed with scikit-image's ``skimage.data.astronaut``.
"""
from importlib import resources
from pathlib import Path


def sample_path() -> Path:
    return Path(str(resources.files("srgan_fast.samples") / "astronaut.png"))
