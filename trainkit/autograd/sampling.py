"""Sampling functions with PyTorch's overloads: ``normal``, ``bernoulli``, ``multinomial``, ``poisson``.

Draws come from the global generator (``manual_seed``) or the ``generator=``
given, the same way as ``rand``/``randn``. As in PyTorch, ``normal`` and
``bernoulli`` are recorded with a zero gradient for their parameters (the
sample is not reparameterised), so a graph through them still reaches its
leaves.
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from .function import Op
from .random import default_generator
from .tensor import Tensor


class RandomSample(Op):
    """A sample drawn from distribution parameters; its gradient with respect to them is zero."""

    def __init__(self, sample=None):
        self.sample = sample

    def forward(self, *params):
        self.shapes = [p.shape for p in params]
        return self.sample

    def backward(self, gy):
        return tuple(np.zeros(s, gy.dtype) for s in self.shapes)


def _sample_of(sample: np.ndarray, params: list) -> Tensor:
    tensors = [p for p in params if isinstance(p, Tensor)]
    return RandomSample.apply(*tensors, sample=sample) if tensors else Tensor(sample)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Normal samples: tensor ``mean`` and/or ``std`` (broadcast), or scalars with a ``size``."""
    rng = generator or default_generator()
    m = mean._array if isinstance(mean, Tensor) else mean
    s = std._array if isinstance(std, Tensor) else std
    if np.any(np.asarray(s) < 0):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None:
            raise TypeError("normal(): size is only accepted with scalar mean and std")
        arrays = [a for a in (m, s) if isinstance(a, np.ndarray)]
        floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
        dt = np.result_type(*floats) if floats else dtypes.get_default_dtype()
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        sample = (m + s * rng.standard_normal(shape)).astype(dt, copy=False)
        out = _sample_of(sample, [mean, std])
    else:
        if size is None:
            raise TypeError("normal() with scalar mean and std needs a size")
        shape = (size,) if isinstance(size, int) else tuple(size)
        dt = dtypes.to_dtype(dtype) or dtypes.get_default_dtype()
        out = Tensor((m + s * rng.standard_normal(shape)).astype(dt, copy=False))
    return out.requires_grad_(True) if requires_grad and out.grad_fn is None else out


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """1 with probability ``input`` (or the scalar ``p``), else 0, in ``input``'s dtype."""
    rng = generator or default_generator()
    probs = input._array if p is None else np.asarray(p)
    if np.any((probs < 0) | (probs > 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    sample = (rng.random(input.shape) < probs).astype(input.dtype)
    return _sample_of(sample, [input]) if input.dtype.kind == "f" else Tensor(sample)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:  # noqa: A002
    """Category indices drawn by the weights in each row of ``input`` (1-D or 2-D), as int64.

    Without replacement the draws are sequential, each from the categories not
    yet drawn (sampled at once by the exponential race, which has exactly that
    distribution).
    """
    rng = generator or default_generator()
    w = np.asarray(input._array, dtype=np.float64)
    if w.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    rows = w.reshape(1, -1) if w.ndim == 1 else w
    n = rows.shape[1]
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if (rows.sum(axis=1) <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement:
        if num_samples > n:
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        if ((rows > 0).sum(axis=1) < num_samples).any():
            raise RuntimeError("invalid multinomial distribution (with replacement=False, not enough non-negative "
                               "category to sample)")
        with np.errstate(divide="ignore"):
            keys = rng.standard_exponential(rows.shape) / rows  # first arrivals of independent races
        idx = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    else:
        cdf = np.cumsum(rows, axis=1)
        cdf /= cdf[:, -1:]
        offset = np.arange(rows.shape[0])[:, None]
        u = rng.random((rows.shape[0], num_samples))
        flat = np.searchsorted((cdf + offset).reshape(-1), (u + offset).reshape(-1), side="right")
        idx = np.minimum(flat.reshape(u.shape) - offset * n, n - 1)
    idx = idx.astype(np.int64)
    return Tensor(idx[0] if w.ndim == 1 else idx)


def poisson(input: Tensor, generator=None) -> Tensor:  # noqa: A002
    """Poisson counts with rates ``input``, in ``input``'s dtype."""
    rng = generator or default_generator()
    return Tensor(rng.poisson(input._array).astype(input.dtype))
