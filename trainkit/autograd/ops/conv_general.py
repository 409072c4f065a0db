"""Grouped and dilated 2-D convolution, and transposed convolution (PyTorch's ``conv2d`` with ``groups``/
``dilation`` and ``conv_transpose2d``).

A separate code path from :mod:`.conv`, whose fast plain convolution (groups 1,
dilation 1) ``F.conv2d`` keeps using: here the columns of every group are built
from strided views of the padded input (``im2col`` with dilation) and multiplied
in one batched GEMM over (batch x groups); the input gradient scatters the
columns back with one slice-add per kernel tap (``col2im``). The transposed
convolution is the same pair of maps in the other order.
"""
from __future__ import annotations

import numpy as np

from ..function import Op
from .conv import pair


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(xp: np.ndarray, kh: int, kw: int, out_h: int, out_w: int, stride, dilation) -> np.ndarray:
    """Columns ``(N, C, kh, kw, out_h, out_w)`` of a padded ``(N, C, H, W)`` array (one copy per tap)."""
    (sh, sw), (dh, dw) = stride, dilation
    n, c = xp.shape[:2]
    cols = np.empty((n, c, kh, kw, out_h, out_w), xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh, j * dw:j * dw + sw * (out_w - 1) + 1:sw]
    return cols


def col2im(cols: np.ndarray, shape: tuple, stride, dilation) -> np.ndarray:
    """Scatter-add columns ``(N, C, kh, kw, out_h, out_w)`` into a zero ``shape`` array (the inverse map)."""
    (sh, sw), (dh, dw) = stride, dilation
    kh, kw, out_h, out_w = cols.shape[2:]
    out = np.zeros(shape, cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh, j * dw:j * dw + sw * (out_w - 1) + 1:sw] += cols[:, :, i, j]
    return out


class GroupedConv2d(Op):
    """Cross-correlation with ``groups`` and ``dilation``: inputs ``(x, w[, b])``, w ``(O, C/groups, kh, kw)``."""

    def __init__(self, stride=1, padding=0, dilation=1, groups: int = 1):
        self.stride, self.padding, self.dilation, self.groups = pair(stride), pair(padding), pair(dilation), groups

    def forward(self, x, w, b=None):
        (ph, pw), g = self.padding, self.groups
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        out_h = conv_output_size(h, kh, self.stride[0], ph, self.dilation[0])
        out_w = conv_output_size(wd, kw, self.stride[1], pw, self.dilation[1])
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
        cols = im2col(xp, kh, kw, out_h, out_w, self.stride, self.dilation)
        cols = cols.reshape(n, g, cg * kh * kw, out_h * out_w)  # (N, G, K, P): channel-major K as w's
        wm = w.reshape(g, o // g, cg * kh * kw)
        y = np.matmul(wm, cols).reshape(n, o, out_h, out_w)
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        if self.needs is not None:
            self.cols, self.wm, self.xpshape, self.xshape, self.wshape = cols, wm, xp.shape, x.shape, w.shape
        return y

    def backward(self, gy):
        n, o, out_h, out_w = gy.shape
        g, wm, cols = self.groups, self.wm, self.cols
        gg = gy.reshape(n, g, o // g, out_h * out_w)
        gx = gw = gb = None
        if self.needs[0]:
            gcols = np.matmul(np.swapaxes(wm, -1, -2), gg)  # (N, G, K, P)
            c = self.xshape[1]
            kh, kw = self.wshape[2:]
            gxp = col2im(gcols.reshape(n, c, kh, kw, out_h, out_w), self.xpshape, self.stride, self.dilation)
            (ph, pw), (h, wd) = self.padding, self.xshape[2:]
            gx = gxp[:, :, ph:ph + h, pw:pw + wd] if (ph or pw) else gxp
        if self.needs[1]:
            gw = np.matmul(gg, np.swapaxes(cols, -1, -2)).sum(axis=0).reshape(self.wshape)
        if len(self.needs) > 2 and self.needs[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb


class ConvTranspose2d(Op):
    """Transposed convolution (the input gradient of ``conv2d``): inputs ``(x, w[, b])``, w ``(C, O/groups, kh, kw)``."""

    def __init__(self, stride=1, padding=0, output_padding=0, dilation=1, groups: int = 1):
        self.stride, self.padding, self.output_padding = pair(stride), pair(padding), pair(output_padding)
        self.dilation, self.groups = pair(dilation), groups

    def _canvas(self, h: int, wd: int, kh: int, kw: int) -> tuple[int, int]:
        """Size of the uncropped output: every tap of every input position lands inside it."""
        (sh, sw), (dh, dw), (oph, opw) = self.stride, self.dilation, self.output_padding
        return (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw

    def forward(self, x, w, b=None):
        n, c, h, wd = x.shape
        _, og, kh, kw = w.shape
        g = self.groups
        (ph, pw) = self.padding
        ch, cw = self._canvas(h, wd, kh, kw)
        out_h, out_w = ch - 2 * ph, cw - 2 * pw
        wm = w.reshape(g, c // g, og * kh * kw)
        cols = np.matmul(np.swapaxes(wm, -1, -2), x.reshape(n, g, c // g, h * wd))  # (N, G, O/G*kh*kw, H*W)
        canvas = col2im(cols.reshape(n, g * og, kh, kw, h, wd), (n, g * og, ch, cw), self.stride, self.dilation)
        y = canvas[:, :, ph:ph + out_h, pw:pw + out_w]
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        if self.needs is not None:
            self.x, self.wm, self.wshape, self.canvas = x, wm, w.shape, (ch, cw)
        return np.ascontiguousarray(y)

    def backward(self, gy):
        n, o = gy.shape[:2]
        x, wm = self.x, self.wm
        _, c, h, wd = x.shape
        g = self.groups
        kh, kw = self.wshape[2:]
        (ph, pw) = self.padding
        gcanvas = np.zeros((n, o) + self.canvas, gy.dtype)
        gcanvas[:, :, ph:ph + gy.shape[2], pw:pw + gy.shape[3]] = gy
        gcols = im2col(gcanvas, kh, kw, h, wd, self.stride, self.dilation).reshape(n, g, (o // g) * kh * kw, h * wd)
        gx = gw = gb = None
        if self.needs[0]:
            gx = np.matmul(wm, gcols).reshape(x.shape)
        if self.needs[1]:
            xg = x.reshape(n, g, c // g, h * wd)
            gw = np.matmul(xg, np.swapaxes(gcols, -1, -2)).sum(axis=0).reshape(self.wshape)
        if len(self.needs) > 2 and self.needs[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb
