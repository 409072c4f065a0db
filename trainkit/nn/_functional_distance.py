"""Distance functions of ``trainkit.nn.functional``: ``cosine_similarity`` and ``pairwise_distance``.

Composed of engine ops, with PyTorch's formulas, so gradients follow by the chain rule.
"""
from __future__ import annotations

import numpy as np

from trainkit.autograd.ops import linalg as _linalg
from trainkit.autograd.ops.elementwise import promote
from trainkit.autograd.tensor import Tensor


def _floor_value(t: Tensor, eps: float) -> Tensor:
    """``max(t, eps)`` in value, with the gradient of ``t`` itself.

    PyTorch clamps the norms inside ``cosine_similarity`` in place under
    ``no_grad``, so the clamp changes the forward value but not the backward
    path; adding the (constant) difference reproduces exactly that.
    """
    lifted = np.maximum(t._array, np.asarray(eps, t.dtype)) - t._array
    return t + Tensor(lifted) if lifted.any() else t


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast).

    Each is divided by its norm (floored at ``eps``) before the dot product,
    which keeps the result in [-1, 1], as PyTorch computes it.
    """
    a, b = promote(x1, x2)
    shape = np.broadcast_shapes(a.shape, b.shape)
    if a.shape != shape:
        a = a.expand(*shape)
    if b.shape != shape:
        b = b.expand(*shape)
    na = _floor_value(_linalg.norm(a, 2, dim, keepdim=True), eps)
    nb = _floor_value(_linalg.norm(b, 2, dim, keepdim=True), eps)
    return ((a / na) * (b / nb)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The p-norm of ``x1 - x2 + eps`` over the last dimension (PyTorch's formula, eps inside the norm)."""
    a, b = promote(x1, x2)
    return _linalg.norm(a - b + eps, p, -1, keepdim=keepdim)
