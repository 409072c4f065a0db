"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``.

Both work in place on the gradient arrays (``p.grad._array``) between
``loss.backward()`` and ``optimizer.step()``, and never build graph.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from trainkit.autograd.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters) -> list[np.ndarray]:
    """The gradient arrays of ``parameters`` (a Tensor or an iterable), skipping None."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    out = []
    for p in parameters:
        if p.grad is None:
            continue
        g = p.grad
        out.append(g._array if hasattr(g, "_array") else np.asarray(g))
    return out


def _vector_norm(x: np.ndarray, norm_type: float) -> np.ndarray:
    """``torch.linalg.vector_norm(x, norm_type)`` over all elements, in x's dtype."""
    flat = x.reshape(-1)
    dtype = x.dtype.type
    if flat.size == 0:
        return dtype(0)
    if norm_type == 2.0:
        # BLAS dot is several times faster than np.linalg.norm's generic path.
        return np.sqrt(np.dot(flat, flat))
    if norm_type == math.inf:
        return np.max(np.abs(flat))
    if norm_type == -math.inf:
        return np.min(np.abs(flat))
    if norm_type == 0.0:
        return dtype(np.count_nonzero(flat))
    if norm_type == 1.0:
        return np.sum(np.abs(flat))
    return np.sum(np.abs(flat) ** dtype(norm_type)) ** dtype(1.0 / norm_type)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scale gradients in place so that their joint norm is at most ``max_norm``.

    The norm is computed over all gradients together, as if concatenated into
    one vector; every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``, as PyTorch does.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is clipped.
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm; ``float("inf")`` for the max norm.
        error_if_nonfinite: raise RuntimeError when the total norm is NaN or inf.
        foreach: accepted for PyTorch compatibility; ignored.

    Returns:
        The total norm of the gradients before clipping, as a 0-d Tensor.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*grads)
    norms = np.array([_vector_norm(g, norm_type) for g in grads], dtype=dtype)
    total = np.asarray(_vector_norm(norms, norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    # Same float32 arithmetic as PyTorch's tensor expression, and, like
    # PyTorch, multiply even when the coefficient is 1 (NaN propagates).
    coef = dtype.type(float(max_norm)) / (total + dtype.type(1e-6))
    coef = np.minimum(coef, dtype.type(1.0))
    for g in grads:
        np.multiply(g, coef.astype(g.dtype), out=g)
    return Tensor(total)


def clip_grad_value_(
    parameters: Tensor | Iterable[Tensor],
    clip_value: float,
    foreach: bool | None = None,
) -> None:
    """Clamp every gradient element in place to ``[-clip_value, clip_value]``.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is clipped.
        clip_value: the largest allowed magnitude.
        foreach: accepted for PyTorch compatibility; ignored.
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
