"""2-D convolution by im2col + GEMM, a few images at a time, the pieces spread over the intra-op threads.

Every pass (forward, weight gradient, input gradient) works on pieces of a
few images whose columns fit in about half an L2 cache, so each GEMM reads
columns that were just written. The pieces are independent, so
:func:`~trainkit.autograd.threads.parallel_for` runs them on several cores
(numpy releases the GIL in the copies and GEMMs); partial weight and bias
gradients are summed in piece order, so results do not depend on the number
of threads.
"""
from __future__ import annotations

import numpy as np

from ..function import Op
from ..threads import parallel_for, split
from .im2col import col2im_add, col2im_flat, flat_planes, flat_windows, pad2d, pair, strided_windows

__all__ = ["Conv2d", "pair", "pad2d"]

#: Bytes of im2col columns per piece (about half an L2 cache): measured ~1.5x faster than one big
#: im2col for LeNet's first conv at batch 128, ~3x at batch 256 without grad.
COLUMN_CHUNK_BYTES = 1 << 19

#: Columns larger than this are not kept for the weight gradient but rebuilt piece by piece in
#: backward from the (much smaller) input.
KEEP_COLUMNS_MAX_BYTES = 16 << 20

#: Stride-1 convs use flat windows (long contiguous copies, Wp-Wo junk columns per output row in the
#: GEMM) when the junk is at most this fraction of the columns.
FLAT_MAX_JUNK = 0.3


def _sum_in_order(parts):
    """Sum a list of arrays in list order (a fixed order whatever thread computed each)."""
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return acc


