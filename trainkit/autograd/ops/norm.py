"""Batch normalisation and dropout.

Batch norm works on the input viewed as (N, C, S) and in pieces of a few
images that stay in cache, spread over the intra-op threads: one pass
gathers each piece's per-channel count, mean and centred sum of squares
(combined with Chan et al.'s parallel formula, in float64, in piece order),
one pass writes ``x * scale + shift``. Nothing but the input is kept for
backward: the centred values are recomputed piece by piece in cache, which
measured cheaper than writing and re-reading a saved copy.
"""
from __future__ import annotations

import numpy as np

from ..function import Op
from ..random import uniform_for_batch
from ..threads import parallel_for, split
from .jit import kernels, parallel

#: Bytes of input per piece (a piece and its temporaries stay in a core's L2 cache).
PIECE_BYTES = 1 << 18


def _chan_sum(a: np.ndarray) -> np.ndarray:
    """Per-channel sum of (m, C, S) -> (C,) (the spatial axis first: a contiguous reduction)."""
    if a.shape[2] == 1:
        return a[:, :, 0].sum(axis=0)
    return a.sum(axis=2).sum(axis=0)


def _chan_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel sum of a * b over (m, S), without a temporary product array."""
    if a.shape[2] == 1:
        return np.einsum("nc,nc->c", a[:, :, 0], b[:, :, 0])
    if _vecdot is None:  # numpy < 2.0
        return np.einsum("ncs,ncs->c", a, b)
    return _vecdot(a, b, axis=-1).sum(axis=0)


_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0: a BLAS-speed dot product per (image, channel) row


def _step(x3: np.ndarray) -> int:
    """Images per piece: about PIECE_BYTES of input."""
    n, c, s = x3.shape
    return max(1, PIECE_BYTES // max(1, c * s * x3.itemsize))


def _pieces(x3: np.ndarray) -> list:
    """(index, start, stop) pieces of the batch axis of about PIECE_BYTES each."""
    return [(i, a, e) for i, (a, e) in enumerate(split(x3.shape[0], _step(x3)))]


def batch_stats(x3: np.ndarray, pieces: list):
    """Per-channel mean and biased variance of (N, C, S) over N and S (float64)."""
    parts = [None] * len(pieces)
    jit, par = kernels(x3.dtype), parallel(x3.dtype)
    if par is not None:  # every piece in one compiled call on OpenMP's threads
        means, m2s = par.moments(x3, _step(x3))
        parts = [((e - a) * x3.shape[2], means[i], m2s[i]) for i, a, e in pieces]
    else:
        def piece(i, a, e):
            xp = x3[a:e]
            cnt = xp.shape[0] * xp.shape[2]
            if jit is not None:
                parts[i] = (cnt,) + jit.moments(xp)
                return
            mu = _chan_sum(xp) / cnt
            d = xp - mu.reshape(1, -1, 1)
            parts[i] = (cnt, mu.astype(np.float64), _chan_dot(d, d).astype(np.float64))

        parallel_for(piece, pieces)
    cnt, mean, m2 = parts[0]
    for cb, mb, m2b in parts[1:]:  # Chan et al.: merge (count, mean, centred sum of squares)
        tot = cnt + cb
        delta = mb - mean
        mean = mean + delta * (cb / tot)
        m2 = m2 + m2b + delta * delta * (cnt * cb / tot)
        cnt = tot
    return mean, m2 / cnt, cnt


def _affine(x3: np.ndarray, scale: np.ndarray, shift: np.ndarray, pieces: list) -> np.ndarray:
    """x3 * scale + shift per channel, piece by piece."""
    y = np.empty(x3.shape, x3.dtype)
    sc, sh = scale.reshape(1, -1, 1), shift.reshape(1, -1, 1)
    jit, par = kernels(x3.dtype), parallel(x3.dtype)
    if par is not None:
        par.affine(x3, scale, shift, y, _step(x3))
        return y

    def piece(i, a, e):
        out = y[a:e]
        if jit is not None:
            jit.affine(x3[a:e], scale, shift, out)
            return
        np.multiply(x3[a:e], sc, out=out)
        out += sh

    parallel_for(piece, pieces)
    return y


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
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        pieces = _pieces(x3)
        if self.training:
            mean, var, n = batch_stats(x3, pieces)
            if self.rm is not None:
                m = self.momentum
                self.rm *= 1 - m
                self.rm += (m * mean).astype(self.rm.dtype)
                self.rv *= 1 - m
                self.rv += ((m * n / max(n - 1, 1)) * var).astype(self.rv.dtype)
        else:
            mean, var = self.rm.astype(np.float64), self.rv.astype(np.float64)
        invstd = 1.0 / np.sqrt(var + self.eps)
        scale = invstd if weight is None else invstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        dt = x.dtype
        y = _affine(x3, scale.astype(dt), shift.astype(dt), pieces)
        if self.needs is not None:
            self.x3, self.pieces, self.mean, self.invstd, self.scale = x3, pieces, mean, invstd, scale
        return y.reshape(x.shape)

    def backward(self, gy):
        x3, pieces, mean, invstd, scale = self.x3, self.pieces, self.mean, self.invstd, self.scale
        g3 = gy.reshape(x3.shape)
        dt = gy.dtype
        jit, par = kernels(dt), parallel(dt)
        nparams = len(self.needs) - 1
        need_x = self.needs[0]
        need_sums = nparams > 0 or (need_x and self.training)
        s1 = s2 = None
        if need_sums:
            parts = [None] * len(pieces)
            mu = mean.astype(dt).reshape(1, -1, 1)

            def stats(i, a, e):
                gp = g3[a:e]
                if jit is not None:
                    parts[i] = jit.grad_sums(x3[a:e], gp, mean)
                    return
                parts[i] = (_chan_sum(gp).astype(np.float64), _chan_dot(gp, x3[a:e] - mu).astype(np.float64))

            if par is not None:
                p1s, p2s = par.grad_sums(x3, g3, mean, _step(x3))
                parts = list(zip(p1s, p2s))
            else:
                parallel_for(stats, pieces)
            s1, s2 = parts[0]
            for p1, p2 in parts[1:]:  # in piece order, whatever thread computed each
                s1, s2 = s1 + p1, s2 + p2
        gw = (s2 * invstd).astype(dt) if nparams and self.needs[1] else None
        gb = s1.astype(dt) if nparams and self.needs[2] else None
        gx = None
        if need_x:
            a = scale.astype(dt).reshape(1, -1, 1)
            gx = np.empty(x3.shape, dt)
            if self.training:
                n = x3.shape[0] * x3.shape[2]
                # gx = scale * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat = (x - mean) * invstd
                b = (-scale * invstd * invstd * s2 / n).astype(dt).reshape(1, -1, 1)
                c = (-scale * s1 / n).astype(dt).reshape(1, -1, 1)
                mu = mean.astype(dt).reshape(1, -1, 1)

                if par is not None:
                    par.grad_input(x3, g3, mu.ravel(), a.ravel(), b.ravel(), c.ravel(), gx, _step(x3))
                    return (gx.reshape(gy.shape), gw, gb)[: 1 + nparams]

                def piece(i, a0, e):
                    out = gx[a0:e]
                    if jit is not None:
                        jit.grad_input(x3[a0:e], g3[a0:e], mu.ravel(), a.ravel(), b.ravel(), c.ravel(), out)
                        return
                    d = np.subtract(x3[a0:e], mu)
                    d *= b
                    np.multiply(g3[a0:e], a, out=out)
                    out += d
                    out += c
            else:
                def piece(i, a0, e):
                    np.multiply(g3[a0:e], a, out=gx[a0:e])

            parallel_for(piece, pieces)
            gx = gx.reshape(gy.shape)
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
