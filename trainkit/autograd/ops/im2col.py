"""Padding, column (im2col) windows and their scatter-back (col2im) for the conv kernels.

Two window layouts feed the GEMMs of :mod:`.conv`:

- *flat* (stride 1): each padded plane is stored as one row (plus kw-1 spare
  zeros), so the window of kernel offset (i, j) over all Ho x Wp output
  positions is one contiguous run starting at i*Wp + j. The Wp-Wo extra
  values per output row are junk columns that the GEMM computes and the
  caller drops. Copying these long runs measured 1.6-4x faster than copying
  the 2-D windows of ``sliding_window_view`` (rows of only Wo values).
- *strided*: ``sliding_window_view`` of the padded input, Ho x Wo positions,
  any stride.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..threads import parallel_for, split
from . import jit


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


def flat_planes(x: np.ndarray, ph: int, pw: int, kw: int) -> np.ndarray:
    """x (N, C, H, W) zero-padded, each padded plane stored flat with kw-1 spare zeros: (N, C, Hp*Wp + kw-1).

    One memset and one copy of the interior, the copy split over the intra-op threads
    (zeroing only the borders instead measured 2.5x slower: thousands of 2-value writes).
    """
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    drv = jit.blas_parallel() if x.dtype in (np.float32, np.float64) and x.flags.c_contiguous and h else None
    if drv is not None:  # every value written in one compiled pass on OpenMP's threads
        buf = np.empty((n, c, hp * wp + kw - 1), x.dtype)
        drv.pad_flat(x, buf, ph, pw, max(1, n // 16))
        return buf
    buf = np.zeros((n, c, hp * wp + kw - 1), x.dtype)
    planes = buf[:, :, :hp * wp].reshape(n, c, hp, wp)

    def copy(a, e):
        planes[a:e, :, ph:ph + h, pw:pw + w] = x[a:e]

    parallel_for(copy, split(n, -(-n // 4)) if x.nbytes >= PARALLEL_MIN_BYTES else [(0, n)])
    return buf


#: Copies smaller than this run on the calling thread only (a parallel_for costs ~15 us).
PARALLEL_MIN_BYTES = 1 << 18


def flat_windows(buf: np.ndarray, kh: int, kw: int, ho: int, wp: int) -> np.ndarray:
    """(N, C, kh, kw, Ho*Wp) read-only view of :func:`flat_planes`: window (i, j) starts at i*Wp + j."""
    s = buf.strides
    n, c = buf.shape[:2]
    return as_strided(buf, (n, c, kh, kw, ho * wp), (s[0], s[1], wp * s[2], s[2], s[2]), writeable=False)


def strided_windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """(N, C, kh, kw, Ho, Wo) view of the padded input's windows (any stride)."""
    return padded_windows(pad2d(x, ph, pw), kh, kw, sh, sw)


def padded_windows(xpad: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """(N, C, kh, kw, Ho, Wo) view of the windows of an already padded input (any stride)."""
    win = sliding_window_view(xpad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.transpose(0, 1, 4, 5, 2, 3)


def col2im_flat(gcols: np.ndarray, xshape: tuple, kh: int, kw: int, ho: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """Stride-1 col2im from columns computed on a gradient padded to the input's width.

    ``gcols`` is (N, C*kh*kw, Ho*Wp): each row of Wo values is followed by
    kw-1 zeros, so window (i, j) is one contiguous block added at flat offset
    i*Wp + j of each padded input plane; the zeros that spill past a row's end
    add nothing. kh*kw adds of contiguous blocks, no strided inner loop.
    ``out``: a (N, C, Hp*Wp + kw) buffer to accumulate into (zeroed here).
    """
    n, c, hp, wp = xshape
    cols = gcols.reshape(n * c, kh, kw, ho * wp)
    size, span = hp * wp, ho * wp
    if out is None:
        g = np.zeros((n * c, size + kw), gcols.dtype)  # kw spare slots take the last row's spill
    else:
        g = out.reshape(n * c, size + kw)
        g[...] = 0
    for i in range(kh):
        for j in range(kw):
            off = i * wp + j
            g[:, off:off + span] += cols[:, i, j]
    return g[:, :size].reshape(xshape)
