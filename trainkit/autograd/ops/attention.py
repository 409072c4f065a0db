"""Scaled dot-product attention in one graph node: batched GEMMs over the leading (batch x heads) dimensions.

``softmax(q kᵀ * scale + mask) v`` with the masking, softmax and dropout fused
between two batched matrix products; backward is the four GEMMs of the
analytic gradient and one fused softmax-gradient pass. PyTorch's
``F.scaled_dot_product_attention`` semantics: a boolean mask marks the
positions that *take part*, a float mask is added, ``is_causal`` keeps the
lower triangle aligned at the top left, and a row with every position masked
gives zeros (not NaN, as PyTorch's CPU kernel).

The scores are kept transposed, ``(..., S, L)`` (keys along the rows): the
softmax then reduces along the second-to-last axis, which numpy vectorises
across the queries (a row max along the last axis measured 3.4x slower), and
the transposes are free in the GEMMs.
"""
from __future__ import annotations

import functools

import numpy as np

from ..function import Op, sum_to


def causal_mask(length: int, source: int) -> np.ndarray:
    """True where query i may attend key j (``j <= i``): ``ones(L, S).tril()``."""
    return np.tri(length, source, dtype=bool)


@functools.lru_cache(maxsize=16)
def _causal_hidden(length: int, source: int) -> np.ndarray:
    """``(S, L)``: True where key j is *after* query i (masked out), in the transposed score layout."""
    return ~causal_mask(length, source).T


def _sw(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _masked(s: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """``s`` with -inf where ``hidden`` (broadcast), in place when the shapes allow."""
    shape = np.broadcast_shapes(s.shape, hidden.shape)
    if shape != s.shape:
        s = np.broadcast_to(s, shape).copy()
    np.copyto(s, -np.inf, where=hidden)
    return s


class ScaledDotProductAttention(Op):
    """Inputs ``(q, k, v)`` or ``(q, k, v, mask)`` (a float additive mask that may need a gradient).

    ``keep`` is a boolean mask (True: attend) that takes no gradient; ``causal``
    adds the top-left lower-triangular constraint; ``dropout_p`` with
    ``generator`` drops attention weights (scaled by ``1/(1-p)``). With
    ``packed`` the first input is self-attention's ``qkv`` stacked on a leading
    axis of 3 (a view of one projection), and its gradient comes back as one array.
    """

    def __init__(self, scale: float = 1.0, keep=None, causal: bool = False, dropout_p: float = 0.0, generator=None,
                 packed: bool = False):
        self.scale, self.keep, self.causal = scale, keep, causal
        self.dropout_p, self.generator, self.packed = dropout_p, generator, packed

    def forward(self, *inputs):
        if self.packed:
            qkv, *rest = inputs
            if self.needs is not None:
                self.qkv_shape = qkv.shape
            return self._forward(qkv[0], qkv[1], qkv[2], *rest)
        return self._forward(*inputs)

    def backward(self, go):
        if not self.packed:
            return self._backward(go, self.needs)
        needs = self.needs
        g = np.empty(self.qkv_shape, go.dtype)
        gq, gk, gv, gm = self._backward(go, (needs[0],) * 3 + tuple(needs[1:]), out=g)
        return (g,) + ((gm,) if len(needs) > 1 else ())

    def _forward(self, q, k, v, mask=None):
        st = np.matmul(k, _sw(q))  # scores, transposed: (..., S, L)
        st *= np.asarray(self.scale, st.dtype)
        if mask is not None:
            m = _sw(mask.reshape((1,) * (2 - mask.ndim) + mask.shape) if mask.ndim < 2 else mask)
            if np.broadcast_shapes(st.shape, m.shape) == st.shape:
                st += m
            else:
                st = st + m
        if self.causal:
            st = _masked(st, _causal_hidden(q.shape[-2], k.shape[-2]))
        if self.keep is not None:
            keep = np.asarray(self.keep)
            st = _masked(st, ~_sw(keep.reshape((1,) * (2 - keep.ndim) + keep.shape) if keep.ndim < 2 else keep))
        peak = st.max(axis=-2, keepdims=True)
        empty = ~np.isfinite(peak)  # every key masked: zeros, as PyTorch's CPU kernel gives
        if empty.any():
            peak[empty] = 0
        st -= peak
        pt = np.exp(st, out=st)
        total = pt.sum(axis=-2, keepdims=True)
        if empty.any():
            total[total == 0] = 1
        pt /= total
        pdt = pt
        if self.dropout_p > 0:
            drop = self.generator.random(_sw(pt).shape, dtype=np.float32) >= self.dropout_p
            factor = _sw(drop * np.asarray(1.0 / (1.0 - self.dropout_p), pt.dtype)).astype(pt.dtype, copy=False)
            pdt = pt * factor
            self.factor = factor if self.needs is not None else None
        out = np.matmul(_sw(pdt), v)
        if self.needs is not None:
            self.q, self.k, self.v, self.pt, self.pdt = q, k, v, pt, pdt
            self.mask_shape = None if mask is None else mask.shape
        return out

    def _backward(self, go, needs, out=None):
        """Gradients of q, k, v (and the mask); with ``out`` (packed), q, k, v's are written into out[0..2]."""
        q, k, v, pt, pdt = self.q, self.k, self.v, self.pt, self.pdt
        gq = gk = gv = gm = None
        if needs[2]:
            gv = np.matmul(pdt, go, out=None if out is None else out[2])
            gv = gv if out is not None else sum_to(gv, v.shape)
        dst = np.matmul(v, _sw(go))  # d scores after softmax (and dropout), transposed: (..., S, L)
        if self.dropout_p > 0:
            dst *= self.factor
        # softmax backward, fused: ds = p * (dp - sum_j(dp * p)), the sum over the keys (axis -2 here)
        dst -= np.einsum("...sl,...sl->...l", dst, pt)[..., None, :]
        dst *= pt
        if len(needs) > 3 and needs[3]:
            gm = sum_to(np.array(_sw(dst)), self.mask_shape)  # a copy: dst is scaled in place below
        dst *= np.asarray(self.scale, dst.dtype)
        if out is not None:
            np.matmul(_sw(dst), k, out=out[0])
            np.matmul(dst, q, out=out[1])
            return out[0], out[1], out[2], gm
        if needs[0]:
            gq = sum_to(np.matmul(_sw(dst), k), q.shape)
        if needs[1]:
            gk = sum_to(np.matmul(dst, q), k.shape)
        return (gq, gk, gv, gm)[:len(needs)]
