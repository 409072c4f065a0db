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
