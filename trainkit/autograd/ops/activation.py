"""More activations, each one node with PyTorch's formulas and branch points:
SiLU, ELU (and SELU), Softplus, Mish, Hardswish, Hardtanh, PReLU.

Branch conditions follow ATen so that values and gradients match at the
boundaries too (ELU takes its negative branch at x = 0, Hardtanh passes no
gradient at its limits, Softplus turns linear above ``threshold``).
"""
from __future__ import annotations

import numpy as np

from ..function import Op

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class SiLU(Op):
    """``x * sigmoid(x)``."""

    def forward(self, x):
        self.x = x
        with np.errstate(over="ignore"):
            self.s = 1.0 / (1.0 + np.exp(-x))
        return x * self.s

    def backward(self, gy):
        s = self.s
        return (gy * (s * (1.0 + self.x * (1.0 - s))),)


class ELU(Op):
    """``scale * x`` for x > 0, else ``scale * alpha * (exp(input_scale * x) - 1)`` (SELU and CELU are ELUs)."""

    def __init__(self, alpha=1.0, scale=1.0, input_scale=1.0):
        self.alpha, self.scale, self.input_scale = alpha, scale, input_scale

    def forward(self, x):
        self.x = x
        self.pos = x > 0
        with np.errstate(over="ignore"):
            neg = np.expm1(x * self.input_scale) * (self.alpha * self.scale)
        return np.where(self.pos, x * self.scale, neg)

    def backward(self, gy):
        coef = self.alpha * self.scale * self.input_scale
        with np.errstate(over="ignore"):
            neg = gy * (np.exp(self.x * self.input_scale) * coef)
        return (np.where(self.pos, gy * self.scale, neg),)


class Softplus(Op):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``."""

    def __init__(self, beta=1.0, threshold=20.0):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        self.x = x
        bx = x * self.beta
        self.linear = bx > self.threshold
        with np.errstate(over="ignore"):
            soft = np.log1p(np.exp(bx)) / self.beta
        return np.where(self.linear, x, soft)

    def backward(self, gy):
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.exp(self.x * self.beta)
            return (np.where(self.linear, gy, gy * z / (z + 1.0)),)


class Mish(Op):
    """``x * tanh(softplus(x))``."""

    def forward(self, x):
        self.x = x
        self.t = np.tanh(np.logaddexp(0.0, x))
        return x * self.t

    def backward(self, gy):
        x, t = self.x, self.t
        with np.errstate(over="ignore"):
            sig = 1.0 / (1.0 + np.exp(-x))
        return (gy * (t + x * sig * (1.0 - t * t)),)


class Hardswish(Op):
    """``x * relu6(x + 3) / 6``."""

    def forward(self, x):
        self.x = x
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0

    def backward(self, gy):
        x = self.x
        mid = gy * (x / 3.0 + 0.5)
        # torch 2.13's branch points: no gradient at -3, the linear gradient from 3 on
        return (np.where(x <= -3.0, 0.0, np.where(x < 3.0, mid, gy)).astype(gy.dtype, copy=False),)


class Hardtanh(Op):
    """``x`` clipped to [min_val, max_val]; no gradient at or beyond the limits (PyTorch's rule)."""

    def __init__(self, min_val=-1.0, max_val=1.0):
        self.lo, self.hi = min_val, max_val

    def forward(self, x):
        self.inside = (x > self.lo) & (x < self.hi)
        return np.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return (gy * self.inside,)


class PReLU(Op):
    """``x`` for x > 0, else ``weight * x`` with one learnt slope per channel (dimension 1) or one in all."""

    def forward(self, x, w):
        self.x, self.wshape = x, w.shape
        if w.size > 1:  # one slope per channel, broadcast along dimension 1
            self.w = w.reshape((1, w.size) + (1,) * (x.ndim - 2))
        else:
            self.w = w.reshape(())
        self.pos = x > 0
        return np.where(self.pos, x, self.w * x)

    def backward(self, gy):
        gx = gw = None
        if self.needs[0]:
            gx = np.where(self.pos, gy, self.w * gy)
        if self.needs[1]:
            contrib = np.where(self.pos, 0.0, self.x * gy).astype(gy.dtype, copy=False)
            if self.w.size == 1:
                gw = np.asarray(contrib.sum()).reshape(self.wshape)
            else:
                axes = (0,) + tuple(range(2, contrib.ndim))
                gw = contrib.sum(axis=axes).reshape(self.wshape)
        return gx, gw
