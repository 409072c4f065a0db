"""Elementwise operations with broadcasting: arithmetic, math functions, activations."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..function import Op, sum_to
from ..tensor import Tensor
from .special import erf, gelu_float32  # noqa: F401 - GELU's erf, exact in float64 with or without scipy
from ..threads import elementwise as _par
from ..threads import parallel_for, split
from .jit import kernels, parallel

#: Elements per piece of the compiled GELU passes (with numba): 256 KB of float32 per array, so a
#: piece's input and outputs stay in the L2 cache; smaller arrays run in one call of the numpy code.
GELU_PIECE = 1 << 16


def raw(x):
    """The ndarray behind a Tensor, or ``x`` itself."""
    return x._array if isinstance(x, Tensor) else x


def as_operand(x, like: Tensor) -> Tensor:
    """Turn a Python/numpy scalar or array into a Tensor for an op with ``like``.

    A Python scalar takes the tensor's dtype (PyTorch's rule: ``x * 0.5`` keeps a
    float32 tensor float32; an int tensor times a float becomes float32).
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    if isinstance(x, np.generic):
        x = x.item()
    kind = like._array.dtype.kind
    if isinstance(x, bool):
        dt = like._array.dtype
    elif isinstance(x, int):
        dt = like._array.dtype if kind in "fiuc" else dtypes.int64
    elif isinstance(x, float):
        dt = like._array.dtype if kind == "f" else dtypes.get_default_dtype()
    else:
        raise TypeError(f"unsupported operand type for a tensor operation: {type(x).__name__}")
    return Tensor(np.array(x, dtype=dt))


def promote(a, b) -> tuple:
    """Both operands as Tensors of one dtype, following PyTorch's promotion."""
    if not isinstance(a, Tensor):
        a = as_operand(a, b)
    elif not isinstance(b, Tensor):
        b = as_operand(b, a)
    da, db = a._array.dtype, b._array.dtype
    if da is not db and da != db:
        fa, fb = da.kind == "f", db.kind == "f"
        if fa and not fb:
            b = b.to(da)
        elif fb and not fa:
            a = a.to(db)
        else:
            za, zb = a._array.ndim == 0, b._array.ndim == 0
            if za != zb and _CATEGORY[da.kind] == _CATEGORY[db.kind]:
                common = db if za else da  # a 0-d tensor of the same category does not widen (torch's rule)
            else:
                common = np.promote_types(da, db)
            a, b = a.to(common), b.to(common)
    return a, b


#: PyTorch's dtype categories for promotion (bool < integer < floating).
_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}


class _Binary(Op):
    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return self._f(a, b)


class Add(_Binary):
    @staticmethod
    def _f(a, b):
        return _par(np.add, a, b)  # large same-shape operands (residual adds) on the intra-op threads

    def backward(self, gy):
        return (sum_to(gy, self.sa) if self.needs[0] else None,
                sum_to(gy, self.sb) if self.needs[1] else None)


class Sub(_Binary):
    @staticmethod
    def _f(a, b):
        return a - b

    def backward(self, gy):
        return (sum_to(gy, self.sa) if self.needs[0] else None,
                sum_to(-gy, self.sb) if self.needs[1] else None)


class Mul(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        a, b = self.a, self.b
        return (sum_to(gy * b, a.shape) if self.needs[0] else None,
                sum_to(gy * a, b.shape) if self.needs[1] else None)


class Div(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = gy / b
        return (sum_to(ga, a.shape) if self.needs[0] else None,
                sum_to(-ga * a / b, b.shape) if self.needs[1] else None)


class Pow(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs[0]:
            ga = sum_to(gy * b * a ** (b - 1), a.shape)
        if self.needs[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = sum_to(gy * self.y * np.log(np.where(a > 0, a, 1)), b.shape)
        return ga, gb


def add(a, b):
    a, b = promote(a, b)
    return Add.apply(a, b)


def sub(a, b):
    a, b = promote(a, b)
    return Sub.apply(a, b)


def mul(a, b):
    a, b = promote(a, b)
    return Mul.apply(a, b)


def div(a, b):
    a, b = promote(a, b)
    if a._array.dtype.kind != "f":  # true division of integers gives floats, as in torch
        a, b = a.to(dtypes.get_default_dtype()), b.to(dtypes.get_default_dtype())
    return Div.apply(a, b)


def pow(a, b):  # noqa: A001 - PyTorch's name
    a, b = promote(a, b)
    return Pow.apply(a, b)


class Neg(Op):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


class Exp(Op):
    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, gy):
        return (gy * self.y,)


class Log(Op):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, gy):
        return (gy / self.x,)


class Sqrt(Op):
    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, gy):
        return (gy / (2 * self.y),)


class Abs(Op):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, gy):
        return (gy * np.sign(self.x),)


