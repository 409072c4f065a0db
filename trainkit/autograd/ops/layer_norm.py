"""Layer normalisation over the trailing dimensions, in one node (PyTorch's ``F.layer_norm``).

Rows are the leading dimensions flattened, so every reduction is a matrix-vector
product or an ``einsum`` over rows (BLAS and a fused multiply-sum: measured 2-4x
faster than ``mean``/``sum`` with ``keepdims`` on a transformer's (768, 128)
activations) and the elementwise work is done in place: one node of a few
passes, forward and backward.

With numba's OpenMP drivers (:func:`.jit.parallel`), a large input's rows are
instead normalised in compiled pieces of rows on OpenMP's threads: statistics
in float64, one pass to write the output, and one pass backward.
"""
from __future__ import annotations

import math

import numpy as np

from ..function import Op
from . import jit

#: Inputs with at least this many values take the compiled pieces (smaller ones would pay numba's import
#: for nothing); a piece holds about PIECE_VALUES values (whole rows).
COMPILED_MIN = 1 << 16
PIECE_VALUES = 1 << 14


class LayerNorm(Op):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``ndim`` dimensions (biased variance).

    Inputs are ``(x,)``, ``(x, weight)`` or ``(x, weight, bias)``; weight and bias have the normalised shape.
    """

    def __init__(self, ndim=1, eps=1e-5):
        self.nd, self.eps = ndim, eps

    def forward(self, x, weight=None, bias=None):
        n = math.prod(x.shape[x.ndim - self.nd:])
        rows = x.reshape(-1, n)
        self.par = self._drivers(x, weight, bias)
        if self.par is not None:
            return self._forward_compiled(x, rows, n, weight, bias)
        ones = np.full(n, 1.0 / n, x.dtype)
        xc = rows - (rows @ ones)[:, None]
        var = np.einsum("ij,ij->i", xc, xc) / n
        invstd = 1.0 / np.sqrt(var + self.eps)
        xc *= invstd[:, None].astype(x.dtype, copy=False)
        xhat = xc
        if self.needs is not None:
            self.xhat, self.invstd, self.weight, self.ones = xhat, invstd, weight, ones
        if weight is None:
            return xhat.reshape(x.shape)
        y = xhat * weight.reshape(-1)
        if bias is not None:
            y += bias.reshape(-1)
        return y.reshape(x.shape)

    def _drivers(self, x, weight, bias):
        """The compiled drivers when they take this input (large, float32/64, parameters of its dtype)."""
        if x.size < COMPILED_MIN or any(p is not None and p.dtype != x.dtype for p in (weight, bias)):
            return None
        return jit.parallel(x.dtype)

    def _forward_compiled(self, x, rows, n, weight, bias):
        rows = np.ascontiguousarray(rows)
        w = np.ones(n, x.dtype) if weight is None else np.ascontiguousarray(weight).reshape(-1)
        b = np.zeros(n, x.dtype) if bias is None else np.ascontiguousarray(bias).reshape(-1)
        xhat = np.empty_like(rows)
        y = xhat if weight is None and bias is None else np.empty_like(rows)
        invstd = np.empty(rows.shape[0])
        self.piece = max(1, PIECE_VALUES // n)
        self.par.layer_norm_forward(rows, w, b, self.eps, xhat, y, invstd, self.piece)
        if self.needs is not None:
            self.xhat, self.invstd, self.weight, self.w = xhat, invstd, weight, w
        return y.reshape(x.shape)

    def _backward_compiled(self, gy):
        xhat, weight = self.xhat, self.weight
        g = np.ascontiguousarray(gy).reshape(xhat.shape)
        gx = np.empty_like(xhat)
        gw_parts, gb_parts = self.par.layer_norm_backward(g, xhat, self.w, self.invstd, gx, self.piece)
        n_params = len(self.needs) - 1
        gw = gb = None
        if n_params >= 1 and self.needs[1]:  # pieces summed in order: the same on any thread count
            gw = gw_parts.sum(axis=0).astype(xhat.dtype).reshape(weight.shape)
        if n_params >= 2 and self.needs[2]:
            gb = gb_parts.sum(axis=0).astype(xhat.dtype).reshape(weight.shape)
        return (gx.reshape(gy.shape) if self.needs[0] else None, gw, gb)[: 1 + n_params]

    def backward(self, gy):
        if self.par is not None:
            return self._backward_compiled(gy)
        xhat, ones, weight = self.xhat, self.ones, self.weight
        n = xhat.shape[1]
        g = gy.reshape(-1, n)
        gx = gw = gb = None
        n_params = len(self.needs) - 1
        if self.needs[0]:
            gxhat = g * weight.reshape(-1) if weight is not None else g.copy()
            m2 = np.einsum("ij,ij->i", gxhat, xhat) / n
            gxhat -= (gxhat @ ones)[:, None]
            gxhat -= xhat * m2[:, None]
            gxhat *= self.invstd[:, None].astype(gxhat.dtype, copy=False)
            gx = gxhat.reshape(gy.shape)
        if n_params >= 1 and self.needs[1]:
            gw = np.einsum("ij,ij->j", g, xhat).reshape(weight.shape)
        if n_params >= 2 and self.needs[2]:
            gb = (np.ones(g.shape[0], g.dtype) @ g).reshape(weight.shape)
        return (gx, gw, gb)[: 1 + n_params]
