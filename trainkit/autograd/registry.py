"""One table of gradient-check cases: every differentiable op and every layer.

Each case is a name, a function of Tensors and a generator of small float64
example inputs. ``trainkit gradcheck`` enumerates this table, and a test checks
that every :class:`~trainkit.autograd.function.Op` subclass appears in some case.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CheckCase:
    """A gradient-check case: ``fn(*make_inputs(rng))`` is checked in float64."""

    name: str
    kind: str  # "op", "layer" or "loss"
    fn: Callable
    make_inputs: Callable[[np.random.Generator], tuple]
    atol: float = 1e-5
    rtol: float = 1e-3


_CASES: dict[str, CheckCase] = {}


def register_case(name: str, fn: Callable, make_inputs: Callable, kind: str = "op", **tol) -> None:
    """Add a case to the table (names are unique)."""
    if name in _CASES:
        raise ValueError(f"gradient-check case {name!r} is registered twice")
    _CASES[name] = CheckCase(name, kind, fn, make_inputs, **tol)


def cases() -> dict[str, CheckCase]:
    """All registered cases, loading the op and layer tables on first use."""
    from . import op_cases  # noqa: F401 - registers the engine's ops
    try:
        from ..nn import check_cases  # noqa: F401 - registers layers and losses
    except ImportError:  # nn not built yet
        pass
    return dict(_CASES)