class Tanh(Op):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, gy):
        y = self.y
        return (gy * (1 - y * y),)


class Sigmoid(Op):
    def forward(self, x):
        with np.errstate(over="ignore"):
            self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, gy):
        y = self.y
        return (gy * y * (1 - y),)


#: Elements per piece of the compiled ReLU backward on the intra-op threads.
RELU_PIECE = 1 << 16
#: Outputs smaller than this keep the numpy mask path (a small model's run then never imports numba).
RELU_MIN_ELEMENTS = 1 << 16


class ReLU(Op):
    """max(x, 0). With numba, backward is one compiled pass over the gradient and the output (0 where
    the output is <= 0, as PyTorch's ``threshold_backward``), and forward one pass (no mask): +3-7% a
    whole training step on LeNet and cifar_resnet at 1 and 2 threads (docs/performance.md, round
    four). Without numba a mask ``x > 0`` saved in forward is multiplied in (a NaN input then gets
    gradient 0 where PyTorch passes it on)."""

    def forward(self, x):
        big = x.size >= RELU_MIN_ELEMENTS
        par = parallel(x.dtype) if big and x.flags.c_contiguous else None
        if par is not None:  # one compiled pass on OpenMP's threads
            y = np.empty(x.shape, x.dtype)
            par.relu_forward(x.reshape(-1), y.reshape(-1), RELU_PIECE)
        else:
            y = _par(np.maximum, x, 0)  # large arrays on the intra-op threads
        if self.needs is not None:  # what backward needs: none under no_grad
            large = big and y.flags.c_contiguous
            self.jit = kernels(y.dtype) if large else None
            if self.jit is not None:
                self.y = y
            else:
                self.mask = _par(np.greater, x, 0)
        return y

    def backward(self, gy):
        if self.jit is None or gy.shape != self.y.shape:
            if self.jit is None:
                return (_par(np.multiply, gy, self.mask),)
            return (np.where(self.y <= 0, np.zeros((), gy.dtype), gy),)  # gy broadcast to another shape
        gf, yf = np.ascontiguousarray(gy).reshape(-1), self.y.reshape(-1)
        gx = np.empty(gf.shape, np.result_type(gy, self.y))
        par = parallel(gx.dtype)
        if par is not None:
            par.relu_backward(gf, yf, gx, RELU_PIECE)
        else:
            parallel_for(lambda a, e: self.jit.relu_backward(gf[a:e], yf[a:e], gx[a:e]), split(gf.size, RELU_PIECE))
        return (gx.reshape(self.y.shape),)


class LeakyReLU(Op):
    def __init__(self, negative_slope=0.01):
        self.slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, x * np.asarray(self.slope, x.dtype))

    def backward(self, gy):
        return (np.where(self.mask, gy, gy * np.asarray(self.slope, gy.dtype)),)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_SQRT1_2 = math.sqrt(0.5)  # multiplied, as PyTorch does, rather than dividing by sqrt(2)


def _gelu_grad(x, cdf, gy, out):
    """out = gy (Φ(x) + x φ(x)), d/dx x·Φ(x), built in place in ``out``."""
    np.multiply(x, x, out=out)
    out *= -0.5
    np.exp(out, out=out)
    out *= x
    out *= 1 / math.sqrt(2 * math.pi)
    out += cdf
    out *= gy


