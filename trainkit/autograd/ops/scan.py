"""Products and running reductions: ``prod``, ``cumsum``, ``cumprod``.

Gradients are exact when inputs contain zeros (no division by the input where
it is zero), as PyTorch's are. Integer and bool inputs give int64 results,
as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..function import Op
from ..tensor import Tensor
from .reduce import _expand_grad


def _exclusive_cumprod(x: np.ndarray, axis: int) -> np.ndarray:
    """``out[i] = prod(x[:i])`` along ``axis`` (1 at i = 0)."""
    out = np.ones_like(x)
    if x.shape[axis] > 1:
        head = [slice(None)] * x.ndim
        head[axis] = slice(1, None)
        tail = [slice(None)] * x.ndim
        tail[axis] = slice(None, -1)
        np.cumprod(x[tuple(tail)], axis=axis, out=out[tuple(head)])
    return out


class Prod(Op):
    """Product over one dimension or all elements; d/dx_i is the product of the others."""

    def __init__(self, dim=None, keepdim=False):
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        self.x = x
        self.axis = None if self.dim is None else self.dim % max(x.ndim, 1)
        if x.ndim == 0:
            self.axis = None
        return np.asarray(np.prod(x, axis=self.axis, keepdims=self.keepdim and self.axis is not None))

    def backward(self, gy):
        x, axis = self.x, self.axis
        flat = x.reshape(-1) if axis is None else x
        ax = 0 if axis is None else axis
        others = _exclusive_cumprod(flat, ax) * np.flip(_exclusive_cumprod(np.flip(flat, ax), ax), ax)
        others = others.reshape(x.shape)
        return (others * _expand_grad(gy, x.shape, axis, self.keepdim),)


class Cumsum(Op):
    """Running sum along ``dim``; the gradient is the reversed running sum of the output gradient."""

    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, x):
        self.axis = self.dim % max(x.ndim, 1) if x.ndim else None
        if self.axis is None:
            return x.copy()
        return np.cumsum(x, axis=self.axis)

    def backward(self, gy):
        if self.axis is None:
            return (gy,)
        return (np.flip(np.cumsum(np.flip(gy, self.axis), axis=self.axis), self.axis),)


class Cumprod(Op):
    """Running product; backward divides by x only where no zero precedes (the first zero is handled exactly)."""

    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, x):
        self.axis = self.dim % max(x.ndim, 1) if x.ndim else None
        self.x = x
        self.y = x.copy() if self.axis is None else np.cumprod(x, axis=self.axis)
        return self.y

    def backward(self, gy):
        if self.axis is None:
            return (gy,)
        x, y, ax = self.x, self.y, self.axis
        zero = x == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.flip(np.cumsum(np.flip(gy * y, ax), axis=ax), ax) / x
        if not zero.any():
            return (g,)
        # Per slice with a zero: positions before the first zero keep the formula above;
        # the first zero gets prod(x before it) * sum_j gy_j * prod(x after it up to j); the rest get 0.
        xm = np.moveaxis(x, ax, -1).reshape(-1, x.shape[ax])
        gym = np.moveaxis(gy, ax, -1).reshape(-1, x.shape[ax])
        ym = np.moveaxis(y, ax, -1).reshape(-1, x.shape[ax])
        gm = np.moveaxis(g, ax, -1).reshape(-1, x.shape[ax]).copy()
        zm = xm == 0
        for r in np.flatnonzero(zm.any(axis=1)):
            k = int(np.argmax(zm[r]))
            before = ym[r, k - 1] if k else 1.0
            after = np.cumprod(np.concatenate([[1.0], xm[r, k + 1:]]).astype(x.dtype))
            gm[r, k] = before * (gym[r, k:] * after).sum()
            gm[r, k + 1:] = 0
        shape = np.moveaxis(x, ax, -1).shape
        return (np.moveaxis(gm.reshape(shape), -1, ax),)


def _accumulating(input: Tensor, dtype) -> Tensor:  # noqa: A002
    """Apply an explicit ``dtype``, or promote integers/bools to int64 as PyTorch's sum-like ops do."""
    if dtype is not None:
        return input.to(dtype)
    if input._array.dtype.kind in "biu":
        return input.to(dtypes.int64)
    return input


def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """Product of all elements, or along ``dim`` (one dimension, as in PyTorch)."""
    if isinstance(dim, (tuple, list)):
        raise TypeError("prod(): argument 'dim' must be int, not a sequence")
    return Prod.apply(_accumulating(input, dtype), dim=dim, keepdim=keepdim)


def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:  # noqa: A002
    """Running sum along ``dim``."""
    return Cumsum.apply(_accumulating(input, dtype), dim=dim)


def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:  # noqa: A002
    """Running product along ``dim``."""
    return Cumprod.apply(_accumulating(input, dtype), dim=dim)
