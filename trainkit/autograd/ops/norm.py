"""Batch normalisation and dropout."""
from __future__ import annotations

import numpy as np

from ..function import Op
from ..random import uniform_for_batch


class BatchNorm(Op):
    """Batch norm over every axis but 1 (N,C), (N,C,L) or (N,C,H,W).

    In training it normalises with the batch's biased variance and updates the
    running buffers in place (running_var with the unbiased variance, as PyTorch
    does); in evaluation it uses the running statistics. Inputs are
    ``(x, weight, bias)`` or just ``(x,)`` when not affine.
    """

    def __init__(self, running_mean=None, running_var=None, training=False, momentum=0.1, eps=1e-5):
        self.rm, self.rv = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, weight=None, bias=None):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            n = x.size // x.shape[1]
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(shape)
            var = (xc * xc).mean(axis=axes)
            if self.rm is not None:
                m = self.momentum
                self.rm *= 1 - m
                self.rm += m * mean
                self.rv *= 1 - m
                self.rv += (m * n / max(n - 1, 1)) * var
        else:
            mean, var = self.rm, self.rv
            xc = x - mean.reshape(shape)
        invstd = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        xhat = xc * invstd.reshape(shape)
        self.xhat, self.invstd, self.axes, self.bshape, self.weight = xhat, invstd, axes, shape, weight
        if weight is None:
            return xhat
        return xhat * weight.reshape(shape) + bias.reshape(shape)

    def backward(self, gy):
        xhat, axes, shape = self.xhat, self.axes, self.bshape
        gw = gb = gx = None
        nparams = len(self.needs) - 1
        if nparams and self.needs[1]:
            gw = (gy * xhat).sum(axis=axes)
        if nparams and self.needs[2]:
            gb = gy.sum(axis=axes)
        if self.needs[0]:
            gxhat = gy if self.weight is None else gy * self.weight.reshape(shape)
            scale = self.invstd.reshape(shape)
            if self.training:
                n = xhat.size // xhat.shape[1]
                s1 = gxhat.sum(axis=axes).reshape(shape)
                s2 = (gxhat * xhat).sum(axis=axes).reshape(shape)
                gx = (gxhat - (s1 + xhat * s2) / n) * scale
            else:
                gx = gxhat * scale
        return (gx, gw, gb)[: 1 + nparams]


class Dropout(Op):
    """Zero each element with probability p and scale the rest by 1/(1-p)."""

    def __init__(self, p=0.5, generator=None):
        self.p, self.rng = p, generator

    def forward(self, x):
        keep = uniform_for_batch(self.rng, x.shape, np.float32) >= self.p
        self.scale = (keep * np.asarray(1.0 / (1.0 - self.p), x.dtype)).astype(x.dtype, copy=False)
        return x * self.scale

    def backward(self, gy):
        return (gy * self.scale,)
