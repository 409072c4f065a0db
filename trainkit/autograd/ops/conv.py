"""2-D convolution by im2col + batched GEMM (no Python loop over batch or pixels)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..function import Op


def pair(v) -> tuple:
    """``v`` as a (height, width) pair."""
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def pad2d(x: np.ndarray, ph: int, pw: int, value=0) -> np.ndarray:
    """Pad the last two axes of an NCHW array (one allocation, one copy)."""
    if not ph and not pw:
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def im2col(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """Columns (N, C*kh*kw, Ho*Wo) of a padded NCHW array: one contiguous copy.

    This layout makes ``W(O, C*kh*kw) @ cols`` produce (N, O, Ho*Wo), i.e. NCHW,
    directly, with no transpose of the output.
    """
    n, c = xp.shape[:2]
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # N C Ho Wo kh kw
    ho, wo = win.shape[2], win.shape[3]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo), ho, wo


def col2im_add(gcols: np.ndarray, xshape: tuple, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int) -> np.ndarray:
    """Scatter-add columns back into a padded NCHW gradient: kh*kw shifted slice adds."""
    n, c, hp, wp = xshape
    g = np.zeros(xshape, gcols.dtype)
    cols = gcols.reshape(n, c, kh, kw, ho, wo)
    for i in range(kh):
        hi = i + sh * (ho - 1) + 1
        for j in range(kw):
            g[:, :, i:hi:sh, j:j + sw * (wo - 1) + 1:sw] += cols[:, :, i, j]
    return g


class Conv2d(Op):
    """Cross-correlation of NCHW input with (O, C, kh, kw) weights, PyTorch's conv2d."""

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = pair(stride), pair(padding)

    def forward(self, x, w, b=None):
        (sh, sw), (ph, pw) = self.stride, self.padding
        o, c, kh, kw = w.shape
        xp = pad2d(x, ph, pw)
        cols, ho, wo = im2col(xp, kh, kw, sh, sw)
        self.cols, self.w, self.xpshape, self.xshape, self.hw = cols, w, xp.shape, x.shape, (ho, wo)
        y = np.matmul(w.reshape(o, -1), cols)  # (N, O, Ho*Wo)
        if b is not None:
            y += b.reshape(1, o, 1)
        return y.reshape(x.shape[0], o, ho, wo)

    def backward(self, gy):
        n, o = gy.shape[:2]
        w, cols = self.w, self.cols
        g = gy.reshape(n, o, -1)
        gx = gw = gb = None
        if self.needs[1]:
            gw = np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        if len(self.needs) > 2 and self.needs[2]:
            gb = g.sum(axis=(0, 2))
        if self.needs[0]:
            _, c, kh, kw = w.shape
            gcols = np.matmul(w.reshape(o, -1).T, g)  # (N, C*kh*kw, Ho*Wo)
            (sh, sw), (ph, pw) = self.stride, self.padding
            gxp = col2im_add(gcols, self.xpshape, kh, kw, sh, sw, *self.hw)
            h, wd = self.xshape[2:]
            gx = gxp[:, :, ph:ph + h, pw:pw + wd] if (ph or pw) else gxp
        return gx, gw, gb
