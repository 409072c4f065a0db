"""Adaptive max pooling: the maximum over PyTorch's adaptive bins (rows ``floor(i*H/oh) .. ceil((i+1)*H/oh)``)."""
from __future__ import annotations

import math

import numpy as np

from ..function import Op


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of each of ``out`` bins over ``size`` positions (PyTorch's boundaries)."""
    return [(i * size // out, math.ceil((i + 1) * size / out)) for i in range(out)]


class AdaptiveMaxPool2d(Op):
    """Maximum of each adaptive bin of an ``(N, C, H, W)`` input; the gradient goes to the first maximum."""

    def __init__(self, output_size=(1, 1)):
        self.output_size = output_size

    def forward(self, x):
        n, c, h, w = x.shape
        oh, ow = self.output_size
        rows, cols = adaptive_bins(h, oh), adaptive_bins(w, ow)
        y = np.empty((n, c, oh, ow), x.dtype)
        keep = self.needs is not None
        where = np.empty((n, c, oh, ow), np.int64) if keep else None  # flat index into the (H, W) plane
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
                k = win.argmax(axis=2)
                y[:, :, i, j] = np.take_along_axis(win, k[..., None], axis=2)[..., 0]
                if keep:
                    width = c1 - c0
                    where[:, :, i, j] = (r0 + k // width) * w + c0 + k % width
        if keep:
            self.where, self.xshape = where, x.shape
        return y

    def backward(self, gy):
        n, c, h, w = self.xshape
        g = np.zeros((n * c, h * w), gy.dtype)
        rows = np.repeat(np.arange(n * c), gy.shape[2] * gy.shape[3])
        np.add.at(g, (rows, self.where.reshape(-1)), gy.reshape(-1))  # overlapping bins may pick one element twice
        return (g.reshape(self.xshape),)
