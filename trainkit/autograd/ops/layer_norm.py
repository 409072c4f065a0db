"""Layer normalisation over the trailing dimensions, in one node (PyTorch's ``F.layer_norm``)."""
from __future__ import annotations

import numpy as np

from ..function import Op


class LayerNorm(Op):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``ndim`` dimensions (biased variance).

    Inputs are ``(x,)``, ``(x, weight)`` or ``(x, weight, bias)``; weight and bias have the normalised shape.
    """

    def __init__(self, ndim=1, eps=1e-5):
        self.nd, self.eps = ndim, eps

    def forward(self, x, weight=None, bias=None):
        axes = tuple(range(x.ndim - self.nd, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = (xc * xc).mean(axis=axes, keepdims=True)
        self.invstd = 1.0 / np.sqrt(var + self.eps)
        self.xhat = xc * self.invstd
        self.axes, self.weight = axes, weight
        y = self.xhat if weight is None else self.xhat * weight
        return y if bias is None else y + bias

    def backward(self, gy):
        xhat, axes = self.xhat, self.axes
        lead = tuple(range(xhat.ndim - self.nd))
        gx = gw = gb = None
        n_params = len(self.needs) - 1
        if self.needs[0]:
            gxhat = gy if self.weight is None else gy * self.weight
            m1 = gxhat.mean(axis=axes, keepdims=True)
            m2 = (gxhat * xhat).mean(axis=axes, keepdims=True)
            gx = (gxhat - m1 - xhat * m2) * self.invstd
        if n_params >= 1 and self.needs[1]:
            gw = (gy * xhat).sum(axis=lead)
        if n_params >= 2 and self.needs[2]:
            gb = gy.sum(axis=lead)
        return (gx, gw, gb)[: 1 + n_params]
