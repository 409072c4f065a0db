"""Sorting and selection: ``sort``, ``argsort``, ``topk``, ``kthvalue``, ``median``, ``unique``.

The order is computed on the raw array (no gradient), and the values are
taken through :class:`~.index.Gather`, so the gradient flows back to the
positions the values came from. NaN sorts as larger than every number, as in
PyTorch. Ties: ``stable=True`` keeps input order (in both directions).
"""
from __future__ import annotations

import numpy as np

from .. import return_types
from ..tensor import Tensor
from .index import Gather


def _dim(dim: int, ndim: int) -> int:
    return dim % ndim if ndim else 0


def _argsort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable ascending argsort, or a stable descending one (equal elements keep input order)."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # Sort the reversed array ascending and reverse the result: ties then come out in input order.
    n = x.shape[axis]
    rev = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(rev, axis)


def _values(input: Tensor, axis: int, indices: np.ndarray) -> Tensor:  # noqa: A002
    return Gather.apply(input, dim=axis, index=indices)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: A002
    """``(values, indices)`` of ``input`` sorted along ``dim``."""
    if input.ndim == 0:
        return return_types.sort(input.clone(), Tensor(np.zeros((), np.int64)))
    axis = _dim(dim, input.ndim)
    idx = _argsort(input._array, axis, descending)
    return return_types.sort(_values(input, axis, idx), Tensor(idx.astype(np.int64, copy=False)))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:  # noqa: A002
    """The indices that sort ``input`` along ``dim``."""
    if input.ndim == 0:
        return Tensor(np.zeros((), np.int64))
    return Tensor(_argsort(input._array, _dim(dim, input.ndim), descending).astype(np.int64, copy=False))


def msort(input: Tensor) -> Tensor:  # noqa: A002
    """``input`` sorted along its first dimension."""
    return sort(input, dim=0).values


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices.

    A partial selection (``argpartition``) picks the k before only those are
    sorted, so topk costs O(n + k log k) per row.
    """
    axis = _dim(dim, input.ndim)
    x = input._array if input.ndim else input._array.reshape(1)
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range (k={k}, size {n} along dim {dim})")
    if 0 < k < n:
        # argpartition puts NaN last, i.e. treats it as the largest value, as PyTorch does
        if largest:
            cand = np.take(np.argpartition(x, n - k, axis=axis), np.arange(n - k, n), axis=axis)
        else:
            cand = np.take(np.argpartition(x, k - 1, axis=axis), np.arange(k), axis=axis)
        order = _argsort(np.take_along_axis(x, cand, axis), axis, largest)
        idx = np.take_along_axis(cand, order, axis)
    else:
        idx = _argsort(x, axis, largest)
        idx = np.take(idx, np.arange(k), axis=axis)
    if input.ndim == 0:
        idx = idx.reshape(())
    return return_types.topk(_values(input, axis, idx), Tensor(idx.astype(np.int64, copy=False)))


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False):  # noqa: A002
    """The k-th smallest element (1-based) along ``dim`` and its index."""
    axis = _dim(dim, input.ndim)
    n = input.shape[axis] if input.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    x = input._array if input.ndim else input._array.reshape(1)
    idx = np.take(np.argsort(x, axis=axis, kind="stable"), [k - 1], axis=axis)
    return _select(input, axis, idx, keepdim, return_types.kthvalue)


def _select(input, axis, idx, keepdim, result):  # noqa: A002
    if input.ndim == 0:
        return result(input.clone(), Tensor(np.zeros((), np.int64)))
    values = _values(input, axis, idx)
    if not keepdim:
        values, idx = values.squeeze(axis), np.squeeze(idx, axis)
    return result(values, Tensor(idx.astype(np.int64, copy=False)))


def median(input: Tensor, dim=None, keepdim: bool = False):  # noqa: A002
    """The lower median of all elements, or ``(values, indices)`` along ``dim`` (PyTorch's median)."""
    if dim is None:
        flat = input.reshape(-1)
        n = flat.shape[0]
        if n == 0:
            return Tensor(np.asarray(np.nan, input.dtype))
        return kthvalue(flat, (n + 1) // 2, 0).values
    n = input.shape[_dim(dim, input.ndim)] if input.ndim else 1
    r = kthvalue(input, (n + 1) // 2, dim, keepdim)
    return return_types.median(r.values, r.indices)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim=None):
    """The distinct elements (sorted), optionally with the inverse indices and counts; no gradient.

    With ``dim``, the distinct slices along that dimension.
    """
    x = input._array
    if dim is None:
        vals, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(x.shape)
    else:
        axis = _dim(dim, x.ndim)
        vals, inverse, counts = np.unique(x, return_inverse=True, return_counts=True, axis=axis)
        inverse = inverse.reshape(-1)
    out = [Tensor(vals)]
    if return_inverse:
        out.append(Tensor(inverse.astype(np.int64)))
    if return_counts:
        out.append(Tensor(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)
