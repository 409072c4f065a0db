"""Comparisons and logic: bool tensors outside the graph (they have no gradient, as in PyTorch)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .elementwise import raw


def _bool(array) -> Tensor:
    return Tensor(np.asarray(array, dtype=bool))


def eq(input: Tensor, other) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """``input == other`` elementwise (broadcasts)."""
    return _bool(np.equal(raw(input), raw(other)))


def ne(input: Tensor, other) -> Tensor:  # noqa: A002
    """``input != other`` elementwise."""
    return _bool(np.not_equal(raw(input), raw(other)))


def gt(input: Tensor, other) -> Tensor:  # noqa: A002
    """``input > other`` elementwise."""
    return _bool(np.greater(raw(input), raw(other)))


def lt(input: Tensor, other) -> Tensor:  # noqa: A002
    """``input < other`` elementwise."""
    return _bool(np.less(raw(input), raw(other)))


def ge(input: Tensor, other) -> Tensor:  # noqa: A002
    """``input >= other`` elementwise."""
    return _bool(np.greater_equal(raw(input), raw(other)))


def le(input: Tensor, other) -> Tensor:  # noqa: A002
    """``input <= other`` elementwise."""
    return _bool(np.less_equal(raw(input), raw(other)))


greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def isnan(input: Tensor) -> Tensor:  # noqa: A002
    """True where x is NaN."""
    return _bool(np.isnan(raw(input)))


def isinf(input: Tensor) -> Tensor:  # noqa: A002
    """True where x is +inf or -inf."""
    return _bool(np.isinf(raw(input)))


def isfinite(input: Tensor) -> Tensor:  # noqa: A002
    """True where x is neither NaN nor infinite."""
    return _bool(np.isfinite(raw(input)))


def isposinf(input: Tensor) -> Tensor:  # noqa: A002
    """True where x is +inf."""
    return _bool(np.isposinf(raw(input)))


def isneginf(input: Tensor) -> Tensor:  # noqa: A002
    """True where x is -inf."""
    return _bool(np.isneginf(raw(input)))


def logical_and(input: Tensor, other) -> Tensor:  # noqa: A002
    """Elementwise AND of the truth values (nonzero is True)."""
    return _bool(np.logical_and(raw(input), raw(other)))


def logical_or(input: Tensor, other) -> Tensor:  # noqa: A002
    """Elementwise OR of the truth values."""
    return _bool(np.logical_or(raw(input), raw(other)))


def logical_xor(input: Tensor, other) -> Tensor:  # noqa: A002
    """Elementwise XOR of the truth values."""
    return _bool(np.logical_xor(raw(input), raw(other)))


def logical_not(input: Tensor) -> Tensor:  # noqa: A002
    """Elementwise NOT of the truth values."""
    return _bool(np.logical_not(raw(input)))


def isclose(input: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:  # noqa: A002
    """``|input - other| <= atol + rtol * |other|`` elementwise."""
    return _bool(np.isclose(raw(input), raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))
