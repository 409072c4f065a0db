"""Compiled loops that call BLAS, on numba's OpenMP threads: convolution passes and blocked products (see :func:`.jit.blas_parallel`).

The same algorithm as :mod:`.conv` (im2col of a few images into columns that stay in cache, one GEMM
per image), but each piece's column copies, GEMMs and output writes run in one ``prange`` loop with no
GIL: on the intra-op pool every numpy call of a piece handed the GIL between the two threads, which on
a VM that halts idle cores cost tens of microseconds each time. The GEMMs are numba's ``np.dot`` (BLAS
through SciPy, set to one thread while these loops run: each OpenMP thread makes its own products).

Pieces are cut by the data's sizes only, and each piece's weight-gradient partial is returned on its
own for the caller to sum in piece order, so results do not depend on the thread count.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.np.linalg import ensure_blas

ensure_blas()  # SciPy's BLAS, which numba's np.dot and _xxgemm call (ImportError without SciPy)

#: numba's C entry to SciPy's ?gemm (numba/_lapack.c): BLAS's column-major C = alpha op(A) op(B) + beta C with
#: every leading dimension given, so that one call can write a block of a larger matrix (np.dot cannot).
#: Arguments: kind ('s' or 'd'), transa, transb ('n' or 't'), m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc.
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, types.voidptr, types.voidptr,
    types.intp, types.voidptr, types.intp, types.voidptr, types.voidptr, types.intp))
_N, _T = ord("n"), ord("t")


@nb.njit(nogil=True, cache=True, inline="always")
def _fill_flat(cols, buf, i, c, kh, kw, wp, p0, p1):
    """cols[(ci, ki, kj), :] = positions p0..p1 of window (ki, kj) of image i's flat planes."""
    for ci in range(c):
        for ki in range(kh):
            for kj in range(kw):
                r = (ci * kh + ki) * kw + kj
                off = ki * wp + kj
                cols[r, :] = buf[i, ci, off + p0:off + p1]


@nb.njit(nogil=True, cache=True, inline="always")
def _fill_strided(cols, xpad, i, c, kh, kw, sh, sw, wp, wo, r0, r1):
    """cols[(ci, ki, kj), (row, col)] for output rows r0..r1 of image i's padded planes (stored flat,
    rows of ``wp``), any stride."""
    for ci in range(c):
        for ki in range(kh):
            for kj in range(kw):
                r = (ci * kh + ki) * kw + kj
                q = 0
                for hh in range(r0, r1):
                    base = (ki + sh * hh) * wp + kj
                    if sw == 1:
                        cols[r, q:q + wo] = xpad[i, ci, base:base + wo]
                    else:
                        for ww in range(wo):
                            cols[r, q + ww] = xpad[i, ci, base + sw * ww]
                    q += wo


