"""2-D convolution by im2col + batched GEMM (no Python loop over pixels; the batch goes in cache-sized chunks)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

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


def col2im_add(gcols: np.ndarray, xshape: tuple, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int) -> np.ndarray:
    """Scatter-add columns (N, C*kh*kw, Ho*Wo) back into a padded NCHW gradient.

    Two passes of shifted slice adds (rows, then columns): each first-pass add
    moves whole contiguous Ho*Wo blocks, which measured ~1.5x faster than
    kh*kw separate strided 2-D slice adds.
    """
    n, c, hp, wp = xshape
    cols = gcols.reshape(n, c, kh, kw, ho, wo)
    tmp = np.zeros((n, c, kw, hp, wo), gcols.dtype)
    for i in range(kh):
        tmp[:, :, :, i:i + sh * (ho - 1) + 1:sh, :] += cols[:, :, i]
    g = np.zeros(xshape, gcols.dtype)
    for j in range(kw):
        g[:, :, :, j:j + sw * (wo - 1) + 1:sw] += tmp[:, :, j]
    return g


def col2im_flat(gcols: np.ndarray, xshape: tuple, kh: int, kw: int, ho: int) -> np.ndarray:
    """Stride-1 col2im from columns computed on a gradient padded to the input's width.

    ``gcols`` is (N, C*kh*kw, Ho*Wp): each row of Wo values is followed by
    kw-1 zeros, so window (i, j) is one contiguous block added at flat offset
    i*Wp + j of each padded input plane; the zeros that spill past a row's end
    add nothing. kh*kw adds of contiguous blocks, no strided inner loop.
    """
    n, c, hp, wp = xshape
    cols = gcols.reshape(n * c, kh, kw, ho * wp)
    size, span = hp * wp, ho * wp
    g = np.zeros((n * c, size + kw), gcols.dtype)  # kw spare slots take the last row's spill
    for i in range(kh):
        for j in range(kw):
            off = i * wp + j
            g[:, off:off + span] += cols[:, i, j]
    return g[:, :size].reshape(xshape)


#: Bytes of im2col columns built per GEMM in the forward pass (about half an L2 cache):
#: measured ~1.5x faster than one big im2col for LeNet's first conv at batch 128,
#: ~3x at batch 256 without grad (no tens-of-MB buffer to fault in and stream).
COLUMN_CHUNK_BYTES = 1 << 19

#: Columns larger than this are not kept for the weight gradient but rebuilt a few images at a
#: time in backward from the (much smaller) input.
KEEP_COLUMNS_MAX_BYTES = 16 << 20

#: Bytes of input-gradient columns per chunk in backward (stride 1).
INPUT_GRAD_CHUNK_BYTES = 1 << 21

#: Images per chunk when the columns are rebuilt in backward.
REBUILD_CHUNK = 8


def _weight_grad(cols: np.ndarray, g: np.ndarray) -> np.ndarray:
    """sum over the batch of g (N, O, P) @ colsᵀ (N, P, K), as (O, K).

    For a short reduction (P <= K, e.g. LeNet's second conv) the (K, O) orientation
    measured ~2x faster in OpenBLAS than (O, K).
    """
    if cols.shape[2] <= cols.shape[1]:
        return np.matmul(cols, g.transpose(0, 2, 1)).sum(axis=0).T
    return np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)


#: Columns at least this big are built from flat windows (stride 1): the long contiguous copies
#: win over the junk columns they add once the columns no longer fit in cache.
FLAT_MIN_BYTES = 8 << 20


def _flat_windows(x: np.ndarray, kh: int, kw: int, ph: int, pw: int):
    """Stride-1 windows as long contiguous runs: a (N, C, kh, kw, Ho*Wp) view of the padded input.

    Each padded plane is stored flat with kw-1 spare zeros, so window (i, j) of every output
    position is one contiguous run of Ho*Wp values starting at i*Wp + j; the Wp-Wo extra values
    per output row are junk columns dropped after the GEMM. Copying these runs into columns
    measured 1.6-4x faster than copying the 2-D windows of sliding_window_view (rows of only Wo
    values), e.g. LeNet conv2 at batch 128: 0.80 -> 0.19 ms.
    """
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    ho = hp - kh + 1
    flat = np.zeros((n, c, hp * wp + kw - 1), x.dtype)
    flat[:, :, :hp * wp].reshape(n, c, hp, wp)[:, :, ph:ph + h, pw:pw + w] = x
    s = flat.strides
    return as_strided(flat, (n, c, kh, kw, ho * wp), (s[0], s[1], wp * s[2], s[2], s[2]), writeable=False)


class Conv2d(Op):
    """Cross-correlation of NCHW input with (O, C, kh, kw) weights, PyTorch's conv2d."""

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = pair(stride), pair(padding)

    def forward(self, x, w, b=None):
        (sh, sw), (ph, pw) = self.stride, self.padding
        o, c, kh, kw = w.shape
        n, _, h, wd = x.shape
        hp, wp = h + 2 * ph, wd + 2 * pw
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        k = c * kh * kw
        if sh == 1 and sw == 1 and n * k * ho * wo * x.itemsize >= FLAT_MIN_BYTES:
            win = _flat_windows(x, kh, kw, ph, pw)  # columns over Ho*Wp positions (junk past Wo)
            p = ho * wp
        else:
            xp = pad2d(x, ph, pw)
            win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
            win = win.transpose(0, 1, 4, 5, 2, 3)  # N C kh kw Ho Wo: the column layout, still a view
            p = ho * wo
        wm = w.reshape(o, k)
        y = np.empty((n, o, p), np.result_type(x, w))  # (N, O, positions): NCHW with no transpose
        bias = None if b is None else b.reshape(1, o, 1)
        # The columns are built and multiplied a few images at a time so that the
        # GEMM reads them from cache; only the weight gradient needs them kept.
        wants_cols = self.needs is not None and self.needs[1]
        keep = wants_cols and n * k * p * x.itemsize <= KEEP_COLUMNS_MAX_BYTES
        step = max(1, COLUMN_CHUNK_BYTES // (k * p * x.itemsize))
        cols = np.empty((n if keep else min(step, n), k, p), x.dtype)
        for a in range(0, n, step):
            m = min(step, n - a)
            dst = cols[a:a + m] if keep else cols[:m]
            dst.reshape((m,) + win.shape[1:])[...] = win[a:a + m]
            out = y[a:a + m]
            np.matmul(wm, dst, out=out)
            if bias is not None:
                out += bias
        if self.needs is not None:
            self.cols = cols if keep else None
            self.win = win if (wants_cols and not keep) else None  # rebuilt in backward
            self.w, self.xshape, self.hw = w, x.shape, (ho, wo)
            self.xpshape = (n, c, hp, wp)
            self.flat = p != ho * wo
        if p != ho * wo:  # drop the junk columns of the flat layout
            return np.ascontiguousarray(y.reshape(n, o, ho, wp)[..., :wo])
        return y.reshape(n, o, ho, wo)

    def _positions_grad(self, gy: np.ndarray) -> np.ndarray:
        """gy (N, O, Ho, Wo) as (N, O, positions) in the forward's column layout (zeros at junk columns)."""
        n, o, ho, wo = gy.shape
        if self.flat:
            wp = self.xpshape[3]
            gpad = np.zeros((n, o, ho, wp), gy.dtype)
            gpad[..., :wo] = gy
            return gpad.reshape(n, o, ho * wp)
        return gy.reshape(n, o, ho * wo)

    def backward(self, gy):
        n, o = gy.shape[:2]
        w, cols = self.w, self.cols
        g = gy.reshape(n, o, -1)
        gx = gw = gb = None
        if self.needs[1]:
            gpos = self._positions_grad(gy)
            gw = (_weight_grad(cols, gpos) if cols is not None else self._rebuilt_weight_grad(gpos)).reshape(w.shape)
        if len(self.needs) > 2 and self.needs[2]:
            gb = g.sum(axis=0).sum(axis=1)  # batch axis first: measured 2-4x faster than sum(axis=(0, 2))
        if self.needs[0]:
            _, c, kh, kw = w.shape
            (sh, sw), (ph, pw) = self.stride, self.padding
            ho, wo = self.hw
            wt = w.reshape(o, -1).T
            if sh == 1 and sw == 1:
                wp = self.xpshape[3]
                # a few images at a time, so that the columns are scattered back while in cache
                step = max(1, INPUT_GRAD_CHUNK_BYTES // (wt.shape[0] * ho * wp * gy.itemsize))
                gpad = np.zeros((min(step, n), o, ho, wp), gy.dtype)
                gxp = np.empty(self.xpshape, gy.dtype)
                for a in range(0, n, step):
                    m = min(step, n - a)
                    gpad[:m, ..., :wo] = gy[a:a + m]
                    gcols = np.matmul(wt, gpad[:m].reshape(m, o, ho * wp))  # (m, C*kh*kw, Ho*Wp)
                    gxp[a:a + m] = col2im_flat(gcols, (m,) + self.xpshape[1:], kh, kw, ho)
            else:
                gcols = np.matmul(wt, g)  # (N, C*kh*kw, Ho*Wo)
                gxp = col2im_add(gcols, self.xpshape, kh, kw, sh, sw, ho, wo)
            h, wd = self.xshape[2:]
            gx = gxp[:, :, ph:ph + h, pw:pw + wd] if (ph or pw) else gxp
        return gx, gw, gb

    def _rebuilt_weight_grad(self, gpos: np.ndarray) -> np.ndarray:
        """The weight gradient with the columns rebuilt a few images at a time (kept in cache)."""
        win = self.win
        n, c, kh, kw = win.shape[:4]
        p = gpos.shape[2]
        cols = np.empty((min(REBUILD_CHUNK, n), c * kh * kw, p), gpos.dtype)
        acc = None
        for a in range(0, n, REBUILD_CHUNK):
            m = min(REBUILD_CHUNK, n - a)
            dst = cols[:m]
            dst.reshape((m,) + win.shape[1:])[...] = win[a:a + m]
            part = _weight_grad(dst, gpos[a:a + m])
            acc = part if acc is None else acc + part
        return acc
