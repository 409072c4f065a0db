"""The gradient-check table: every differentiable op and every layer and loss.

Each case is a name, a function of Tensors and a generator of small float64
example inputs. Layer and loss cases derive from the declarations (see
:mod:`.layer_cases`), so every declared component has a row. ``trainkit gradcheck`` enumerates :func:`cases`, and a test
checks that every :class:`~trainkit.autograd.function.Op` subclass appears in
some case. The tables are plain lists (:data:`.op_cases.OP_CASES`,
:func:`.layer_cases.nn_cases`): nothing registers itself on import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CheckCase:
    """A gradient-check case: ``fn(*make_inputs(rng))`` is checked in float64."""

    name: str
    kind: str  # "op", "layer", "loss" or "model"
    fn: Callable
    make_inputs: Callable[[np.random.Generator], tuple]
    atol: float = 1e-5
    rtol: float = 1e-3
    fast: bool = False  # random directions instead of every element (gradcheck's fast_mode)


def cases() -> dict[str, CheckCase]:
    """Every case by name (op cases, then layer and loss cases); names are unique."""
    from .layer_cases import merge_cases, nn_cases
    from .op_cases import OP_CASES

    table: dict[str, CheckCase] = {}
    layers = [*nn_cases(), *merge_cases()]
    for case in [*OP_CASES, *(CheckCase(c.name, c.kind, c.fn, c.make_inputs, fast=c.fast) for c in layers)]:
        if case.name in table:
            raise ValueError(f"gradient-check case {case.name!r} is listed twice")
        table[case.name] = case
    return table
