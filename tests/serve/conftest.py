import pytest

from tests.conftest import random_generator_weights


@pytest.fixture(scope="session")
def tiny_weights():
    """A random 2-block, 8-channel generator (halo 12): with 24-pixel tiles a 100² image is 25 windows."""
    return random_generator_weights(num_blocks=2, channels=8)