@nb.njit(nogil=True, parallel=True, cache=True)
def forward(src, wm, bias, y, kept, flat, kh, kw, sh, sw, wp, ho, wo, piece, pblock):
    """y = conv(x): ``src`` is the input's flat planes (``flat``, stride 1) or its padded planes stored
    flat, (N, C, Hp*Wp).

    wm (O, K); bias (O,) or empty; y (N, O, Ho, Wo); kept: (N, K, P) to keep the columns in (for the
    weight gradient) or empty; positions per image P = Ho*Wp (flat, Wp-Wo junk columns per row dropped)
    or Ho*Wo, multiplied in blocks of at most ``pblock`` (whole rows when strided).
    """
    n, c = src.shape[0], src.shape[1]
    o, k = wm.shape
    p = ho * wp if flat else ho * wo
    has_bias = bias.size > 0
    keep = kept.shape[0] > 0
    npieces = (n + piece - 1) // piece
    for t in nb.prange(npieces):
        a = t * piece
        e = min(n, a + piece)
        yp = np.empty((o, p), y.dtype)
        blk = min(p, pblock)
        tmp = np.empty((k, 0 if keep and p <= pblock else blk), src.dtype)  # reused by every image
        yb = np.empty((o, blk), y.dtype)
        for i in range(a, e):
            if p <= pblock:
                cols = kept[i] if keep else tmp
                if flat:
                    _fill_flat(cols, src, i, c, kh, kw, wp, 0, p)
                else:
                    _fill_strided(cols, src, i, c, kh, kw, sh, sw, wp, wo, 0, ho)
                np.dot(wm, cols, yp)
            else:
                for p0 in range(0, p, pblock):
                    p1 = min(p, p0 + pblock)
                    cols = tmp if p1 - p0 == blk else np.empty((k, p1 - p0), src.dtype)
                    yo = yb if p1 - p0 == blk else np.empty((o, p1 - p0), y.dtype)
                    if flat:
                        _fill_flat(cols, src, i, c, kh, kw, wp, p0, p1)
                    else:
                        _fill_strided(cols, src, i, c, kh, kw, sh, sw, wp, wo, p0 // wo, p1 // wo)
                    np.dot(wm, cols, yo)
                    yp[:, p0:p1] = yo
            width = wp if flat else wo
            for oc in range(o):
                if has_bias:
                    bv = bias[oc]
                    for hh in range(ho):
                        for ww in range(wo):
                            y[i, oc, hh, ww] = yp[oc, hh * width + ww] + bv
                else:
                    for hh in range(ho):
                        y[i, oc, hh, :] = yp[oc, hh * width:hh * width + wo]


@nb.njit(nogil=True, parallel=True, cache=True)
def backward_same(gbuf, wf, xbuf, gx, gw_parts, kh, kw, wg, h, wd, xoff, piece, pblock, need_x, need_w):
    """Input and weight gradients of a stride-1 "same" conv from one set of columns of the output gradient.

    gbuf: the output gradient's flat planes padded by kh-1-ph, (N, O, Hg*Wg + kw-1); wf: the flipped
    kernel as (C, O*kh*kw); xbuf: the input's flat planes (same width Wg), read at offset ``xoff``;
    gx (N, C, H, W) written when ``need_x``; gw_parts (pieces, O*kh*kw, C) written when ``need_w``
    (rows in flipped kernel order, as :class:`.conv.Conv2d` expects).
    """
    n, o = gbuf.shape[0], gbuf.shape[1]
    c = wf.shape[0]
    okk = o * kh * kw
    size = h * wg
    npieces = (n + piece - 1) // piece
    for t in nb.prange(npieces):
        a = t * piece
        e = min(n, a + piece)
        out = np.empty((c, size), gx.dtype)
        part = np.empty((okk, c), gbuf.dtype)
        blk = min(size, pblock)
        gfull = np.empty((okk, blk), gbuf.dtype)  # buffers of a full block, reused by every image
        ofull = np.empty((c, blk), gx.dtype)
        xfull = np.empty((blk, c), xbuf.dtype)  # the input's positions x channels: a contiguous (P, C)
        # operand (OpenBLAS ran these products 1.5x faster than from a transposed view)
        first = True
        for i in range(a, e):
            for p0 in range(0, size, pblock):
                p1 = min(size, p0 + pblock)
                full = p1 - p0 == blk
                gcols = gfull if full else np.empty((okk, p1 - p0), gbuf.dtype)
                _fill_flat(gcols, gbuf, i, o, kh, kw, wg, p0, p1)
                if need_x:
                    if p1 - p0 == size:
                        np.dot(wf, gcols, out)
                    else:
                        ob = ofull if full else np.empty((c, p1 - p0), gx.dtype)
                        np.dot(wf, gcols, ob)
                        out[:, p0:p1] = ob
                if need_w:
                    xt = xfull if full else np.empty((p1 - p0, c), xbuf.dtype)
                    for ci in range(c):
                        for q in range(p1 - p0):
                            xt[q, ci] = xbuf[i, ci, xoff + p0 + q]
                    if first:
                        np.dot(gcols, xt, gw_parts[t])
                        first = False
                    else:
                        np.dot(gcols, xt, part)
                        gw_parts[t] += part
            if need_x:
                for ci in range(c):
                    for hh in range(h):
                        gx[i, ci, hh, :] = out[ci, hh * wg:hh * wg + wd]


@nb.njit(nogil=True, parallel=True, cache=True)
def pad_flat(x, buf, ph, pw, piece):
    """buf (N, C, Hp*Wp + spare) = x (N, C, H, W) zero-padded by (ph, pw), each plane stored flat, the
    spare values after each plane zero (see :func:`.im2col.flat_planes`); every value of buf written."""
    n, c, h, w = x.shape
    wp = w + 2 * pw
    total = buf.shape[2]
    zero = buf.dtype.type(0)
    for t in nb.prange((n + piece - 1) // piece):
        a = t * piece
        e = min(n, a + piece)
        for i in range(a, e):
            for ci in range(c):
                buf[i, ci, :ph * wp + pw] = zero
                for r in range(h):
                    base = (ph + r) * wp + pw
                    buf[i, ci, base:base + w] = x[i, ci, r]
                    end = (ph + r + 1) * wp + pw if r + 1 < h else total
                    buf[i, ci, base + w:end] = zero


@nb.njit(nogil=True, cache=True)
def _cm_gemm(kind, ta, tb, i0, i1, j0, j1, k, a, lda, b, ldb, beta, c, coff, ldc):
    """One BLAS call for rows i0:i1 and columns j0:j1 of BLAS's column-major product C = op(A) op(B) (+ beta C),
    written at ``c[coff:]`` with leading dimension ``ldc``; A, B, C are flat arrays (see :func:`gemm_blocks`).

    A plain call, not ``inline="always"``: a product helper inlined into the conv loops' ``prange`` bodies
    gave garbage weight gradients (cause not found; called, it gave the right values)."""
    one = np.ones(1, c.dtype)
    bt = np.full(1, beta, c.dtype)
    aoff = i0 if ta == _N else i0 * lda
    boff = j0 * ldb if tb == _N else j0
    _xxgemm(kind, ta, tb, i1 - i0, j1 - j0, k, one.ctypes, a[aoff:].ctypes, lda, b[boff:].ctypes, ldb, bt.ctypes,
            c[coff:].ctypes, ldc)


@nb.njit(nogil=True, parallel=True, cache=True)
def gemm_blocks(kind, ta, tb, m, n, k, a, lda, b, ldb, c, isize, jsize):
    """BLAS's column-major C (m x n, leading dimension m, flat in ``c``) = op(A) op(B), in blocks of ``isize``
    rows by ``jsize`` columns, one BLAS call per block on one thread (the caller sets SciPy's BLAS serial).

    A and B are flat arrays with their transpose flags (``_N``/``_T``) and leading dimensions, as BLAS takes
    them. Each block is zeroed first and accumulated into with beta 1: with beta 0 OpenBLAS zeroes C in a
    pass of its own, slower than a fill (the MLP's 512 x 3072 weight gradient at 1 thread: 3.35 ms against
    3.09 ms for fill + beta 1). 0 + x is x, so the values are those of beta 0.
    """
    nib = (m + isize - 1) // isize
    njb = (n + jsize - 1) // jsize
    for t in nb.prange(nib * njb):
        i0 = (t // njb) * isize
        i1 = min(m, i0 + isize)
        j0 = (t % njb) * jsize
        j1 = min(n, j0 + jsize)
        for j in range(j0, j1):
            c[j * m + i0:j * m + i1] = 0
        _cm_gemm(kind, ta, tb, i0, i1, j0, j1, k, a, lda, b, ldb, 1.0, c, i0 + j0 * m, m)


@nb.njit(nogil=True, parallel=True, cache=True)
def gemm_t(kind, ta, tb, m, n, k, a, lda, b, ldb, out, jsize, bias):
    """out (m x n, C-contiguous) = op(A) op(B) (+ bias), with BLAS's roles as for a column-major ``out``.

    BLAS's column-major view of a C-contiguous ``out`` is outᵀ, which makes ``out``'s columns BLAS's rows.
    Here each block of ``jsize`` columns is instead computed column-major into a scratch (out's own rows
    as BLAS's rows) and copied into ``out`` transposed, with the bias added (the bias is added after the
    product, as numpy's ``y += b`` does: the values are numpy's). A, B as for :func:`gemm_blocks`, for
    the problem op(A) (m x k) op(B) (k x n). OpenBLAS's kernel runs 5-16% faster this way on products of
    few rows over a long reduction (the MLP's first layer, 128 x 3072 x 512: 1.59 against 1.74 ms at 2
    threads; see :data:`trainkit.autograd.ops.matmul.SWAP_MAX_ROWS`).
    """
    has_bias = bias.shape[0] > 0
    for t in nb.prange((n + jsize - 1) // jsize):
        j0 = t * jsize
        j1 = min(n, j0 + jsize)
        scr = np.empty((j1 - j0) * m, out.dtype)
        _cm_gemm(kind, ta, tb, 0, m, j0, j1, k, a, lda, b, ldb, 0.0, scr, 0, m)
        for i0 in range(0, m, 32):  # 32 rows at a time: the scratch's lines stay in L1 across the rows
            for i in range(i0, min(m, i0 + 32)):
                row = out[i]
                for j in range(j1 - j0):
                    v = scr[j * m + i]
                    if has_bias:
                        v += bias[j0 + j]
                    row[j0 + j] = v


@nb.njit(nogil=True, parallel=True, cache=True)
def backward_cols(src, kept, gy, wm, gx, gw_parts, flat, kh, kw, sh, sw, wp, hp, ho, wo, piece, need_x, need_w,
                  wide):
    """Input gradient by col2im and weight gradient from the input's columns, image by image.

    src, kept, flat, kh..wo as for :func:`forward` (the columns are taken from ``kept`` when it is not
    empty, else rebuilt from ``src``); gy (N, O, Ho, Wo); wm (O, K). gx (N, C, H, W): written when
    ``need_x``, as Wᵀ @ g scattered back window by window into zeroed padded planes.
    gw_parts (pieces, O, K), or (pieces, K, O) when ``wide``: each piece's weight gradient, summed image
    by image.
    """
    n, o = gy.shape[0], gy.shape[1]
    k = wm.shape[1]
    c = k // (kh * kw)
    p = ho * wp if flat else ho * wo
    width = wp if flat else wo
    keep = kept.shape[0] > 0
    h, w = gx.shape[2], gx.shape[3]
    ph, pw = (hp - h) // 2, (wp - w) // 2
    npieces = (n + piece - 1) // piece
    for t in nb.prange(npieces):
        a = t * piece
        e = min(n, a + piece)
        gpos = np.zeros((o, p), gy.dtype)  # the gradient at the columns' positions (zero at junk ones)
        tmp = np.empty((k, 0 if keep else p), gy.dtype)
        part = np.empty(gw_parts.shape[1:], gy.dtype)
        span = ho * wp
        unit = sh == 1 and sw == 1
        # Wᵀ @ g is taken on rows of Wp values at stride 1 (each window then one contiguous add), else of Wo
        wx = wp if unit else wo
        gsrc = gpos if wx == width else np.zeros((o, ho * wx if need_x else 0), gy.dtype)
        gcols = np.empty((k, ho * wx if need_x else 0), gy.dtype)
        planes = np.empty((c, hp * wp + kw), gy.dtype)
        first = True
        for i in range(a, e):
            for oc in range(o):
                for hh in range(ho):
                    gpos[oc, hh * width:hh * width + wo] = gy[i, oc, hh]
            if need_w:
                cols = kept[i] if keep else tmp
                if not keep:
                    if flat:
                        _fill_flat(cols, src, i, c, kh, kw, wp, 0, p)
                    else:
                        _fill_strided(cols, src, i, c, kh, kw, sh, sw, wp, wo, 0, ho)
                dst = gw_parts[t] if first else part
                if wide:
                    np.dot(cols, gpos.T, dst)
                else:
                    np.dot(gpos, cols.T, dst)
                if first:
                    first = False
                else:
                    gw_parts[t] += part
            if need_x:
                if wx != width:
                    for oc in range(o):
                        for hh in range(ho):
                            gsrc[oc, hh * wx:hh * wx + wo] = gy[i, oc, hh]
                np.dot(wm.T, gsrc, gcols)
                planes[:] = 0
                for ci in range(c):
                    for ki in range(kh):
                        for kj in range(kw):
                            r = (ci * kh + ki) * kw + kj
                            if unit:
                                off = ki * wp + kj
                                planes[ci, off:off + span] += gcols[r]
                            else:  # each output position added at its input position
                                for hh in range(ho):
                                    base = (ki + sh * hh) * wp + kj
                                    for ww in range(wo):
                                        planes[ci, base + sw * ww] += gcols[r, hh * wo + ww]
            if need_x:
                for ci in range(c):
                    for hh in range(h):
                        gx[i, ci, hh, :] = planes[ci, (ph + hh) * wp + pw:(ph + hh) * wp + pw + w]


@nb.njit(nogil=True, parallel=True, cache=True)
def gemm_k(at, b, parts, size):
    """parts[t] = atᵀ[:, K block t] @ b[K block t] for blocks of ``size`` along the reduction (the caller sums
    them in block order). ``at`` is the transposed left operand, C-contiguous (a weight gradient's gy): its
    row blocks are contiguous."""
    k = at.shape[0]
    for t in nb.prange((k + size - 1) // size):
        k0 = t * size
        k1 = min(k, k0 + size)
        np.dot(at[k0:k1].T, b[k0:k1], parts[t])
