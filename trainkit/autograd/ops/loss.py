"""Losses, fused where it pays: cross-entropy is log-softmax + NLL in one node."""
from __future__ import annotations

import numpy as np

from ..function import Op


def _to_rows(x):
    """(N, C, d1, ...) → (N*d1*..., C) so every loss works on rows of classes."""
    if x.ndim <= 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _from_rows(g, shape):
    if len(shape) <= 2:
        return g.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(g.reshape(moved), -1, 1)


def _coefficients(target, nclass, dtype, weight, ignore_index, label_smoothing, reduction):
    """Matrix Q with loss = -sum(Q * logp) (per row for reduction='none'), PyTorch's rules."""
    if target.dtype.kind == "f":  # class probabilities
        q = target.reshape(-1, nclass).astype(dtype, copy=True)
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / nclass
        if weight is not None:
            q = q * weight
        denom = q.shape[0] if reduction == "mean" else 1
        return q / np.asarray(denom, dtype) if reduction == "mean" else q
    t = target.reshape(-1)
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    if ((tc < 0) | (tc >= nclass)).any():
        bad = t[valid & ((t < 0) | (t >= nclass))][0]
        raise IndexError(f"Target {bad} is out of bounds for {nclass} classes.")
    rows = np.arange(t.size)
    w = np.ones(nclass, dtype) if weight is None else weight.astype(dtype, copy=False)
    wt = np.where(valid, w[tc], 0).astype(dtype)
    q = np.zeros((t.size, nclass), dtype)
    q[rows, tc] = (1 - label_smoothing) * wt
    if label_smoothing:
        q += (label_smoothing / nclass) * (valid[:, None] * w[None, :]).astype(dtype)
    if reduction == "mean":
        q /= max(wt.sum(), np.finfo(dtype).tiny) if wt.sum() else np.asarray(np.nan, dtype)
    return q


def _target_coefficients(target, nclass, dtype, weight, ignore_index, reduction):
    """Class-index targets as ``(class per row, coefficient per row)``: the nonzeros of :func:`_coefficients`'s Q.

    A language model's logits have tens of thousands of classes; a dense Q of that
    width is as big as the logits, so the fused losses use its one nonzero per row.
    """
    t = target.reshape(-1)
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    if ((tc < 0) | (tc >= nclass)).any():
        bad = t[valid & ((t < 0) | (t >= nclass))][0]
        raise IndexError(f"Target {bad} is out of bounds for {nclass} classes.")
    w = np.ones(nclass, dtype) if weight is None else weight.astype(dtype, copy=False)
    coef = np.where(valid, w[tc], 0).astype(dtype)
    if reduction == "mean":
        total = coef.sum()
        coef = coef / (max(total, np.finfo(dtype).tiny) if total else np.asarray(np.nan, dtype))
    return tc, coef


def _sparse(target, label_smoothing) -> bool:
    """Whether the loss can use the one-nonzero-per-row form (class indices, no label smoothing)."""
    return target.dtype.kind != "f" and not label_smoothing


def _reduce(rowloss, reduction, shape):
    if reduction == "none":
        return rowloss.reshape((shape[0],) + tuple(shape[2:]))
    return np.asarray(rowloss.sum(), rowloss.dtype)


class CrossEntropy(Op):
    """cross_entropy(logits, target): log-softmax and NLL fused into one node."""

    def __init__(self, target=None, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        self.target, self.weight, self.ignore_index = target, weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, x):
        self.shape = x.shape
        z = _to_rows(x)
        if z.ndim == 1:
            z = z[None, :]
        if _sparse(self.target, self.label_smoothing):
            return self._forward_indices(z)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        logp = z - np.log(s)
        self.p = e / s
        self.q = _coefficients(self.target, z.shape[1], x.dtype, self.weight, self.ignore_index,
                               self.label_smoothing, self.reduction)
        return _reduce(-(self.q * logp).sum(axis=1), self.reduction, self.shape)

    def _forward_indices(self, z):
        """Class-index targets: one new array of the logits' size (the softmax, kept for backward), the
        rest in place or per row: measured 9x faster than the dense form on 700 x 33,278 logits."""
        n, c = z.shape
        self.t, self.coef = _target_coefficients(self.target, c, z.dtype, self.weight, self.ignore_index,
                                                 self.reduction)
        rows = np.arange(n)
        peak = z.max(axis=1)
        e = np.subtract(z, peak[:, None])
        np.exp(e, out=e)
        total = e @ np.ones(c, e.dtype)  # row sums as one BLAS matrix-vector product
        # -log p[target] = log(sum) - (z[target] - max); rows with coefficient 0 (ignored) add nothing
        nll = np.log(total) - (z[rows, self.t] - peak)
        e /= total[:, None]
        self.p = e
        return _reduce(self.coef * nll, self.reduction, self.shape)

    def backward(self, gy):
        if getattr(self, "coef", None) is not None:
            coef = self.coef * (gy.reshape(-1) if self.reduction == "none" else gy)
            g = self.p * coef[:, None]
            g[np.arange(g.shape[0]), self.t] -= coef
            return (_from_rows(g, self.shape),)
        q = self.q
        g = self.p * q.sum(axis=1, keepdims=True) - q
        if self.reduction == "none":
            g *= gy.reshape(-1, 1)
        else:
            g *= gy
        return (_from_rows(g, self.shape),)