class GELU(Op):
    def __init__(self, approximate="none"):
        self.approximate = approximate

    def forward(self, x):
        self.x = x
        if self.approximate == "tanh":
            self.t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
            return 0.5 * x * (1 + self.t)
        if x.dtype == np.float32:  # float32 accuracy is enough there, and the float64-exact erf costs 3x
            jit = kernels(x.dtype)
            if jit is not None and x.size >= GELU_PIECE:  # one compiled pass, pieces on the intra-op threads
                flat = np.ascontiguousarray(x).reshape(-1)
                y, cdf = np.empty_like(flat), np.empty_like(flat)
                par = parallel(x.dtype)
                if par is not None:
                    par.gelu_forward(flat, y, cdf, GELU_PIECE)
                else:
                    parallel_for(lambda a, e: jit.gelu_forward(flat[a:e], y[a:e], cdf[a:e]),
                                 split(flat.size, GELU_PIECE))
                self.cdf = cdf.reshape(x.shape)
                return y.reshape(x.shape)
            y, self.cdf = gelu_float32(x)
            return y
        else:
            self.cdf = (0.5 * (1 + erf(x * _SQRT1_2))).astype(x.dtype, copy=False)
        return x * self.cdf

    def backward(self, gy):
        x = self.x
        if self.approximate == "tanh":
            t = self.t
            dt = (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return (gy * (0.5 * (1 + t) + 0.5 * x * dt),)
        if x.shape == gy.shape and x.size >= GELU_PIECE:  # large arrays: pieces on the intra-op threads
            xf, cf = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(self.cdf).reshape(-1)
            gf = np.ascontiguousarray(gy).reshape(-1)
            gx = np.empty_like(xf)
            parallel_for(lambda a, e: _gelu_grad(xf[a:e], cf[a:e], gf[a:e], gx[a:e]), split(xf.size, GELU_PIECE))
            return (gx.reshape(x.shape),)
        gx = np.empty_like(x)
        _gelu_grad(x, self.cdf, gy, gx)
        return (gx,)


class Clamp(Op):
    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.x = x
        return np.clip(x, self.lo, self.hi)

    def backward(self, gy):
        x, keep = self.x, None
        if self.lo is not None:
            keep = x >= self.lo
        if self.hi is not None:
            keep = (x <= self.hi) if keep is None else keep & (x <= self.hi)
        return (gy if keep is None else gy * keep,)


def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return Clamp.apply(x, lo=raw(min), hi=raw(max))


class Maximum(Op):
    """Elementwise maximum; ties share the gradient equally, as in PyTorch."""

    _pick = staticmethod(np.maximum)
    _sign = 1

    def forward(self, a, b):
        self.a, self.b = a, b
        return self._pick(a, b)

    def backward(self, gy):
        a, b = self.a, self.b
        win = (a > b) if self._sign > 0 else (a < b)
        tie = (a == b) * np.asarray(0.5, gy.dtype)
        wa = win + tie
        return (sum_to(gy * wa, a.shape) if self.needs[0] else None,
                sum_to(gy * (1 - wa), b.shape) if self.needs[1] else None)


class Minimum(Maximum):
    _pick = staticmethod(np.minimum)
    _sign = -1


def maximum(a, b):
    a, b = promote(a, b)
    return Maximum.apply(a, b)


def minimum(a, b):
    a, b = promote(a, b)
    return Minimum.apply(a, b)


class Where(Op):
    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return np.where(self.cond, a, b)

    def backward(self, gy):
        zero = np.zeros((), gy.dtype)
        return (sum_to(np.where(self.cond, gy, zero), self.sa) if self.needs[0] else None,
                sum_to(np.where(self.cond, zero, gy), self.sb) if self.needs[1] else None)


def _scalar_tensor(x) -> Tensor:
    """A Python scalar as the 0-d tensor torch makes of it (bool, int64, the default float dtype, complex64)."""
    if isinstance(x, np.generic):
        return Tensor(np.asarray(x))
    if isinstance(x, bool):
        return Tensor(np.array(x))
    if isinstance(x, int):
        return Tensor(np.array(x, dtype=dtypes.int64))
    if isinstance(x, float):
        return Tensor(np.array(x, dtype=dtypes.get_default_dtype()))
    if isinstance(x, complex):
        return Tensor(np.array(x, dtype=np.complex64))
    raise TypeError(f"where(): expected a Tensor or a number, got {type(x).__name__}")


def where(condition, input=None, other=None):  # noqa: A002
    """``input`` where ``condition`` holds, else ``other`` (broadcast); ``where(condition)`` is
    ``nonzero(condition, as_tuple=True)``. Two scalars give torch's dtype: ``where(c, 1, 0)`` is int64."""
    cond = np.asarray(raw(condition), dtype=bool)
    if input is None and other is None:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(cond)))
    if input is None or other is None:
        raise TypeError("where() takes a condition alone, or a condition, input and other")
    if not isinstance(input, (Tensor, np.ndarray)) and not isinstance(other, (Tensor, np.ndarray)):
        input = _scalar_tensor(input)
    a, b = promote(input, other)
    return Where.apply(a, b, cond=cond)


class Cast(Op):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.src) if self.src.kind == "f" else None,)


class Clone(Op):
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return (gy,)
