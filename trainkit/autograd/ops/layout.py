"""Ops that rearrange elements: flip, roll, movedim, narrow/select, split/chunk/unbind, repeat_interleave, pad.

Pieces from ``split``/``chunk``/``narrow`` are basic slices (:class:`~.shape.GetItem`);
``flip`` and ``roll`` return copies, as PyTorch's do, so an in-place change of
the result never writes through to the input.
"""
from __future__ import annotations

import numpy as np

from ..function import Op
from ..tensor import Tensor
from .elementwise import raw
from .shape import GetItem, Permute


def _dim(dim: int, ndim: int) -> int:
    return dim % ndim if ndim else 0


def _dims_tuple(dims, ndim: int) -> tuple:
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    return tuple(_dim(d, ndim) for d in dims)


class Flip(Op):
    """Reverse the order along ``dims`` (a copy); the gradient is flipped back."""

    def __init__(self, dims=()):
        self.dims = dims

    def forward(self, x):
        return np.flip(x, self.dims).copy()

    def backward(self, gy):
        return (np.flip(gy, self.dims),)


class Roll(Op):
    """Shift elements cyclically; with ``dims=None`` the flattened tensor is rolled."""

    def __init__(self, shifts=0, dims=None):
        self.shifts, self.dims = shifts, dims

    def forward(self, x):
        return np.roll(x, self.shifts, self.dims)

    def backward(self, gy):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return (np.roll(gy, back, self.dims),)


class RepeatInterleave(Op):
    """Each element (or slice along ``dim``) repeated ``repeats`` times; the gradient sums each group."""

    def __init__(self, repeats=1, dim=0):
        self.repeats, self.dim = repeats, dim

    def forward(self, x):
        self.shape = x.shape
        return np.repeat(x, self.repeats, axis=self.dim)

    def backward(self, gy):
        d, r = self.dim, self.repeats
        if np.ndim(r) == 0:
            n = self.shape[d]
            return (gy.reshape(gy.shape[:d] + (n, int(r)) + gy.shape[d + 1:]).sum(axis=d + 1),)
        r = np.asarray(r)
        g = np.zeros(self.shape, gy.dtype)
        owner = np.repeat(np.arange(self.shape[d]), r)  # the source slice of each output slice
        np.add.at(np.moveaxis(g, d, 0), owner, np.moveaxis(gy, d, 0))
        return (g,)


class ConstantPad(Op):
    """Pad (or, for negative amounts, crop) each dimension with a constant; ``pads`` is ((before, after), ...)."""

    def __init__(self, pads=(), value=0.0):
        self.pads, self.value = pads, value

    def forward(self, x):
        self.shape = x.shape
        src, dst, out_shape = [], [], []
        for n, (lo, hi) in zip(x.shape, self.pads):
            m = n + lo + hi
            if m < 0:
                raise RuntimeError(f"padding ({lo}, {hi}) leaves a negative size for a dimension of size {n}")
            out_shape.append(m)
            s0, s1 = max(-lo, 0), n - max(-hi, 0)  # the input range kept
            d0 = max(lo, 0)
            src.append(slice(s0, max(s1, s0)))
            dst.append(slice(d0, d0 + max(s1 - s0, 0)))
        self.src, self.dst = tuple(src), tuple(dst)
        out = np.full(out_shape, self.value, dtype=x.dtype)
        out[self.dst] = x[self.src]
        return out

    def backward(self, gy):
        g = np.zeros(self.shape, gy.dtype)
        g[self.src] = gy[self.dst]
        return (g,)


def flip(input: Tensor, dims) -> Tensor:  # noqa: A002 - PyTorch's names
    """``input`` reversed along ``dims`` (a copy)."""
    return Flip.apply(input, dims=_dims_tuple(dims, input.ndim))


def fliplr(input: Tensor) -> Tensor:  # noqa: A002
    """Reverse the columns (dimension 1)."""
    return flip(input, (1,))


def flipud(input: Tensor) -> Tensor:  # noqa: A002
    """Reverse the rows (dimension 0)."""
    return flip(input, (0,))


def roll(input: Tensor, shifts, dims=None) -> Tensor:  # noqa: A002
    """Roll elements by ``shifts`` along ``dims`` (the flattened tensor when dims is None)."""
    if isinstance(shifts, (list, tuple)):
        shifts = tuple(int(s) for s in shifts)
        if dims is None:
            if len(shifts) != 1:
                raise RuntimeError("roll(): shifts and dims must align when dims is not given")
            shifts = shifts[0]
    if dims is not None:
        dims = _dims_tuple(dims, input.ndim)
        if not isinstance(shifts, tuple):
            shifts = (int(shifts),)
        if len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll.apply(input, shifts=shifts, dims=dims)


