import pytest

from src.model import init_model
from tests.peft.helpers import SMALL


@pytest.fixture(scope="module")
def base():
    """A small random RWKV6 (2 layers x 128, vocabulary 300) with every tensor non-zero."""
    return init_model(SMALL, seed=1, nonzero=True)
