"""Reductions (sum, mean, var/std, max/min, amax/amin, all/any, logsumexp) and the softmax family."""
from __future__ import annotations

import numpy as np

from ..function import Op
from .. import return_types
from ..tensor import Tensor


def _axis(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(d % ndim if ndim else 0 for d in dim)
    return dim % ndim if ndim else None


def _expand_grad(gy, shape, axis, keepdim):
    """Broadcast a reduced gradient back over the reduced axes (a view, no copy)."""
    if axis is not None and not keepdim:
        gy = np.expand_dims(gy, axis)
    elif axis is None and not keepdim:
        gy = gy.reshape((1,) * len(shape))
    return np.broadcast_to(gy, shape)


class Sum(Op):
    def __init__(self, dim=None, keepdim=False):
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        self.shape = x.shape
        self.axis = _axis(self.dim, x.ndim)
        return np.asarray(x.sum(axis=self.axis, keepdims=self.keepdim))

    def backward(self, gy):
        return (_expand_grad(gy, self.shape, self.axis, self.keepdim),)


class Mean(Op):
    def __init__(self, dim=None, keepdim=False):
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        self.shape = x.shape
        self.axis = _axis(self.dim, x.ndim)
        y = np.asarray(x.mean(axis=self.axis, keepdims=self.keepdim))
        self.n = x.size // max(y.size, 1) if x.size else 0
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        return (_expand_grad(gy / np.asarray(self.n, gy.dtype), self.shape, self.axis, self.keepdim),)


class Var(Op):
    """Variance over ``dim`` with ``ddof``; computed on data shifted by its first element, so that a
    constant slice has exactly zero deviation (as PyTorch's Welford pass gives) and cancellation stays small."""

    def __init__(self, dim=None, keepdim=False, ddof=1):
        self.dim, self.keepdim, self.ddof = dim, keepdim, ddof

    def forward(self, x):
        self.axis = _axis(self.dim, x.ndim)
        axes = range(x.ndim) if self.axis is None else np.atleast_1d(self.axis)
        first = tuple(slice(0, 1) if d in axes else slice(None) for d in range(x.ndim))
        shifted = x - x[first] if x.size else x
        mean = shifted.mean(axis=self.axis, keepdims=True)
        self.xc = shifted - mean
        n = x.size // max(mean.size, 1)
        self.denom = np.asarray(max(n - self.ddof, 0), x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = (self.xc * self.xc).sum(axis=self.axis, keepdims=self.keepdim) / self.denom
        return np.asarray(y).astype(x.dtype, copy=False)

    def backward(self, gy):
        g = _expand_grad(gy, self.xc.shape, self.axis, self.keepdim)
        return (g * (2 * self.xc / self.denom),)


class MaxMinAll(Op):
    """max()/min() over all elements; ties share the gradient evenly (PyTorch's rule)."""

    def __init__(self, mode="max"):
        self.mode = mode

    def forward(self, x):
        self.x = x
        self.y = np.asarray(x.max() if self.mode == "max" else x.min())
        return self.y

    def backward(self, gy):
        mask = self.x == self.y
        return (mask * (gy / mask.sum()).astype(gy.dtype),)


class MaxMinDim(Op):
    """max/min along one dimension; the gradient goes to the returned index."""

    def __init__(self, dim=0, keepdim=False, mode="max"):
        self.dim, self.keepdim, self.mode = dim, keepdim, mode

    def forward(self, x):
        self.shape = x.shape
        self.axis = self.dim % x.ndim if x.ndim else 0
        idx = (np.argmax if self.mode == "max" else np.argmin)(x, axis=self.axis)
        self.idx = np.expand_dims(idx, self.axis)
        vals = np.take_along_axis(x, self.idx, self.axis)
        self.indices = self.idx if self.keepdim else idx
        return vals if self.keepdim else np.squeeze(vals, self.axis)

    def backward(self, gy):
        g = np.zeros(self.shape, gy.dtype)
        if not self.keepdim:
            gy = np.expand_dims(gy, self.axis)
        np.put_along_axis(g, self.idx, gy, self.axis)
        return (g,)


def max_min(x: Tensor, dim, keepdim, mode):
    """Tensor.max/min: a scalar without ``dim``; ``(values, indices)`` with it."""
    if dim is None:
        return MaxMinAll.apply(x, mode=mode)
    if isinstance(dim, Tensor):  # torch.max(a, b) handled by the caller
        raise TypeError("max(other) is trainkit.maximum")
    op_out = MaxMinDim.apply(x, dim=dim, keepdim=keepdim, mode=mode)
    if op_out.grad_fn is not None:
        indices = op_out.grad_fn.indices.astype(np.int64)
    else:  # not recorded: recompute the indices cheaply
        f = np.argmax if mode == "max" else np.argmin
        indices = f(x._array, axis=dim % x.ndim if x.ndim else 0)
        if keepdim:
            indices = np.expand_dims(indices, dim)
    result = return_types.max if mode == "max" else return_types.min
    return result(op_out, Tensor(np.asarray(indices, dtype=np.int64)))


def argext(x: Tensor, dim, keepdim, f):
    """argmax/argmin as int64 tensors (no gradient)."""
    if dim is None:
        return Tensor(np.asarray(f(x._array), dtype=np.int64))
    idx = f(x._array, axis=dim)
    if keepdim:
        idx = np.expand_dims(idx, dim)
    return Tensor(np.asarray(idx, dtype=np.int64))


class LogSumExp(Op):
    def __init__(self, dim=None, keepdim=False):
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        self.x = x
        self.axis = _axis(self.dim, x.ndim)
        m = x.max(axis=self.axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        self.yk = m + np.log(np.exp(x - m).sum(axis=self.axis, keepdims=True))
        return self.yk if self.keepdim else np.squeeze(self.yk, self.axis)

    def backward(self, gy):
        g = _expand_grad(gy, self.x.shape, self.axis, self.keepdim)
        return (g * np.exp(self.x - self.yk),)


class Softmax(Op):
    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        e /= e.sum(axis=self.dim, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        y = self.y
        return (y * (gy - (gy * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmax(Op):
    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        s = x - x.max(axis=self.dim, keepdims=True)
        s -= np.log(np.exp(s).sum(axis=self.dim, keepdims=True))
        self.y = s
        return s

    def backward(self, gy):
        return (gy - np.exp(self.y) * gy.sum(axis=self.dim, keepdims=True),)


class AMaxMin(Op):
    """amax/amin over any dimensions; ties share the gradient evenly (PyTorch's rule)."""

    def __init__(self, dim=None, keepdim=False, mode="max"):
        self.dim, self.keepdim, self.mode = dim, keepdim, mode

    def forward(self, x):
        self.x = x
        self.axis = _axis(self.dim, x.ndim)
        f = np.max if self.mode == "max" else np.min
        self.yk = f(x, axis=self.axis, keepdims=True)
        return np.asarray(self.yk if self.keepdim else f(x, axis=self.axis))

    def backward(self, gy):
        mask = self.x == self.yk
        count = mask.sum(axis=self.axis, keepdims=True).astype(gy.dtype)
        return (mask * (_expand_grad(gy, self.x.shape, self.axis, self.keepdim) / count),)


def _dims_or_all(dim):
    """PyTorch's amax/amin/all/any take ``dim=()`` (or None) for every dimension."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return None
    return tuple(dim) if isinstance(dim, (tuple, list)) else dim


def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    """Maximum over ``dim`` (an int, a tuple, or ``()`` for all); no indices, ties share the gradient."""
    return AMaxMin.apply(input, dim=_dims_or_all(dim), keepdim=keepdim, mode="max")


def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:  # noqa: A002
    """Minimum over ``dim`` (an int, a tuple, or ``()`` for all); no indices, ties share the gradient."""
    return AMaxMin.apply(input, dim=_dims_or_all(dim), keepdim=keepdim, mode="min")


def _truth(input: Tensor, dim, keepdim, f) -> Tensor:  # noqa: A002
    x = input._array
    axis = _axis(_dims_or_all(dim), x.ndim)
    out = f(x, axis=axis, keepdims=keepdim and axis is not None)
    # PyTorch keeps uint8 for uint8 inputs and gives bool otherwise
    return Tensor(np.asarray(out, dtype=np.uint8 if x.dtype == np.uint8 else bool))


def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001,A002
    """Whether every element (along ``dim``) is nonzero; a bool tensor outside the graph."""
    return _truth(input, dim, keepdim, np.all)


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001,A002
    """Whether some element (along ``dim``) is nonzero; a bool tensor outside the graph."""
    return _truth(input, dim, keepdim, np.any)


def _ddof(unbiased, correction) -> float:
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:  # noqa: A002
    """Variance over ``dim`` with Bessel's ``correction`` (1 by default; ``unbiased=False`` means 0)."""
    if isinstance(dim, bool):  # var(x, False): PyTorch's legacy positional ``unbiased``
        dim, unbiased = None, dim
    return Var.apply(input, dim=_dims_or_all(dim), keepdim=keepdim, ddof=_ddof(unbiased, correction))


class Std(Var):
    """sqrt(var) in one node; where the deviation is 0 the gradient is 0 (PyTorch's rule), not NaN."""

    def forward(self, x):
        self.y = np.sqrt(super().forward(x))
        return self.y

    def backward(self, gy):
        y = self.y
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(y == 0, np.zeros((), gy.dtype), gy / (2 * y))
        return super().backward(g)


def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:  # noqa: A002
    """Standard deviation over ``dim`` with Bessel's ``correction`` (see :func:`var`)."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return Std.apply(input, dim=_dims_or_all(dim), keepdim=keepdim, ddof=_ddof(unbiased, correction))


def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:  # noqa: A002
    """``log(sum(exp(x)))`` over ``dim``, computed stably (integer inputs give floats)."""
    if input._array.dtype.kind != "f":
        from .. import dtypes
        input = input.to(dtypes.get_default_dtype())  # noqa: A001
    return LogSumExp.apply(input, dim=_dims_or_all(dim), keepdim=keepdim)