def movedim(input: Tensor, source, destination) -> Tensor:  # noqa: A002
    """Move dimensions ``source`` to positions ``destination``; the others keep their order."""
    src = _dims_tuple(source, input.ndim)
    dst = _dims_tuple(destination, input.ndim)
    if len(src) != len(dst):
        raise RuntimeError("movedim: Invalid source or destination dims: source and destination must have the "
                           "same number of dims")
    order = [d for d in range(input.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return Permute.apply(input, dims=tuple(order))


moveaxis = movedim


def _slice(input: Tensor, dim: int, start: int, stop: int) -> Tensor:  # noqa: A002
    key = (slice(None),) * dim + (slice(start, stop),)
    return GetItem.apply(input, key=key)


def narrow(input: Tensor, dim: int, start, length: int) -> Tensor:  # noqa: A002
    """The slice ``start:start+length`` of dimension ``dim`` (``start`` may be negative)."""
    d = _dim(dim, input.ndim)
    n = input.shape[d]
    start = int(raw(start))
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length <= n - start):
        raise IndexError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return _slice(input, d, start, start + length)


def select(input: Tensor, dim: int, index: int) -> Tensor:  # noqa: A002
    """The slice ``index`` of dimension ``dim``, with that dimension removed."""
    d = _dim(dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {tuple(input.shape)} at dimension {dim}")
    return GetItem.apply(input, key=(slice(None),) * d + (int(index),))


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size_or_sections`` along ``dim`` (the last may be smaller), or of the listed sizes."""
    d = _dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {dim}), but got split_sizes={sizes}")
    else:
        step = int(split_size_or_sections)
        if step <= 0 and n:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
    out, start = [], 0
    for s in sizes:
        out.append(_slice(tensor, d, start, start + s))
        start += s
    return tuple(out)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:  # noqa: A002
    """Split into ``chunks`` pieces of ceil(n / chunks) (fewer pieces when they run out, as in PyTorch)."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    n = input.shape[_dim(dim, input.ndim)]
    return split(input, max(-(-n // chunks), 1), dim)


def tensor_split(input: Tensor, indices_or_sections, dim: int = 0) -> tuple:  # noqa: A002
    """Split into n nearly equal pieces (sizes differ by at most one), or at the listed indices."""
    d = _dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(indices_or_sections, (list, tuple)):
        bounds = [0] + [min(max(int(i) + (n if int(i) < 0 else 0), 0), n) for i in indices_or_sections] + [n]
    else:
        k = int(indices_or_sections)
        base, extra = divmod(n, k)
        sizes = [base + 1] * extra + [base] * (k - extra)
        bounds = [0] + list(np.cumsum(sizes))
    return tuple(_slice(input, d, int(a), int(max(a, b))) for a, b in zip(bounds[:-1], bounds[1:]))


def unbind(input: Tensor, dim: int = 0) -> tuple:  # noqa: A002
    """The slices along ``dim``, each without that dimension."""
    d = _dim(dim, input.ndim)
    return tuple(GetItem.apply(input, key=(slice(None),) * d + (i,)) for i in range(input.shape[d]))


def repeat_interleave(input: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:  # noqa: A002
    """Repeat each element ``repeats`` times (an int or one count per element) along ``dim``.

    Without ``dim`` the input is flattened first. ``repeat_interleave(counts)``
    alone gives ``[0]*counts[0] + [1]*counts[1] + ...``.
    """
    if repeats is None:  # repeat_interleave(repeats_tensor)
        counts = raw(input)
        return Tensor(np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts))
    r = raw(repeats)
    if np.ndim(r) > 0:
        r = np.asarray(r).astype(np.int64).reshape(-1)
        if r.size == 1:
            r = int(r[0])
    else:
        r = int(r)
    x = input
    if dim is None:
        x, d = input.reshape(-1), 0
    else:
        d = _dim(dim, input.ndim)
    return RepeatInterleave.apply(x, repeats=r, dim=d)


def constant_pad(input: Tensor, pads, value=0.0) -> Tensor:  # noqa: A002
    """Pad with ``value``; ``pads`` is PyTorch's flat (last_lo, last_hi, prev_lo, prev_hi, ...) list."""
    pads = [int(p) for p in pads]
    if len(pads) % 2 or len(pads) // 2 > input.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dimensions of "
                           f"the input, got {len(pads)} for {input.ndim} dimensions")
    per_dim = [(0, 0)] * input.ndim
    for i in range(len(pads) // 2):
        per_dim[input.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    return ConstantPad.apply(input, pads=tuple(per_dim), value=value)
