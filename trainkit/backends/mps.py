"""``trainkit.backends.mps``: Apple's Metal backend, which trainkit does not have."""
from __future__ import annotations


def is_available() -> bool:
    """False: there is no MPS backend."""
    return False


def is_built() -> bool:
    """False: trainkit is not built with MPS."""
    return False
