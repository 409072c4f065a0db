"""Pooling: max and average over windows, and adaptive average pooling."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..function import Op
from ..threads import parallel_for, split
from .im2col import pad2d, pair
from .jit import kernels, parallel


#: Bytes of input per piece of the 2x2 max pool (a piece stays in cache; pieces spread over the threads).
POOL_PIECE_BYTES = 1 << 18


class MaxPool2x2(Op):
    """2×2 max pooling, stride 2, in pieces of a few images spread over the intra-op threads.

    numpy: the maximum of the even and odd columns (one strided pass), then of
    the even and odd rows of that (contiguous rows): measured 1.7x faster than
    the maximum of the four strided quarter views. Ties go to the first
    maximum in scan order, as in PyTorch's CPU kernel. With numba (see
    :mod:`.jit`) each direction is one compiled pass.
    """

    def forward(self, x):
        n, c, h, w = x.shape
        h2, w2 = h // 2 * 2, w // 2 * 2
        y = np.empty((n, c, h // 2, w // 2), x.dtype)
        jit = kernels(x.dtype)
        if jit is not None and not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        step = POOL_PIECE_BYTES // max(1, c * h * w * x.itemsize)
        par = parallel(x.dtype) if jit is not None else None
        if par is not None:  # every piece in one compiled call on OpenMP's threads
            par.maxpool2x2_forward(x, y, max(1, step))
            if self.needs is not None:
                self.x = x
            return y

        def piece(a, e):
            if jit is not None:
                jit.maxpool2x2_forward(x[a:e], y[a:e])
                return
            xs = x[a:e, :, :h2]
            r = np.maximum(xs[..., 0:w2:2], xs[..., 1:w2:2])
            np.maximum(r[:, :, 0::2], r[:, :, 1::2], out=y[a:e])

        parallel_for(piece, split(n, POOL_PIECE_BYTES // max(1, c * h * w * x.itemsize)))
        if self.needs is not None:
            self.x = x
        return y

    def backward(self, gy):
        x = self.x
        n, c, h, w = x.shape
        h2, w2 = h // 2 * 2, w // 2 * 2
        jit = kernels(x.dtype)
        # every element of an even-sized input is written below; odd edges stay zero
        g = np.empty(x.shape, gy.dtype) if (jit is not None or (h2 == h and w2 == w)) else np.zeros(x.shape, gy.dtype)
        step = POOL_PIECE_BYTES // max(1, c * h * w * x.itemsize)
        par = parallel(x.dtype) if jit is not None else None
        if par is not None:
            par.maxpool2x2_backward(x, gy, g, max(1, step))
            return (g,)

        def piece(a, e):
            if jit is not None:
                jit.maxpool2x2_backward(x[a:e], gy[a:e], g[a:e])
                return
            xs = x[a:e, :, :h2]
            xe, xo = xs[..., 0:w2:2], xs[..., 1:w2:2]
            left = xe >= xo  # the even column wins its row pair (first maximum on ties)
            r = np.maximum(xe, xo)
            top = r[:, :, 0::2] >= r[:, :, 1::2]  # the top row pair wins the window
            gr = np.empty(r.shape, gy.dtype)
            np.multiply(gy[a:e], top, out=gr[:, :, 0::2])
            np.logical_not(top, out=top)
            np.multiply(gy[a:e], top, out=gr[:, :, 1::2])
            gs = g[a:e, :, :h2]
            np.multiply(gr, left, out=gs[..., 0:w2:2])
            np.logical_not(left, out=left)
            np.multiply(gr, left, out=gs[..., 1:w2:2])

        parallel_for(piece, split(n, POOL_PIECE_BYTES // max(1, c * h * w * x.itemsize)))
        return (g,)


def _out_size(n, k, s, p, ceil_mode=False):
    f = math.ceil if ceil_mode else math.floor
    out = f((n + 2 * p - k) / s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


class MaxPool2d(Op):
    """General max pooling via sliding windows; the gradient goes to each window's argmax."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        self.k, self.s, self.p = pair(kernel_size), pair(stride if stride is not None else kernel_size), pair(padding)

    def forward(self, x):
        (kh, kw), (sh, sw), (ph, pw) = self.k, self.s, self.p
        xp = pad2d(x, ph, pw, -np.inf)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        n, c, ho, wo = win.shape[:4]
        flat = win.reshape(n, c, ho, wo, kh * kw)
        arg = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
        self.arg, self.xshape, self.xpshape = arg, x.shape, xp.shape
        return y

    def backward(self, gy):
        (kh, kw), (sh, sw), (ph, pw) = self.k, self.s, self.p
        n, c, ho, wo = gy.shape
        hp, wp = self.xpshape[2:]
        di, dj = np.divmod(self.arg, kw)
        rows = di + (np.arange(ho) * sh)[:, None]
        cols = dj + (np.arange(wo) * sw)[None, :]
        plane = (np.arange(n * c) * (hp * wp)).reshape(n, c, 1, 1)
        pos = (plane + rows * wp + cols).ravel()
        g = np.bincount(pos, weights=gy.ravel(), minlength=n * c * hp * wp).astype(gy.dtype)
        g = g.reshape(n, c, hp, wp)
        h, w = self.xshape[2:]
        return (g[:, :, ph:ph + h, pw:pw + w],)