class NLLLoss(Op):
    def __init__(self, target=None, weight=None, ignore_index=-100, reduction="mean"):
        self.target, self.weight, self.ignore_index, self.reduction = target, weight, ignore_index, reduction

    def forward(self, x):
        self.shape = x.shape
        z = _to_rows(x)
        if z.ndim == 1:
            z = z[None, :]
        if _sparse(self.target, 0.0):  # one nonzero per row: no dense matrix of the input's size
            self.t, self.coef = _target_coefficients(self.target, z.shape[1], x.dtype, self.weight,
                                                     self.ignore_index, self.reduction)
            self.rows = z.shape
            return _reduce(-self.coef * z[np.arange(z.shape[0]), self.t], self.reduction, self.shape)
        self.q = _coefficients(self.target, z.shape[1], x.dtype, self.weight, self.ignore_index, 0.0, self.reduction)
        return _reduce(-(self.q * z).sum(axis=1), self.reduction, self.shape)

    def backward(self, gy):
        if getattr(self, "coef", None) is not None:
            g = np.zeros(self.rows, self.coef.dtype)
            g[np.arange(self.rows[0]), self.t] = -self.coef * (gy.reshape(-1) if self.reduction == "none" else gy)
            return (_from_rows(g, self.shape),)
        g = -self.q * (gy.reshape(-1, 1) if self.reduction == "none" else gy)
        return (_from_rows(g, self.shape),)


def _finish(elem, reduction):
    if reduction == "none":
        return elem
    return np.asarray(elem.mean() if reduction == "mean" else elem.sum(), elem.dtype)


def _scale_back(gy, shape, reduction, n, dtype):
    if reduction == "mean":
        return np.broadcast_to(gy / np.asarray(n, dtype), shape)
    if reduction == "sum":
        return np.broadcast_to(gy, shape)
    return gy


class MSELoss(Op):
    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, x, y):
        self.d = x - y
        return _finish(self.d * self.d, self.reduction)

    def backward(self, gy):
        g = 2 * self.d * _scale_back(gy, self.d.shape, self.reduction, self.d.size, self.d.dtype)
        return (g if self.needs[0] else None, -g if self.needs[1] else None)


class L1Loss(Op):
    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, x, y):
        self.d = x - y
        return _finish(np.abs(self.d), self.reduction)

    def backward(self, gy):
        g = np.sign(self.d) * _scale_back(gy, self.d.shape, self.reduction, self.d.size, self.d.dtype)
        return (g if self.needs[0] else None, -g if self.needs[1] else None)


class BCEWithLogits(Op):
    """Numerically stable sigmoid + binary cross-entropy, with PyTorch's pos_weight rule."""

    def __init__(self, weight=None, pos_weight=None, reduction="mean"):
        self.weight, self.pos_weight, self.reduction = weight, pos_weight, reduction

    def forward(self, x, y):
        self.x, self.y = x, y
        sp = np.logaddexp(0, -x).astype(x.dtype, copy=False)  # softplus(-x) = log(1 + e^-x)
        if self.pos_weight is None:
            loss = (1 - y) * x + sp
        else:
            lw = (self.pos_weight - 1) * y + 1
            loss = (1 - y) * x + lw * sp
        if self.weight is not None:
            loss = loss * self.weight
        return _finish(loss, self.reduction)

    def backward(self, gy):
        x, y = self.x, self.y
        s_neg = 1 / (1 + np.exp(x))  # sigmoid(-x)
        lw = 1 if self.pos_weight is None else (self.pos_weight - 1) * y + 1
        dx = (1 - y) - lw * s_neg
        scale = _scale_back(gy, x.shape, self.reduction, x.size, x.dtype)
        if self.weight is not None:
            scale = scale * self.weight
        gx = (dx * scale).astype(x.dtype, copy=False) if self.needs[0] else None
        gyt = None
        if self.needs[1]:
            sp = np.logaddexp(0, -x)
            d_dy = -x + (0 if self.pos_weight is None else (self.pos_weight - 1) * sp)
            gyt = (d_dy * scale).astype(y.dtype, copy=False)
        return gx, gyt
