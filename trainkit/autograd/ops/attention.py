"""Scaled dot-product attention in one graph node: batched GEMMs over the leading (batch x heads) dimensions.

``softmax(q kᵀ * scale + mask) v`` with the masking, softmax and dropout fused
between two batched matrix products; backward is the four GEMMs of the
analytic gradient and one fused softmax-gradient pass. PyTorch's
``F.scaled_dot_product_attention`` semantics: a boolean mask marks the
positions that *take part*, a float mask is added, ``is_causal`` keeps the
lower triangle aligned at the top left, and a row with every position masked
gives zeros (not NaN, as PyTorch's CPU kernel).
"""
from __future__ import annotations

import numpy as np

from ..function import Op, sum_to


def causal_mask(length: int, source: int) -> np.ndarray:
    """True where query i may attend key j (``j <= i``): ``ones(L, S).tril()``."""
    return np.tri(length, source, dtype=bool)


class ScaledDotProductAttention(Op):
    """Inputs ``(q, k, v)`` or ``(q, k, v, mask)`` (a float additive mask that may need a gradient).

    ``keep`` is a boolean mask (True: attend) that takes no gradient; ``causal``
    adds the top-left lower-triangular constraint; ``dropout_p`` with
    ``generator`` drops attention weights (scaled by ``1/(1-p)``).
    """

    def __init__(self, scale: float = 1.0, keep=None, causal: bool = False, dropout_p: float = 0.0, generator=None):
        self.scale, self.keep, self.causal = scale, keep, causal
        self.dropout_p, self.generator = dropout_p, generator

    def forward(self, q, k, v, mask=None):
        s = np.matmul(q, np.swapaxes(k, -1, -2))
        s *= np.asarray(self.scale, s.dtype)
        if mask is not None:
            s = s + mask
        keep = self.keep
        if self.causal:
            tri = causal_mask(s.shape[-2], s.shape[-1])
            keep = tri if keep is None else keep & tri
        if keep is not None:
            s = np.where(keep, s, -np.inf)
        peak = s.max(axis=-1, keepdims=True)
        empty = ~np.isfinite(peak)  # every position masked: zeros, as PyTorch's CPU kernel gives
        if empty.any():
            peak = np.where(empty, 0, peak)
        s -= peak
        p = np.exp(s, out=s)
        total = p.sum(axis=-1, keepdims=True)
        if empty.any():
            total = np.where(total == 0, 1, total)
        p /= total
        pd = p
        if self.dropout_p > 0:
            drop = self.generator.random(p.shape, dtype=np.float32) >= self.dropout_p
            factor = (drop * np.asarray(1.0 / (1.0 - self.dropout_p), p.dtype)).astype(p.dtype, copy=False)
            pd = p * factor
            self.factor = factor if self.needs is not None else None
        out = np.matmul(pd, v)
        if self.needs is not None:
            self.q, self.k, self.v, self.p, self.pd = q, k, v, p, pd
            self.mask_shape = None if mask is None else mask.shape
        return out

    def backward(self, go):
        q, k, v, p, pd = self.q, self.k, self.v, self.p, self.pd
        needs = self.needs
        gq = gk = gv = gm = None
        if needs[2]:
            gv = sum_to(np.matmul(np.swapaxes(pd, -1, -2), go), v.shape)
        dp = np.matmul(go, np.swapaxes(v, -1, -2))
        if self.dropout_p > 0:
            dp *= self.factor
        # softmax backward, fused: ds = p * (dp - sum(dp * p))
        ds = dp
        ds -= (dp * p).sum(axis=-1, keepdims=True)
        ds *= p
        if len(needs) > 3 and needs[3]:
            gm = sum_to(ds, self.mask_shape)
            if gm is ds:  # ds is scaled in place below
                gm = ds.copy()
        ds *= np.asarray(self.scale, ds.dtype)
        if needs[0]:
            gq = sum_to(np.matmul(ds, k), q.shape)
        if needs[1]:
            gk = sum_to(np.matmul(np.swapaxes(ds, -1, -2), q), k.shape)
        return (gq, gk, gv, gm)[:len(needs)]