def _weight_grad(cols: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Sum over the piece of g (m, O, P) @ colsᵀ (m, P, K), as (O, K).

    OpenBLAS runs these small products in the (K, O) orientation up to ~2x
    faster when the reduction is short (P <= K) or O has at least 16 rows to
    fill its kernel; a long reduction into few output channels (LeNet's first
    conv, O = 6) is faster as (O, K).
    """
    o, k, p = g.shape[1], cols.shape[1], cols.shape[2]
    if p <= k or o >= 16:
        return np.matmul(cols, g.transpose(0, 2, 1)).sum(axis=0).T
    return np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)


class Conv2d(Op):
    """Cross-correlation of NCHW input with (O, C, kh, kw) weights, PyTorch's conv2d."""

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = pair(stride), pair(padding)

    # ------------------------------------------------------------------ geometry and columns
    def _geometry(self, xshape, wshape):
        (sh, sw), (ph, pw) = self.stride, self.padding
        o, c, kh, kw = wshape
        n, _, h, wd = xshape
        hp, wp = h + 2 * ph, wd + 2 * pw
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        flat = sh == 1 and sw == 1 and (wp - wo) <= FLAT_MAX_JUNK * wp
        self.geo = (n, c, h, wd, o, kh, kw, ho, wo, hp, wp, flat)
        self.p = ho * wp if flat else ho * wo  # column positions per image
        return self.geo

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """The batch's windows, (N, C, kh, kw, P) flat or (N, C, kh, kw, Ho, Wo) strided: a view to copy columns from."""
        n, c, h, wd, o, kh, kw, ho, wo, hp, wp, flat = self.geo
        (sh, sw), (ph, pw) = self.stride, self.padding
        if flat:
            return flat_windows(flat_planes(x, ph, pw, kw), kh, kw, ho, wp)
        return strided_windows(x, kh, kw, sh, sw, ph, pw)

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b=None):
        n, c, h, wd, o, kh, kw, ho, wo, hp, wp, flat = self._geometry(x.shape, w.shape)
        k, p, isz = c * kh * kw, self.p, x.itemsize
        wm = w.reshape(o, k)
        y = np.empty((n, o, ho, wo), np.result_type(x, w))
        bias = None if b is None else b.reshape(1, o, 1, 1)
        direct = kh == 1 and kw == 1 and self.stride == (1, 1) and self.padding == (0, 0)
        wants_cols = self.needs is not None and self.needs[1]
        keep = wants_cols and not direct and n * k * p * isz <= KEEP_COLUMNS_MAX_BYTES
        kept = np.empty((n, k, p), x.dtype) if keep else None
        win = None if direct else self._windows(x)

        def piece(a, e):
            m = e - a
            if direct:  # a 1x1 conv's columns are the input itself
                cols = x[a:e].reshape(m, c, p)
            else:
                cols = kept[a:e] if keep else np.empty((m, k, p), x.dtype)
                cols.reshape((m,) + win.shape[1:])[...] = win[a:e]
            if flat and wp != wo:
                out = np.matmul(wm, cols).reshape(m, o, ho, wp)[..., :wo]  # junk columns dropped
                if bias is None:
                    y[a:e] = out
                else:
                    np.add(out, bias, out=y[a:e])
            else:
                out = y[a:e].reshape(m, o, p)
                np.matmul(wm, cols, out=out)
                if bias is not None:
                    out += bias.reshape(1, o, 1)

        parallel_for(piece, split(n, COLUMN_CHUNK_BYTES // max(1, k * p * isz)))
        if self.needs is not None:
            self.w, self.kept = w, kept
            self.x = x if direct else None
            self.win = win if wants_cols and not keep else None  # columns rebuilt in backward
        return y

    # ------------------------------------------------------------------ backward
    def backward(self, gy):
        n, c, h, wd, o, kh, kw, ho, wo, hp, wp, flat = self.geo
        (sh, sw), (ph, pw) = self.stride, self.padding
        w, kept, x, win = self.w, self.kept, self.x, self.win
        k, p = c * kh * kw, self.p
        needs_x, needs_w = self.needs[0], self.needs[1]
        needs_b = len(self.needs) > 2 and self.needs[2]
        dt = gy.dtype
        # stride 1 with at least "same" padding: the input gradient is a stride-1 conv of gy padded by
        # q = kh-1-ph with the flipped kernel, built from flat windows like the forward (no col2im adds)
        q = kh - 1 - ph
        transposed = sh == 1 and sw == 1 and kh == kw and ph == pw and 0 <= q <= ph
        wg = wo + 2 * q  # width of gy's padded planes in the transposed path
        share = transposed and flat and wg == wp  # the same padded gy feeds the weight gradient
        if needs_x:
            if transposed:
                wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, o * kh * kw)
                gbytes = o * kh * kw * h * wg
            else:
                wt = w.reshape(o, k).T
                gbytes = k * p
        else:
            gbytes = 0
        step = COLUMN_CHUNK_BYTES // max(1, max(k * p if needs_w else 0, gbytes) * gy.itemsize)
        pieces = [(i, a, e) for i, (a, e) in enumerate(split(n, step))]
        gw_parts, gb_parts = [None] * len(pieces), [None] * len(pieces)
        gx = np.empty(self.geo_xshape(), dt) if needs_x else None
        gflat_all = flat_planes(gy, q, q, kw) if (needs_x and transposed) or (needs_w and share) else None

        def piece(i, a, e):
            m = e - a
            g = gy[a:e]
            gflat = gflat_all[a:e] if gflat_all is not None else None
            if needs_w:
                if not flat or wp == wo:
                    gpos = g.reshape(m, o, p)
                elif share:
                    gpos = gflat[:, :, q * wp + q:q * wp + q + p]
                else:
                    gpad = np.zeros((m, o, ho, wp), dt)
                    gpad[..., :wo] = g
                    gpos = gpad.reshape(m, o, p)
                if kept is not None:
                    cols = kept[a:e]
                elif x is not None:  # a 1x1 conv: the input itself
                    cols = x[a:e].reshape(m, c, p)
                else:
                    cols = np.empty((m, k, p), win.dtype)
                    cols.reshape((m,) + win.shape[1:])[...] = win[a:e]
                gw_parts[i] = _weight_grad(cols, gpos)
            if needs_b:
                gb_parts[i] = g.reshape(m, o, -1).sum(axis=0).sum(axis=1)  # batch axis first: 2-4x faster
            if needs_x:
                if transposed:
                    gcols = np.empty((m, o * kh * kw, h * wg), dt)
                    gcols.reshape(m, o, kh, kw, h * wg)[...] = flat_windows(gflat, kh, kw, h, wg)
                    out = np.matmul(wf, gcols)
                    gx[a:e] = out.reshape(m, c, h, wg)[..., :wd] if wg != wd else out.reshape(m, c, h, wd)
                elif sh == 1 and sw == 1:
                    gpad = np.zeros((m, o, ho, wp), dt)
                    gpad[..., :wo] = g
                    gcols = np.matmul(wt, gpad.reshape(m, o, ho * wp))
                    gxp = col2im_flat(gcols, (m, c, hp, wp), kh, kw, ho)
                    gx[a:e] = gxp[:, :, ph:ph + h, pw:pw + wd]
                else:
                    gcols = np.matmul(wt, g.reshape(m, o, ho * wo))
                    gxp = col2im_add(gcols, (m, c, hp, wp), kh, kw, sh, sw, ho, wo)
                    gx[a:e] = gxp[:, :, ph:ph + h, pw:pw + wd]

        parallel_for(piece, pieces)
        gw = _sum_in_order(gw_parts).reshape(w.shape) if needs_w else None
        gb = _sum_in_order(gb_parts) if needs_b else None
        return gx, gw, gb

    def geo_xshape(self) -> tuple:
        """The input's shape (N, C, H, W)."""
        n, c, h, wd = self.geo[:4]
        return (n, c, h, wd)
