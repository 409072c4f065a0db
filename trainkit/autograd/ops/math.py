"""Elementwise math with PyTorch's names: trigonometric, hyperbolic, logarithms, roundings, erf, atan2.

Integer and bool inputs of the floating functions are promoted to the
default float dtype first (``trainkit.sin(torch.arange(3))`` is float32, as in
PyTorch); float32 stays float32 throughout, forward and backward (constants
are Python floats, which numpy treats as weak scalars).

The roundings (``floor ceil round trunc sign``) are differentiable with a zero
gradient, as in PyTorch, so a graph through them still reaches its leaves.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..function import Op, sum_to
from ..tensor import Tensor
from .elementwise import Neg, promote
from .special import erf as _erf

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def floating(x: Tensor) -> Tensor:
    """``x`` itself if floating, else ``x`` cast to the default float dtype (PyTorch's promotion)."""
    if x._array.dtype.kind == "f":
        return x
    return x.to(dtypes.get_default_dtype())


class Sin(Op):
    """sin(x); d/dx = cos(x)."""

    def forward(self, x):
        self.x = x
        return np.sin(x)

    def backward(self, gy):
        return (gy * np.cos(self.x),)


class Cos(Op):
    """cos(x); d/dx = -sin(x)."""

    def forward(self, x):
        self.x = x
        return np.cos(x)

    def backward(self, gy):
        return (-(gy * np.sin(self.x)),)


class Tan(Op):
    """tan(x); d/dx = 1 + tan(x)^2."""

    def forward(self, x):
        self.y = np.tan(x)
        return self.y

    def backward(self, gy):
        y = self.y
        return (gy * (1.0 + y * y),)


class Asin(Op):
    """arcsin(x); d/dx = 1 / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return np.arcsin(x)

    def backward(self, gy):
        x = self.x
        return (gy / np.sqrt(1.0 - x * x),)


class Acos(Op):
    """arccos(x); d/dx = -1 / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return np.arccos(x)

    def backward(self, gy):
        x = self.x
        return (-(gy / np.sqrt(1.0 - x * x)),)


class Atan(Op):
    """arctan(x); d/dx = 1 / (1 + x^2)."""

    def forward(self, x):
        self.x = x
        return np.arctan(x)

    def backward(self, gy):
        x = self.x
        return (gy / (1.0 + x * x),)


class Sinh(Op):
    """sinh(x); d/dx = cosh(x)."""

    def forward(self, x):
        self.x = x
        return np.sinh(x)

    def backward(self, gy):
        return (gy * np.cosh(self.x),)


class Cosh(Op):
    """cosh(x); d/dx = sinh(x)."""

    def forward(self, x):
        self.x = x
        return np.cosh(x)

    def backward(self, gy):
        return (gy * np.sinh(self.x),)


class Log1p(Op):
    """log(1 + x); d/dx = 1 / (1 + x)."""

    def forward(self, x):
        self.x = x
        return np.log1p(x)

    def backward(self, gy):
        return (gy / (1.0 + self.x),)


class Expm1(Op):
    """exp(x) - 1; d/dx = exp(x)."""

    def forward(self, x):
        self.y = np.expm1(x)
        return self.y

    def backward(self, gy):
        return (gy * (self.y + 1.0),)


class Log2(Op):
    """log2(x); d/dx = 1 / (x ln 2)."""

    def forward(self, x):
        self.x = x
        return np.log2(x)

    def backward(self, gy):
        return (gy / (self.x * _LN2),)


class Log10(Op):
    """log10(x); d/dx = 1 / (x ln 10)."""

    def forward(self, x):
        self.x = x
        return np.log10(x)

    def backward(self, gy):
        return (gy / (self.x * _LN10),)


class Rsqrt(Op):
    """1 / sqrt(x); d/dx = -y^3 / 2."""

    def forward(self, x):
        self.y = 1.0 / np.sqrt(x)
        return self.y

    def backward(self, gy):
        y = self.y
        return (gy * (-0.5 * y * y * y),)


class Reciprocal(Op):
    """1 / x; d/dx = -y^2."""

    def forward(self, x):
        self.y = 1.0 / x
        return self.y

    def backward(self, gy):
        y = self.y
        return (-(gy * y * y),)


class Erf(Op):
    """erf(x); d/dx = 2 / sqrt(pi) exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return _erf(x)

    def backward(self, gy):
        x = self.x
        return (gy * (_TWO_OVER_SQRT_PI * np.exp(-(x * x))),)


class Frac(Op):
    """``x - trunc(x)``: the gradient passes unchanged."""

    def forward(self, x):
        return x - np.trunc(x)

    def backward(self, gy):
        return (gy,)


class Atan2(Op):
    """atan2(a, b) with broadcasting; d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.arctan2(a, b)

    def backward(self, gy):
        a, b = self.a, self.b
        g = gy / (a * a + b * b)
        return (sum_to(g * b, a.shape) if self.needs[0] else None,
                sum_to(-(g * a), b.shape) if self.needs[1] else None)


class Rounding(Op):
    """Piecewise-constant functions: differentiable with a zero gradient, as in PyTorch."""

    def __init__(self, kind="floor", decimals=0):
        self.kind, self.decimals = kind, decimals

    def forward(self, x):
        if self.kind == "round":
            return np.round(x, self.decimals) if self.decimals else np.rint(x)
        if self.kind == "sign":
            # (x > 0) - (x < 0): 0 for NaN, as PyTorch's sign gives
            return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)
        return _ROUNDERS[self.kind](x)

    def backward(self, gy):
        return (np.zeros_like(gy),)


