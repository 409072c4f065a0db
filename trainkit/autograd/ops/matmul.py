"""Matrix products: ``@`` with batch broadcasting, and the fused ``linear``."""
from __future__ import annotations

import numpy as np

from ..function import Op, sum_to
from ..tensor import Tensor
from ..threads import matmul as gemm


class MatMul(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, gy):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = gy
        if a.ndim == 1 and b.ndim == 1:  # a dot product: gy is 0-d, and expand_dims(-2) would fail
            g2 = np.reshape(gy, (1, 1))
        elif a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        elif b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if self.needs[0]:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            ga = sum_to(ga, a2.shape).reshape(a.shape)
        if self.needs[1]:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            gb = sum_to(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    from .elementwise import promote
    a, b = promote(a, b)
    return MatMul.apply(a, b)


class Linear(Op):
    """y = x Wᵀ + b in one node (one GEMM forward, two backward)."""

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = gemm(x.reshape(-1, x.shape[-1]), w.T).reshape(x.shape[:-1] + (w.shape[0],))
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.x, self.w
        gx = gw = gb = None
        if self.needs[0]:
            gx = gemm(gy.reshape(-1, gy.shape[-1]), w).reshape(x.shape)
        if self.needs[1]:
            gw = gemm(gy.reshape(-1, gy.shape[-1]).T, x.reshape(-1, x.shape[-1]))
        if len(self.needs) > 2 and self.needs[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """``input @ weight.T + bias`` (PyTorch's ``F.linear``).

    Input with several leading dimensions (a sequence model's ``(N, L, E)``) is run as one
    2-D GEMM over all rows: numpy would otherwise loop over the leading dimensions with
    one small GEMM each (measured 1.6x slower for a transformer's ``(12, 64, 128)``).
    """
    lead = input.shape[:-1]
    if len(lead) > 1:
        flat = input.reshape((-1, input.shape[-1]))
        return linear(flat, weight, bias).reshape(tuple(lead) + (weight.shape[0],))
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)
