"""The regression, probability and embedding losses of ``trainkit.nn.functional``.

``smooth_l1_loss``, ``huber_loss``, ``binary_cross_entropy`` and ``kl_div`` are
one engine node each; the margin losses are composed of engine ops with
PyTorch's formulas.
"""
from __future__ import annotations

import warnings

import numpy as np

from trainkit.autograd.ops import loss_pointwise as _lp
from trainkit.autograd.ops.elementwise import clamp, minimum, promote, where
from trainkit.autograd.tensor import Tensor
from trainkit.autograd.ops import loss as _loss
from trainkit.nn._functional_distance import pairwise_distance


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _pair_target(input, target, name):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}) in {name}. This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)
    return promote(input, target)


def _check_reduction(reduction: str, allowed=("mean", "sum", "none")) -> None:
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``); beta 0 is L1."""
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        a, b = _pair_target(input, target, "l1_loss")
        return _loss.L1Loss.apply(a, b, reduction=reduction)
    a, b = _pair_target(input, target, "smooth_l1_loss")
    return _lp.SmoothL1.apply(a, b, beta=beta, huber=False, reduction=reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:  # noqa: A002
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    a, b = _pair_target(input, target, "huber_loss")
    return _lp.SmoothL1.apply(a, b, beta=delta, huber=True, reduction=reduction)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Binary cross-entropy between probabilities ``input`` (in [0, 1]) and ``target``; logs clamp at -100."""
    _check_reduction(reduction)
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                         f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size.")
    x = input._array
    if ((x < 0) | (x > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    a, b = promote(input, target)
    w = None if weight is None else np.asarray(weight._array if isinstance(weight, Tensor) else weight, a.dtype)
    return _lp.BinaryCrossEntropy.apply(a, b, weight=w, reduction=reduction)


def kl_div(input: Tensor, target, reduction: str = "mean", log_target: bool = False) -> Tensor:  # noqa: A002
    """KL divergence ``target * (log target - input)`` with ``input`` holding log-probabilities.

    ``reduction='batchmean'`` divides the sum by the batch size (the true KL
    divergence); 'mean' divides by the number of elements, and PyTorch warns
    about that, as trainkit does.
    """
    _check_reduction(reduction, ("mean", "sum", "none", "batchmean"))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    a, b = promote(input, target)
    return _lp.KLDiv.apply(a, b, reduction=reduction, log_target=log_target)


def _labels_like(target, like: Tensor) -> Tensor:
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    return t if t.dtype == like.dtype else t.to(like.dtype)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)`` with ``target`` in {1, -1}."""
    _check_reduction(reduction)
    a, b = promote(input1, input2)
    y = _labels_like(target, a)
    return _reduce(clamp(-y * (a - b) + margin, min=0.0), reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` where target is 1, ``max(0, cos(x1, x2) - margin)`` where it is -1.

    The cosine is taken along the last dimension with 1e-12 added to each
    squared norm, PyTorch's formula.
    """
    _check_reduction(reduction)
    a, b = promote(input1, input2)
    d = a.ndim - 1
    prod = (a * b).sum(d)
    mag = ((a * a).sum(d) + 1e-12) * ((b * b).sum(d) + 1e-12)
    cos = prod / mag.sqrt()
    t = target._array if isinstance(target, Tensor) else np.asarray(target)
    zeros = Tensor(np.zeros(cos.shape, cos.dtype))
    pos = where(Tensor(t == 1), 1.0 - cos, zeros)
    neg = where(Tensor(t == -1), clamp(cos - margin, min=0.0), zeros)
    return _reduce(pos + neg, reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2.0,
                        eps: float = 1e-6, swap: bool = False, reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``pairwise_distance`` d; ``swap`` also tries d(p, n)."""
    _check_reduction(reduction)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(clamp(margin + d_pos - d_neg, min=0.0), reduction)


__all__ = ["smooth_l1_loss", "huber_loss", "binary_cross_entropy", "kl_div", "margin_ranking_loss",
           "cosine_embedding_loss", "triplet_margin_loss"]
