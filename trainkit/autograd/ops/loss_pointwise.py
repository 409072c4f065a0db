"""Elementwise losses in one node each: smooth L1 / Huber, binary cross-entropy on probabilities, KL divergence.

Both arguments may require grad (as in PyTorch); ``reduction`` is 'mean',
'sum' or 'none' ('batchmean' too for KL divergence).
"""
from __future__ import annotations

import numpy as np

from ..function import Op
from .loss import _finish, _scale_back


class SmoothL1(Op):
    """Smooth L1 (``0.5 d^2 / beta`` near 0, ``|d| - beta / 2`` beyond) or, with ``huber``, Huber with ``delta``."""

    def __init__(self, beta=1.0, huber=False, reduction="mean"):
        self.beta, self.huber, self.reduction = beta, huber, reduction

    def forward(self, x, y):
        self.d = d = x - y
        z = np.abs(d)
        b = self.beta
        if self.huber:
            elem = np.where(z < b, 0.5 * d * d, b * (z - 0.5 * b))
        else:
            elem = np.where(z < b, 0.5 * d * d / b, z - 0.5 * b)
        return _finish(elem.astype(d.dtype, copy=False), self.reduction)

    def backward(self, gy):
        d, b = self.d, self.beta
        scale = _scale_back(gy, d.shape, self.reduction, d.size, d.dtype)
        outer = b if self.huber else 1.0
        inner = d if self.huber else d / b
        g = np.where(d < -b, -outer, np.where(d > b, outer, inner)) * scale
        g = g.astype(d.dtype, copy=False)
        return (g if self.needs[0] else None, -g if self.needs[1] else None)


class BinaryCrossEntropy(Op):
    """``-w (t log x + (1 - t) log(1 - x))`` on probabilities x, logs clamped at -100 (PyTorch's rule)."""

    def __init__(self, weight=None, reduction="mean"):
        self.weight, self.reduction = weight, reduction

    def forward(self, x, t):
        self.x, self.t = x, t
        with np.errstate(divide="ignore"):
            logx = np.maximum(np.log(x), -100.0)
            log1mx = np.maximum(np.log1p(-x), -100.0)
        elem = -(t * logx + (1.0 - t) * log1mx)
        if self.weight is not None:
            elem = elem * self.weight
        return _finish(elem.astype(x.dtype, copy=False), self.reduction)

    def backward(self, gy):
        x, t = self.x, self.t
        scale = _scale_back(gy, x.shape, self.reduction, x.size, x.dtype)
        if self.weight is not None:
            scale = scale * self.weight
        gx = gt = None
        if self.needs[0]:
            gx = ((x - t) / np.maximum((1.0 - x) * x, 1e-12) * scale).astype(x.dtype, copy=False)
        if self.needs[1]:
            with np.errstate(divide="ignore"):
                gt = ((np.log1p(-x) - np.log(x)) * scale).astype(t.dtype, copy=False)
        return gx, gt


class KLDiv(Op):
    """``t (log t - x)`` (0 where t = 0), or ``exp(t) (t - x)`` with ``log_target``; x holds log-probabilities."""

    def __init__(self, reduction="mean", log_target=False):
        self.reduction, self.log_target = reduction, log_target

    def forward(self, x, t):
        self.x, self.t = x, t
        if self.log_target:
            self.et = np.exp(t)
            elem = self.et * (t - x)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                self.logt = np.where(t > 0, np.log(np.where(t > 0, t, 1.0)), 0.0).astype(t.dtype, copy=False)
            elem = t * self.logt - t * x
        if self.reduction == "batchmean":
            return np.asarray(elem.sum() / (x.shape[0] if x.ndim else 1), x.dtype)
        return _finish(elem.astype(x.dtype, copy=False), self.reduction)

    def backward(self, gy):
        x, t = self.x, self.t
        if self.reduction == "batchmean":
            scale = np.broadcast_to(gy / np.asarray(x.shape[0] if x.ndim else 1, x.dtype), x.shape)
        else:
            scale = _scale_back(gy, x.shape, self.reduction, x.size, x.dtype)
        gx = gt = None
        if self.needs[0]:
            gx = -(self.et if self.log_target else t) * scale
        if self.needs[1]:
            if self.log_target:
                gt = self.et * (t - x + 1.0) * scale
            else:
                gt = (self.logt + 1.0 - x) * scale
        return gx, gt