_ROUNDERS = {"floor": np.floor, "ceil": np.ceil, "trunc": np.trunc}


def _unary(cls, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
    return cls.apply(floating(input))


def sin(input: Tensor) -> Tensor:  # noqa: A002
    """Sine, elementwise."""
    return _unary(Sin, input)


def cos(input: Tensor) -> Tensor:  # noqa: A002
    """Cosine, elementwise."""
    return _unary(Cos, input)


def tan(input: Tensor) -> Tensor:  # noqa: A002
    """Tangent, elementwise."""
    return _unary(Tan, input)


def asin(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse sine (NaN outside [-1, 1])."""
    return _unary(Asin, input)


def acos(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse cosine (NaN outside [-1, 1])."""
    return _unary(Acos, input)


def atan(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse tangent, elementwise."""
    return _unary(Atan, input)


def sinh(input: Tensor) -> Tensor:  # noqa: A002
    """Hyperbolic sine, elementwise."""
    return _unary(Sinh, input)


def cosh(input: Tensor) -> Tensor:  # noqa: A002
    """Hyperbolic cosine, elementwise."""
    return _unary(Cosh, input)


def log1p(input: Tensor) -> Tensor:  # noqa: A002
    """``log(1 + x)``, accurate for small x."""
    return _unary(Log1p, input)


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:  # noqa: A002
    """``input + weight * (end - input)``, in torch's two-sided form: from ``end`` when ``|weight| >= 0.5``
    (exact at weight 1). ``weight``: a number or a tensor broadcast with both."""
    from ..functional import where
    diff = end - input
    if isinstance(weight, Tensor):
        return where(weight.abs() < 0.5, input + weight * diff, end - diff * (1 - weight))
    return input + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)


def expm1(input: Tensor) -> Tensor:  # noqa: A002
    """``exp(x) - 1``, accurate for small x."""
    return _unary(Expm1, input)


def log2(input: Tensor) -> Tensor:  # noqa: A002
    """Base-2 logarithm, elementwise."""
    return _unary(Log2, input)


def log10(input: Tensor) -> Tensor:  # noqa: A002
    """Base-10 logarithm, elementwise."""
    return _unary(Log10, input)


def rsqrt(input: Tensor) -> Tensor:  # noqa: A002
    """``1 / sqrt(x)``, elementwise."""
    return _unary(Rsqrt, input)


def reciprocal(input: Tensor) -> Tensor:  # noqa: A002
    """``1 / x``, elementwise (integer inputs give floats)."""
    return _unary(Reciprocal, input)


def erf(input: Tensor) -> Tensor:  # noqa: A002
    """The error function, exact to float64 rounding (see :mod:`.special`)."""
    return _unary(Erf, input)


def frac(input: Tensor) -> Tensor:  # noqa: A002
    """The fractional part ``x - trunc(x)`` (keeps the sign of x)."""
    if input._array.dtype.kind != "f":
        raise RuntimeError(f"\"frac_cpu\" not implemented for '{input._array.dtype}'")
    return Frac.apply(input)


def neg(input: Tensor) -> Tensor:  # noqa: A002
    """``-x``."""
    return Neg.apply(input)


negative = neg


def square(input: Tensor) -> Tensor:  # noqa: A002
    """``x * x`` (integers stay integers)."""
    return input * input


def atan2(input: Tensor, other) -> Tensor:  # noqa: A002
    """The angle of the point (other, input): ``atan(input / other)`` in the right quadrant; broadcasts."""
    a, b = promote(input, other)
    a, b = floating(a), floating(b)
    return Atan2.apply(a, b)


arctan2 = atan2


def _rounding(input: Tensor, kind: str, decimals: int = 0) -> Tensor:  # noqa: A002
    if input._array.dtype.kind != "f":  # integers are already whole: a copy, as PyTorch returns
        if kind == "sign":
            return Tensor(np.sign(input._array))
        return Tensor(input._array.copy())
    return Rounding.apply(input, kind=kind, decimals=decimals)


def floor(input: Tensor) -> Tensor:  # noqa: A002
    """The largest integer <= x, elementwise (zero gradient)."""
    return _rounding(input, "floor")


def ceil(input: Tensor) -> Tensor:  # noqa: A002
    """The smallest integer >= x, elementwise (zero gradient)."""
    return _rounding(input, "ceil")


def trunc(input: Tensor) -> Tensor:  # noqa: A002
    """x rounded toward zero (zero gradient)."""
    return _rounding(input, "trunc")


fix = trunc


def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001,A002
    """x rounded half to even, optionally to ``decimals`` decimal places (zero gradient)."""
    return _rounding(input, "round", decimals)


def sign(input: Tensor) -> Tensor:  # noqa: A002
    """-1, 0 or 1 by the sign of x (0 for NaN, as PyTorch; zero gradient)."""
    return _rounding(input, "sign")