class AvgPool2d(Op):
    """Average pooling; padding counts as zeros in the divisor (count_include_pad=True) unless told."""

    def __init__(self, kernel_size=2, stride=None, padding=0, count_include_pad=True):
        self.k, self.s, self.p = pair(kernel_size), pair(stride if stride is not None else kernel_size), pair(padding)
        self.count_include_pad = count_include_pad

    def _divisor(self, h, w, dtype):
        (kh, kw), (sh, sw), (ph, pw) = self.k, self.s, self.p
        if self.count_include_pad or not (ph or pw):
            return np.asarray(kh * kw, dtype)
        ones = pad2d(np.ones((1, 1, h, w), dtype), ph, pw)
        return sliding_window_view(ones, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].sum(axis=(-1, -2))

    def forward(self, x):
        (kh, kw), (sh, sw), (ph, pw) = self.k, self.s, self.p
        xp = pad2d(x, ph, pw)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        self.div = self._divisor(x.shape[2], x.shape[3], x.dtype)
        self.xshape, self.xpshape = x.shape, xp.shape
        return (win.sum(axis=(-1, -2)) / self.div).astype(x.dtype, copy=False)

    def backward(self, gy):
        (kh, kw), (sh, sw), (ph, pw) = self.k, self.s, self.p
        ho, wo = gy.shape[2:]
        g = np.zeros(self.xpshape, gy.dtype)
        gd = (gy / self.div).astype(gy.dtype, copy=False)
        for i in range(kh):
            for j in range(kw):
                g[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += gd
        h, w = self.xshape[2:]
        return (g[:, :, ph:ph + h, pw:pw + w],)


class AdaptiveAvgPool2d(Op):
    """Average over PyTorch's adaptive bins: rows floor(i*H/oh) .. ceil((i+1)*H/oh)."""

    def __init__(self, output_size=1):
        self.out = pair(output_size)

    def _bins(self, h, w):
        oh, ow = (h if self.out[0] is None else self.out[0]), (w if self.out[1] is None else self.out[1])
        rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
        cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
        return rows, cols

    def forward(self, x):
        n, c, h, w = x.shape
        self.xshape = x.shape
        rows, cols = self._bins(h, w)
        if len(rows) == 1 and len(cols) == 1:
            return x.mean(axis=(2, 3), keepdims=True).astype(x.dtype, copy=False)
        y = np.empty((n, c, len(rows), len(cols)), x.dtype)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return y

    def backward(self, gy):
        g = np.zeros(self.xshape, gy.dtype)
        rows, cols = self._bins(*self.xshape[2:])
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                g[:, :, r0:r1, c0:c1] += (gy[:, :, i:i + 1, j:j + 1] / ((r1 - r0) * (c1 - c0))).astype(gy.dtype)
        return (g,)
