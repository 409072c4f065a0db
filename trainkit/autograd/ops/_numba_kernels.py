"""numba kernels behind :mod:`.jit` (imported only when numba is installed and enabled).

Each kernel works on one piece of the batch (C-contiguous arrays) and releases
the GIL, so the intra-op threads run pieces side by side. Reductions
accumulate in float64; ``fastmath`` lets the compiler vectorise them
(reassociation), which changes rounding only in the last float64 bits.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_REDUCE = {"reassoc", "contract", "nsz"}


@nb.njit(nogil=True, cache=True)
def maxpool2x2_forward(x, y):
    """y[..., i, j] = max of the 2x2 window at (2i, 2j) (odd trailing rows/columns ignored)."""
    n, c, h, w = x.shape
    for a in range(n):
        for b in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    m0 = max(x[a, b, 2 * i, 2 * j], x[a, b, 2 * i, 2 * j + 1])
                    m1 = max(x[a, b, 2 * i + 1, 2 * j], x[a, b, 2 * i + 1, 2 * j + 1])
                    y[a, b, i, j] = max(m0, m1)


@nb.njit(nogil=True, cache=True)
def maxpool2x2_backward(x, gy, gx):
    """Each window's gradient to its first maximum in scan order (PyTorch's rule); gx fully written.

    Branch-free selects: after ReLU most windows tie at zero, and branches on
    the comparisons mispredicted so often that a branchy version ran 7x slower.
    """
    n, c, h, w = x.shape
    zero = x.dtype.type(0)
    for a in range(n):
        for b in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    v00, v01 = x[a, b, 2 * i, 2 * j], x[a, b, 2 * i, 2 * j + 1]
                    v10, v11 = x[a, b, 2 * i + 1, 2 * j], x[a, b, 2 * i + 1, 2 * j + 1]
                    g = gy[a, b, i, j]
                    left0, left1 = v00 >= v01, v10 >= v11
                    top = max(v00, v01) >= max(v10, v11)
                    gt = g if top else zero
                    gb = zero if top else g
                    gx[a, b, 2 * i, 2 * j] = gt if left0 else zero
                    gx[a, b, 2 * i, 2 * j + 1] = zero if left0 else gt
                    gx[a, b, 2 * i + 1, 2 * j] = gb if left1 else zero
                    gx[a, b, 2 * i + 1, 2 * j + 1] = zero if left1 else gb
            for i in range(2 * (h // 2), h):  # an odd last row gets no gradient
                for j in range(w):
                    gx[a, b, i, j] = zero
            if w % 2:
                for i in range(h):
                    gx[a, b, i, w - 1] = zero


@nb.njit(nogil=True, cache=True, fastmath=_REDUCE)
def moments(x3):
    """Per-channel mean and centred sum of squares of (m, C, S), two passes in float64."""
    n, c, s = x3.shape
    mean = np.zeros(c)
    m2 = np.zeros(c)
    cnt = n * s
    for b in range(c):
        acc = 0.0
        for a in range(n):
            for k in range(s):
                acc += x3[a, b, k]
        mu = acc / cnt
        acc2 = 0.0
        for a in range(n):
            for k in range(s):
                d = x3[a, b, k] - mu
                acc2 += d * d
        mean[b] = mu
        m2[b] = acc2
    return mean, m2


@nb.njit(nogil=True, cache=True)
def affine(x3, scale, shift, y):
    """y = x * scale + shift per channel (scale, shift in x's dtype)."""
    n, c, s = x3.shape
    for a in range(n):
        for b in range(c):
            p, q = scale[b], shift[b]
            for k in range(s):
                y[a, b, k] = x3[a, b, k] * p + q


@nb.njit(nogil=True, cache=True, fastmath=_REDUCE)
def grad_sums(x3, g3, mean):
    """Per-channel sum of g and of g * (x - mean), in float64."""
    n, c, s = x3.shape
    s1 = np.zeros(c)
    s2 = np.zeros(c)
    for b in range(c):
        mu = mean[b]
        acc1 = 0.0
        acc2 = 0.0
        for a in range(n):
            for k in range(s):
                g = g3[a, b, k]
                acc1 += g
                acc2 += g * (x3[a, b, k] - mu)
        s1[b] = acc1
        s2[b] = acc2
    return s1, s2


@nb.njit(nogil=True, cache=True)
def grad_input(x3, g3, mean, ca, cb, cc, gx):
    """gx = ca * g + cb * (x - mean) + cc per channel (coefficients in x's dtype)."""
    n, c, s = x3.shape
    for a in range(n):
        for b in range(c):
            mu, p, q, r = mean[b], ca[b], cb[b], cc[b]
            for k in range(s):
                gx[a, b, k] = p * g3[a, b, k] + q * (x3[a, b, k] - mu) + r


# erf(u) ~ u P(u^2) / Q(u^2) on [-4, 4] in float32: the coefficients of ``special._rational_erf32`` (Eigen's /
# XLA's), evaluated in the same order, so that the compiled GELU gives the numpy path's values.
_P32 = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
        -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_Q32 = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
        -1.42647390514189e-02)
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = (np.float32(c) for c in _P32)
_Q0, _Q1, _Q2, _Q3, _Q4 = (np.float32(c) for c in _Q32)


