"""Operations that move data around: reshape, permute, expand, indexing, cat, stack."""
from __future__ import annotations

import numpy as np

from ..function import Op, sum_to
from ..tensor import Tensor


class Reshape(Op):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.src = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return (gy.reshape(self.src),)


def reshape(x: Tensor, shape: tuple) -> Tensor:
    """``x`` with a new shape (one dimension may be -1)."""
    shape = tuple(int(s) for s in shape)
    if shape == x.shape:
        return x
    try:
        return Reshape.apply(x, shape=shape)
    except ValueError:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {x._array.size}") from None


def flatten(x: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    nd = max(x.ndim, 1)
    s, e = start_dim % nd, end_dim % nd
    if x.ndim == 0:
        return reshape(x, (1,))
    shape = x.shape[:s] + (-1,) + x.shape[e + 1:]
    return reshape(x, shape)


def squeeze(x: Tensor, dim=None) -> Tensor:
    if dim is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        dims = {d % x.ndim for d in (dim if isinstance(dim, (tuple, list)) else (dim,))} if x.ndim else set()
        shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return reshape(x, shape)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = dim % (x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


class Permute(Op):
    def __init__(self, dims):
        self.dims = dims

    def forward(self, x):
        self.dims = tuple(d % x.ndim for d in self.dims) if x.ndim else ()
        return x.transpose(self.dims)

    def backward(self, gy):
        return (gy.transpose(np.argsort(self.dims)),)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, dims=tuple(dims))


class Expand(Op):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.src = x.shape
        return np.broadcast_to(x, self.shape)

    def backward(self, gy):
        return (sum_to(gy, self.src),)


def expand(x: Tensor, sizes: tuple) -> Tensor:
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    return Expand.apply(x, shape=shape)


class Tile(Op):
    def __init__(self, reps):
        self.reps = reps

    def forward(self, x):
        self.src = x.shape
        return np.tile(x, self.reps)

    def backward(self, gy):
        lead = len(self.reps) - len(self.src)
        src = (1,) * lead + self.src
        split = []
        for r, n in zip(self.reps, src):
            split += [r, n]
        return (gy.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(self.src),)


def index_key(key):
    """A numpy index from a PyTorch-style one (Tensors become arrays)."""
    if isinstance(key, Tensor):
        return key._array
    if isinstance(key, tuple):
        return tuple(k._array if isinstance(k, Tensor) else k for k in key)
    return key


def _is_basic(key) -> bool:
    items = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice, np.integer)) for k in items)


class GetItem(Op):
    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.src, self.dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy):
        g = np.zeros(self.src, self.dtype)
        if _is_basic(self.key):
            g[self.key] = gy
        else:  # advanced indexing: repeated indices must accumulate
            np.add.at(g, self.key, gy)
        return (g,)


def getitem(x: Tensor, key) -> Tensor:
    return GetItem.apply(x, key=index_key(key))


class Cat(Op):
    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, *xs):
        self.sizes = np.cumsum([x.shape[self.dim] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        parts = np.split(gy, self.sizes, axis=self.dim)
        return tuple(p if need else None for p, need in zip(parts, self.needs))


class Stack(Op):
    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, *xs):
        return np.stack(xs, axis=self.dim)

    def backward(self, gy):
        n = gy.shape[self.dim]
        return tuple(np.take(gy, i, axis=self.dim) if self.needs[i] else None for i in range(n))


def _as_tensors(tensors):
    ts = list(tensors)
    if not ts:
        raise RuntimeError("expected a non-empty list of Tensors")
    from .elementwise import promote
    first = ts[0]
    return [t if isinstance(t, Tensor) and t.dtype == first.dtype else promote(first, t)[1] for t in ts]


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along an existing dimension."""
    ts = _as_tensors(tensors)
    return Cat.apply(*ts, dim=dim % ts[0].ndim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack tensors along a new dimension."""
    ts = _as_tensors(tensors)
    return Stack.apply(*ts, dim=dim % (ts[0].ndim + 1))
