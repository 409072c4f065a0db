"""The global random number generator behind ``trainkit.manual_seed``.

Everything random in the engine and in nn (initialisation, dropout, ``rand``)
draws from one ``numpy.random.Generator`` so that ``manual_seed(n)`` makes a
program reproducible, and its state can be saved in a checkpoint as JSON.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.Generator(np.random.PCG64(0))


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    global _generator
    _generator = np.random.Generator(np.random.PCG64(int(seed)))
    return _generator


def default_generator() -> np.random.Generator:
    """The global generator that initialisation, dropout and ``rand``/``randn`` draw from."""
    return _generator


def get_rng_state() -> dict:
    """The global generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