@nb.njit(nogil=True, cache=True, error_model="numpy")  # no ZeroDivisionError check: the loop vectorises
def gelu_forward(x, y, cdf):
    """y = x Φ(x), cdf = Φ(x) for flat float32 arrays (Φ through the float32 rational erf)."""
    half_sqrt = np.float32(0.7071067811865476)
    lo, hi = np.float32(-4.0), np.float32(4.0)
    one, half = np.float32(1.0), np.float32(0.5)
    for i in range(x.size):
        v = x[i]
        u = v * half_sqrt
        u = min(max(u, lo), hi)
        z = u * u
        p = z * _P0
        p = (p + _P1) * z
        p = (p + _P2) * z
        p = (p + _P3) * z
        p = (p + _P4) * z
        p = (p + _P5) * z
        p = p + _P6
        q = z * _Q0
        q = (q + _Q1) * z
        q = (q + _Q2) * z
        q = (q + _Q3) * z
        q = q + _Q4
        c = ((p * u) / q + one) * half
        cdf[i] = c
        y[i] = v * c


@nb.njit(nogil=True, cache=True, error_model="numpy")
def layer_norm_forward(x, w, b, eps, xhat, y, invstd):
    """Rows of x (R, N): invstd = 1 / sqrt(var + eps) (biased variance; mean and variance in float64, two
    passes), xhat = (x - mean) * invstd, y = xhat * w + b (w, b of size N; ``y`` may be ``xhat``)."""
    r, n = x.shape
    for i in range(r):
        acc = 0.0
        for j in range(n):
            acc += x[i, j]
        mean = acc / n
        acc2 = 0.0
        for j in range(n):
            d = x[i, j] - mean
            acc2 += d * d
        inv = 1.0 / np.sqrt(acc2 / n + eps)
        invstd[i] = inv
        mu, sc = x.dtype.type(mean), x.dtype.type(inv)
        for j in range(n):
            h = (x[i, j] - mu) * sc
            xhat[i, j] = h
            y[i, j] = h * w[j] + b[j]


@nb.njit(nogil=True, cache=True, error_model="numpy")
def layer_norm_backward(gy, xhat, w, invstd, gx, gw, gb):
    """Rows (R, N) of layer norm's gradients: gx = invstd (g w - mean(g w) - xhat mean(g w xhat)); gw and gb
    (float64, size N) get the rows' sums of gy * xhat and gy added (row sums in float64)."""
    r, n = gy.shape
    for i in range(r):
        s1 = 0.0
        s2 = 0.0
        for j in range(n):
            g = gy[i, j]
            h = xhat[i, j]
            gw_ = g * w[j]
            s1 += gw_
            s2 += gw_ * h
            gw[j] += g * h
            gb[j] += g
        m1, m2, sc = gx.dtype.type(s1 / n), gx.dtype.type(s2 / n), gx.dtype.type(invstd[i])
        for j in range(n):
            gx[i, j] = (gy[i, j] * w[j] - m1 - xhat[i, j] * m2) * sc


@nb.njit(nogil=True, cache=True)
def relu_forward(x, y):
    """y = max(x, 0) for flat arrays, as ``np.maximum(x, 0)``: NaN stays NaN, -0.0 stays -0.0."""
    zero = y.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        y[i] = zero if v < 0 else v


@nb.njit(nogil=True, cache=True)
def relu_backward(gy, y, gx):
    """gx = 0 where y <= 0, else gy (flat arrays): PyTorch's ``threshold_backward`` on the output (a NaN
    output passes its gradient)."""
    zero = gx.dtype.type(0)
    for i in range(gy.size):
        gx[i] = zero if y[i] <= 0 else gy[i]


@nb.njit(nogil=True, cache=True)
def sgd_momentum_step(p, g, buf, lr, momentum, keep, weight_decay, has_wd, has_damp, nesterov):
    """One SGD-with-momentum update of flat arrays in one pass, each operation rounded as numpy rounds it
    (scalars in the arrays' dtype): g += wd p; buf = momentum buf + keep g; d = g + momentum buf (nesterov)
    or buf; p -= lr d."""
    for i in range(p.size):
        gi = g[i]
        if has_wd:
            gi = gi + p[i] * weight_decay
        b = buf[i] * momentum
        if has_damp:
            b = b + gi * keep
        else:
            b = b + gi
        buf[i] = b
        if nesterov:
            gi = gi + b * momentum
        else:
            gi = b
        p[i] = p[i] - gi * lr
