"""Tensor factories with PyTorch's names and dtype defaults.

Each accepts PyTorch's ``device=`` keyword: ``None``/``"cpu"`` (the only device);
any other raises the CPU-only RuntimeError.
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from .device import check_cpu
from .random import default_generator
from .tensor import Tensor, _dims


def _make(arr, requires_grad):
    t = Tensor(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float(dtype):
    return dtypes.to_dtype(dtype) or dtypes.get_default_dtype()


def tensor(data, dtype=None, requires_grad: bool = False, *, device=None, pin_memory: bool = False) -> Tensor:
    """A new tensor copied from ``data`` (Python floats → float32, ints → int64, like torch)."""
    check_cpu(device)
    if isinstance(data, Tensor):
        data = data._array
    arr = np.array(dtypes.infer_array(data, dtype), copy=True)
    return _make(arr, requires_grad)


def as_tensor(data, dtype=None, *, device=None) -> Tensor:
    """Like :func:`tensor` but shares memory with an ndarray of the right dtype."""
    check_cpu(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    return Tensor(dtypes.infer_array(data, dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    return Tensor(array)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros of ``size`` (default float dtype)."""
    check_cpu(device)
    return _make(np.zeros(_dims(size), _float(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones of ``size`` (default float dtype)."""
    check_cpu(device)
    return _make(np.ones(_dims(size), _float(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uninitialised values of ``size`` (default float dtype)."""
    check_cpu(device)
    return _make(np.empty(_dims(size), _float(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """``fill_value`` everywhere; the dtype follows the value unless given."""
    check_cpu(device)
    if dtype is None:
        dtype = dtypes.infer_array(fill_value).dtype
    return _make(np.full(tuple(size), fill_value, dtypes.to_dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """Zeros with ``t``'s shape and dtype."""
    check_cpu(device)
    return _make(np.zeros(t.shape, dtypes.to_dtype(dtype) or t.dtype), requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """Ones with ``t``'s shape and dtype."""
    check_cpu(device)
    return _make(np.ones(t.shape, dtypes.to_dtype(dtype) or t.dtype), requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """``fill_value`` with ``t``'s shape and dtype."""
    check_cpu(device)
    return _make(np.full(t.shape, fill_value, dtypes.to_dtype(dtype) or t.dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """Values from start to end (exclusive); int64 for integer arguments, float32 otherwise."""
    check_cpu(device)
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else \
            dtypes.get_default_dtype()
    return _make(np.arange(start, end, step, dtype=dtypes.to_dtype(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, *, device=None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    check_cpu(device)
    return _make(np.linspace(start, end, steps, dtype=_float(dtype)), requires_grad)


def rand(*size, dtype=None, generator=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from the global generator (see ``manual_seed``)."""
    check_cpu(device)
    rng = generator or default_generator()
    return _make(rng.random(_dims(size)).astype(_float(dtype)), requires_grad)


def randn(*size, dtype=None, generator=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from the global generator."""
    check_cpu(device)
    rng = generator or default_generator()
    return _make(rng.standard_normal(_dims(size)).astype(_float(dtype)), requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None, *, device=None) -> Tensor:
    """Uniform integers in [low, high) (int64 unless ``dtype``); ``randint(high, size)`` as torch's too."""
    check_cpu(device)
    if isinstance(high, (tuple, list)):  # torch's randint(high, size) overload (Size is a tuple)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    rng = generator or default_generator()
    return Tensor(rng.integers(low, high, size=tuple(size)).astype(dtypes.to_dtype(dtype) or dtypes.int64))


def randperm(n, generator=None, *, dtype=None, device=None) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``)."""
    check_cpu(device)
    rng = generator or default_generator()
    return Tensor(rng.permutation(n).astype(dtypes.to_dtype(dtype) or np.int64))


def rand_like(t: Tensor, *, dtype=None, device=None) -> Tensor:
    """Uniform samples with ``t``'s shape and dtype."""
    check_cpu(device)
    return rand(*t.shape, dtype=dtype or t.dtype)


def randn_like(t: Tensor, *, dtype=None, device=None) -> Tensor:
    """Standard normal samples with ``t``'s shape and dtype."""
    check_cpu(device)
    return randn(*t.shape, dtype=dtype or t.dtype)
