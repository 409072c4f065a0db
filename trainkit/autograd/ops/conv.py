"""2-D convolution by im2col + GEMM, a few images at a time, the pieces spread over the intra-op threads.

Every pass (forward, weight gradient, input gradient) works on pieces of a
few images whose columns fit in about half an L2 cache, so each GEMM reads
columns that were just written. The pieces are independent, so
:func:`~trainkit.autograd.threads.parallel_for` runs them on several cores
(numpy releases the GIL in the copies and GEMMs); partial weight and bias
gradients are summed in piece order, so results do not depend on the number
of threads.

With numba and SciPy (the ``fast`` extra), the same pieces run as one compiled
loop on numba's OpenMP threads (:mod:`._numba_blas`): no GIL hand-over between
threads per numpy call, which on a VM that halts idle cores cost more than the
second core gave. The numpy pieces below stay the path without them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..function import Op
from ..threads import parallel_for, split
from . import jit
from .im2col import col2im_flat, flat_planes, flat_windows, pad2d, padded_windows, pair, strided_windows

__all__ = ["Conv2d", "pair", "pad2d"]

#: Bytes of im2col columns per piece (about half an L2 cache): measured ~1.5x faster than one big
#: im2col for LeNet's first conv at batch 128, ~3x at batch 256 without grad. 1 MB rather than 512 KB
#: (2026-11-29, whole training steps, medians of 3 alternating 1.5 s runs): LeNet batch 128 at 2 threads
#: +16-21% (7,009-7,721 -> 8,104-9,089 images/s: fewer pieces, so less of each step under the GIL),
#: LeNet inference at batch 256 +52% at 2 threads and +14% at 1, cifar_resnet batch 64 / 128 +4% / +3% at
#: 2 threads, every workload within ±2.5% otherwise.
COLUMN_CHUNK_BYTES = 1 << 20

#: Per-image columns larger than POSITION_BLOCK_BYTES are multiplied in blocks of at most
#: POSITION_BLOCK output positions when the product has at most 16 rows: OpenBLAS's direct SkylakeX
#: sgemm ran (16 x 144) @ (144 x N) at 52-60 GMAC/s for N <= 384 and 30-39 for N >= 448 (ResNet's
#: 32x32 maps have N = 1088 positions per image); with 32 or more rows, or small columns (LeNet's
#: 75 x 896, a 3-channel stem's 27 x 1088), blocks ran no faster.
POSITION_BLOCK_BYTES = 320 << 10
POSITION_BLOCK = 384

#: Bytes of input-gradient columns per piece for the col2im path (stride 1, padding below (k-1)/2).
INPUT_GRAD_CHUNK_BYTES = 1 << 21

#: Pieces a backward pass with no columns to build is cut into (enough to keep two threads busy), and
#: the most pieces any pass is cut into.
MIN_PIECES = 4
MAX_PIECES = 16

#: Columns larger than this are not kept for the weight gradient but rebuilt piece by piece in
#: backward from the (much smaller) input: writing them to memory in forward cost more than the
#: rebuild (LeNet's first conv at batch 64, 15 MB: 4.18 ms kept, 3.46 ms rebuilt, forward + backward;
#: a 3-channel stem at batch 128, 14 MB: 6.52 against 6.03 ms), while 7.5 MB still paid off (1.44
#: against 1.74 ms at batch 32).
KEEP_COLUMNS_MAX_BYTES = 8 << 20

#: Stride-1 convs take their columns from flat planes (long contiguous copies; Wp-Wo junk columns per
#: output row computed by the GEMM and dropped) when the junk is at most FLAT_MAX_JUNK of the columns
#: and either the output rows are short (at most FLAT_MAX_WIDTH values: the window copy's runs of Wo
#: values are slow) or the columns are large (FLAT_MIN_BYTES) with at least FLAT_MIN_ROWS column rows
#: to copy. Measured forward + backward: 16->16 3x3 at 32x32, batch 64, 17.0 ms flat against 19.0 ms
#: from sliding windows; a 3-channel 3x3 stem (27 rows) 1.56 against 1.24 ms at batch 32 and 6.1
#: against 4.5 ms at batch 128; LeNet's 5x5 first conv (75 rows) flat from 8 MB as before.
FLAT_MAX_JUNK = 0.25
FLAT_MAX_WIDTH = 16
FLAT_MIN_BYTES = 8 << 20
FLAT_MIN_ROWS = 64


def _piece_images(n: int, image_bytes: int) -> int:
    """Images per backward piece: columns of about COLUMN_CHUNK_BYTES, but at most MAX_PIECES pieces.

    The cap keeps Python's per-piece cost (a dozen numpy calls in backward) small next to the work
    when one image's columns already fill the chunk (LeNet's first conv: 269 KB an image); forward
    pieces (four calls) measured faster uncapped.
    """
    return max(1, COLUMN_CHUNK_BYTES // max(1, image_bytes), -(-n // MAX_PIECES))


def _blocks(m_rows: int, k: int, p: int, itemsize: int, unit: int = 1) -> list:
    """(start, stop) blocks of the p positions of a (k, p) column matrix multiplied by ``m_rows`` rows.

    See POSITION_BLOCK_BYTES; only products with at most 16 rows are blocked (with 32 or more the
    kernel ran as fast unblocked). Block bounds are multiples of ``unit`` (a row of positions, for
    windows that are not flat).
    """
    small = m_rows > 16 or k * p * itemsize <= POSITION_BLOCK_BYTES
    nblk = 1 if small else -(-p // POSITION_BLOCK)
    step = max(1, -(-(p // unit) // nblk)) * unit
    return [(p0, min(p, p0 + step)) for p0 in range(0, p, step)]


class Geometry(NamedTuple):
    """Sizes of one conv2d: input (n, c, h, w), kernel (o, kh, kw), output (ho, wo), padded (hp, wp),
    flat-plane width wq, whether columns come from flat planes, and column positions per image p."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    ho: int
    wo: int
    hp: int
    wp: int
    wq: int
    flat: bool
    p: int

    @classmethod
    def of(cls, xshape, wshape, stride, padding) -> "Geometry":
        (sh, sw), (ph, pw) = stride, padding
        o, c, kh, kw = wshape
        n, _, h, w = xshape
        hp, wp = h + 2 * ph, w + 2 * pw
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        wq = -(-wp // sw)
        large = n * c * kh * kw * ho * wo * 4 >= FLAT_MIN_BYTES and c * kh * kw >= FLAT_MIN_ROWS
        short = wo <= FLAT_MAX_WIDTH or large
        flat = sh == 1 and sw == 1 and (wq - wo) <= FLAT_MAX_JUNK * wq and short
        return cls(n, c, h, w, o, kh, kw, ho, wo, hp, wp, wq, flat, ho * wq if flat else ho * wo)


#: Pieces the compiled forward loop cuts the batch into (whole images each; no partial results, so the
#: count only balances the threads).
FORWARD_PIECES = 16


def _compiled_ok(*arrays) -> bool:
    """Whether the compiled passes take these arrays: one float dtype that numba's BLAS multiplies."""
    dts = {a.dtype for a in arrays if a is not None}
    return len(dts) == 1 and next(iter(dts)) in (np.float32, np.float64)


def _bias_grad(gp: np.ndarray) -> np.ndarray:
    """A piece's bias gradient: gy summed over images, then positions (batch axis first: 2-4x faster)."""
    return gp.reshape(gp.shape[0], gp.shape[1], -1).sum(axis=0).sum(axis=1)


def _empty(dtype) -> np.ndarray:
    return np.empty(0, dtype)


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
        return _cols_times_t(cols, g).T
    return np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)


def _cols_times_t(cols: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the piece of cols (m, K, P) @ bᵀ (m, P, N), as (K, N).

    When bᵀ is several times smaller than the columns it is copied contiguous first: OpenBLAS ran
    these products 1.5x faster from a contiguous (P, N) operand than from a transposed view (the
    3x3 convs' 144-row columns against 16 channels); with as many rows as channels (a 3-channel
    input's 27) the copy costs more than it saves.
    """
    bt = b.transpose(0, 2, 1)
    if 4 * b.shape[1] <= cols.shape[1]:
        bt = np.ascontiguousarray(bt)
    return np.matmul(cols, bt).sum(axis=0)


class Conv2d(Op):
    """Cross-correlation of NCHW input with (O, C, kh, kw) weights, PyTorch's conv2d.

    Backward of a stride-1 conv with "same" padding (the 3x3/pad-1 convs of
    residual nets) builds one set of columns, from the output gradient padded
    to the input's size: the input gradient is their product with the
    flipped kernel (a stride-1 conv, no col2im scatter) and the weight
    gradient their product with the padded input's flat planes, which
    already lie in the same positions (no rebuilt input columns). Strided
    convs compute the input gradient phase by phase (no col2im scatter either).
    """

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = pair(stride), pair(padding)

    def _same(self, g: Geometry) -> bool:
        """Stride 1, square kernel, padding (k-1)/2 on both axes: the output has the input's size."""
        (sh, sw), (ph, pw) = self.stride, self.padding
        return sh == 1 and sw == 1 and g.kh == g.kw and ph == pw and 2 * ph == g.kh - 1

    def _windows(self, x: np.ndarray, g: Geometry) -> tuple:
        """``(flat planes or None, [(tap rows, tap columns, view)])``: where each piece copies its columns from.

        Flat: views (N, C, taps, taps, Ho*Wq); otherwise one (N, C, kh, kw, Ho, Wo) view for all taps.
        """
        (sh, sw), (ph, pw) = self.stride, self.padding
        if not g.flat:
            return None, [(slice(None), slice(None), strided_windows(x, g.kh, g.kw, sh, sw, ph, pw))]
        buf = flat_planes(x, ph, pw, g.kw)
        return buf, [(slice(None), slice(None), flat_windows(buf, g.kh, g.kw, g.ho, g.wp))]

    @staticmethod
    def _fill(cols: np.ndarray, wins: list, a: int, e: int, g: Geometry, p0: int = 0, p1: int | None = None):
        """Copy the columns of images a..e, positions p0..p1, into ``cols`` (m, C*kh*kw, p1-p0)."""
        m = e - a
        p1 = g.p if p1 is None else p1
        if not g.flat:  # positions are whole output rows here (see _blocks' unit)
            win = wins[0][2][a:e, :, :, :, p0 // g.wo:p1 // g.wo]
            cols.reshape((m,) + win.shape[1:])[...] = win
            return cols
        c5 = cols.reshape(m, g.c, g.kh, g.kw, p1 - p0)
        for si, sj, view in wins:
            c5[:, :, si, sj] = view[a:e, ..., p0:p1]
        return cols

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b=None):
        g = self.geo = Geometry.of(x.shape, w.shape, self.stride, self.padding)
        n, c, o, k, p = g.n, g.c, g.o, g.c * g.kh * g.kw, g.p
        wm = w.reshape(o, k)
        y = np.empty((n, o, g.ho, g.wo), np.result_type(x, w))
        direct = g.kh == 1 and g.kw == 1 and self.stride == (1, 1) and self.padding == (0, 0)
        rec = self.needs is not None
        # the weight gradient of a same-padded conv whose input needs a gradient comes from the output
        # gradient's columns and the padded input (see the class docstring): no input columns to keep
        from_gcols = rec and self.needs[1] and self.needs[0] and self._same(g)
        wants_cols = rec and self.needs[1] and not from_gcols and not direct
        blocks = _blocks(o, k, p, x.itemsize, 1 if g.flat else g.wo)
        keep = wants_cols and n * k * p * x.itemsize <= KEEP_COLUMNS_MAX_BYTES and len(blocks) == 1
        kept = np.empty((n, k, p), x.dtype) if keep else None
        drv = None if direct or not _compiled_ok(x, w, b) else jit.blas_parallel()
        src = None  # the compiled passes' input: flat planes, or padded planes stored flat
        if drv is not None and not g.flat:
            xpad = np.ascontiguousarray(pad2d(x, *self.padding))
            src = xpad.reshape(n, c, g.hp * g.wp)
            xbuf, wins = None, [(slice(None), slice(None), padded_windows(xpad, g.kh, g.kw, *self.stride))]
        else:
            xbuf, wins = (None, None) if direct else self._windows(x, g)
            src = xbuf
        junk = g.flat and g.wq != g.wo

        ho, wo, wq, cdt, one = g.ho, g.wo, g.wq, x.dtype, len(blocks) == 1
        # the common case, one flat or strided window view for all taps: copied without _fill's loop
        view = wins[0][2] if wins is not None and len(wins) == 1 and one else None
        bias3 = None if b is None else b.reshape(1, o, 1)

        def piece(a, e):
            m = e - a
            yp = np.empty((m, o, p), y.dtype) if junk else y[a:e].reshape(m, o, p)
            if direct:  # a 1x1 conv's columns are the input itself
                np.matmul(wm, x[a:e].reshape(m, c, p), out=yp)
            elif view is not None:
                cols = kept[a:e] if keep else np.empty((m, k, p), cdt)
                cols.reshape((m,) + view.shape[1:])[...] = view[a:e]
                np.matmul(wm, cols, out=yp)
            else:
                for p0, p1 in blocks:
                    cols = self._fill(np.empty((m, k, p1 - p0), cdt), wins, a, e, g, p0, p1)
                    np.matmul(wm, cols, out=yp[:, :, p0:p1] if not one else yp)
            if bias3 is not None:  # on the contiguous rows (a broadcast add on strided rows measured slower)
                yp += bias3
            if junk:
                y[a:e] = yp.reshape(m, o, ho, wq)[..., :wo]  # junk columns dropped

        if drv is not None:  # the pieces as one compiled loop on OpenMP's threads
            pblock = blocks[0][1] - blocks[0][0] if len(blocks) > 1 else p
            (sh, sw) = self.stride
            with jit.serial_scipy_blas():
                drv.forward(src, np.ascontiguousarray(wm), _empty(y.dtype) if b is None else b, y,
                            kept if keep else np.empty((0, k, p), x.dtype), g.flat, g.kh, g.kw, sh, sw,
                            g.wp, g.ho, g.wo, max(1, n // FORWARD_PIECES), pblock)
        else:
            parallel_for(piece, split(n, COLUMN_CHUNK_BYTES // max(1, k * p * x.itemsize)))
        if rec:
            self.w, self.kept, self.from_gcols = w, kept, from_gcols
            self.x = x if (direct or (from_gcols and xbuf is None)) else None
            self.xbuf = xbuf if from_gcols else None
            self.wins = wins if wants_cols and not keep else None  # input columns rebuilt in backward
            self.src = src if wants_cols and not keep else None  # the same, for the compiled passes
        return y

    # ------------------------------------------------------------------ backward
    def backward(self, gy):
        g = self.geo
        (sh, sw), (ph, pw) = self.stride, self.padding
        n, c, h, wd, o, kh, kw = g.n, g.c, g.h, g.w, g.o, g.kh, g.kw
        k = c * kh * kw
        needs_x, needs_w = self.needs[0], self.needs[1]
        needs_b = len(self.needs) > 2 and self.needs[2]
        w, dt = self.w, gy.dtype
        # stride 1 with at least "same" padding: the input gradient is a stride-1 conv of gy padded by
        # q = kh-1-ph with the flipped kernel, built from flat windows like the forward (no col2im adds)
        q = kh - 1 - ph
        transposed = needs_x and sh == 1 and sw == 1 and kh == kw and ph == pw and 0 <= q <= ph
        wg = g.wo + 2 * q  # width of gy's padded planes (and of the columns) in the transposed path
        okk = o * kh * kw
        col_bytes = 0
        phases = None
        if transposed:
            wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, okk)
            gwin = flat_windows(flat_planes(gy, q, q, kw), kh, kw, h, wg)
            col_bytes = okk * h * wg
        elif needs_x and (sh > 1 or sw > 1):
            phases = self._phases(w)
            col_bytes = okk * g.ho * g.wo
        elif needs_x:  # col2im: its many small adds prefer larger pieces (measured +5% at LeNet's b128)
            col_bytes = k * g.ho * g.wp * COLUMN_CHUNK_BYTES // INPUT_GRAD_CHUNK_BYTES
        from_gcols = needs_w and self.from_gcols
        if from_gcols:  # the padded input's planes, at the positions of the gradient's columns
            xbuf = self.xbuf if self.xbuf is not None else flat_planes(self.x, ph, pw, kw)
            xpos = xbuf[:, :, ph * g.wp + pw:ph * g.wp + pw + h * wg]
        elif needs_w and self.kept is None:  # input columns rebuilt piece by piece
            col_bytes = max(col_bytes, k * g.p)
        # pieces sized by the columns built per image; with none built (kept columns), a few large pieces
        step = _piece_images(n, col_bytes * gy.itemsize) if col_bytes else -(-n // MIN_PIECES)
        tblocks = _blocks(c, okk, h * wg, gy.itemsize) if transposed else None
        pieces = [(i, a, e) for i, (a, e) in enumerate(split(n, step))]
        gw_parts, gb_parts = [None] * len(pieces), [None] * len(pieces)
        if needs_x and not transposed and sh == 1 and sw == 1:  # col2im accumulates into padded planes
            gxpad = np.empty((n, c, g.hp * g.wp + kw), dt)
            gx = gxpad[:, :, :g.hp * g.wp].reshape(n, c, g.hp, g.wp)[:, :, ph:ph + h, pw:pw + wd]
        elif needs_x and phases is not None and any(ph_[4] is None for ph_ in phases):
            gx = np.zeros((n, c, h, wd), dt)  # phases no tap reaches (a 1x1 stride-2 conv's three of four)
        else:
            gx = np.empty((n, c, h, wd), dt) if needs_x else None

        drv = cols_drv = None
        if transposed and (from_gcols or not needs_w) and _compiled_ok(gy, w):
            drv = jit.blas_parallel()
        elif (not transposed and self.x is None and _compiled_ok(gy, w)
              and (not needs_w or self.kept is not None or getattr(self, "src", None) is not None)):
            cols_drv = drv = jit.blas_parallel()  # col2im and the input columns' weight gradient, compiled
        if cols_drv is not None:
            p = g.p
            wide = p <= k or o >= 16
            shape = ((k, o) if wide else (o, k)) if needs_w else (0, 0)
            parts = np.empty((len(pieces),) + shape, dt)
            kept = self.kept if self.kept is not None else np.empty((0, k, p), dt)
            src = self.src if self.src is not None else np.empty((0, 0, 0), dt)
            if needs_x:  # written whole by the compiled loop: no padded planes needed
                gx = np.empty((n, c, h, wd), dt)
            gxd = gx if needs_x else np.empty((0, c, h, wd), dt)
            with jit.serial_scipy_blas():
                drv.backward_cols(src, kept, np.ascontiguousarray(gy), np.ascontiguousarray(w.reshape(o, k)),
                                  gxd, parts, g.flat, kh, kw, sh, sw, g.wp, g.hp, g.ho, g.wo, step, needs_x,
                                  needs_w, wide)
            if needs_w:
                gw_parts = [q.T if wide else q for q in parts]
        elif drv is not None:  # the transposed path as one compiled loop on OpenMP's threads
            gbuf = flat_planes(gy, q, q, kw)
            xb = xbuf if from_gcols else np.empty((n, c, 0), dt)
            parts = np.empty((len(pieces), okk, c), dt) if from_gcols else np.empty((len(pieces), 0, 0), dt)
            pblock = tblocks[0][1] - tblocks[0][0]
            with jit.serial_scipy_blas():
                drv.backward_same(gbuf, wf, np.ascontiguousarray(xb) if from_gcols and not xb.flags.c_contiguous
                                  else xb, gx, parts, kh, kw, wg, h, wd, ph * g.wp + pw, step, pblock, True,
                                  from_gcols)
            if from_gcols:
                gw_parts = list(parts)
        if drv is not None and needs_b:  # the bias gradient as the pieces below sum it
            for i, a, e in pieces:
                gb_parts[i] = _bias_grad(gy[a:e])

        def piece(i, a, e):
            m = e - a
            gp = gy[a:e]
            if needs_b:
                gb_parts[i] = _bias_grad(gp)
            if transposed:
                out = np.empty((m, c, h * wg), dt)
                for p0, p1 in tblocks:
                    gcols = np.empty((m, okk, p1 - p0), dt)
                    gcols.reshape(m, o, kh, kw, p1 - p0)[...] = gwin[a:e, ..., p0:p1]
                    np.matmul(wf, gcols, out=out[:, :, p0:p1])
                    if from_gcols:  # (O*kh*kw, C): rows in flipped kernel order
                        part = _cols_times_t(gcols, xpos[a:e, :, p0:p1])
                        gw_parts[i] = part if p0 == 0 else gw_parts[i] + part
                gx[a:e] = out.reshape(m, c, h, wg)[..., :wd] if wg != wd else out.reshape(m, c, h, wd)
            elif needs_x and (sh > 1 or sw > 1):
                self._phase_grad(gp, phases, gx[a:e])
            elif needs_x:
                self._col2im_grad(gp, w, gxpad[a:e])
            if needs_w and not from_gcols:
                gw_parts[i] = self._input_cols_weight_grad(a, e, gp)

        if drv is None:
            parallel_for(piece, pieces)
        gw = None
        if needs_w:
            gw = _sum_in_order(gw_parts)
            if from_gcols:
                gw = gw.reshape(o, kh, kw, c)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)
            gw = np.ascontiguousarray(gw.reshape(w.shape))
        gb = _sum_in_order(gb_parts) if needs_b else None
        return gx, gw, gb

    def _col2im_grad(self, gp: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
        """Input gradient of a piece of a stride-1 conv: columns (Wᵀ @ g) scattered back into ``out``.

        ``out`` is the piece's (m, C, Hp*Wp + kw) padded planes; the caller returns a view of their
        interior (no copy, as for pad 0 the planes are the gradient itself).
        """
        g = self.geo
        m = gp.shape[0]
        gpad = np.zeros((m, g.o, g.ho, g.wp), gp.dtype)
        gpad[..., :g.wo] = gp
        gcols = np.matmul(w.reshape(g.o, -1).T, gpad.reshape(m, g.o, g.ho * g.wp))
        col2im_flat(gcols, (m, g.c, g.hp, g.wp), g.kh, g.kw, g.ho, out)

    def _phases(self, w: np.ndarray) -> list:
        """``(a, b, taps in rows, taps in columns, sub-kernel (C, O*taps) in window order)`` per input phase."""
        g = self.geo
        (sh, sw), (ph, pw) = self.stride, self.padding
        phases = []
        for a in range(min(sh, g.h)):
            ti = [ki for ki in range(g.kh) if (a + ph - ki) % sh == 0]
            for b in range(min(sw, g.w)):
                tj = [kj for kj in range(g.kw) if (b + pw - kj) % sw == 0]
                sub = None
                if ti and tj:  # window row r reads gy row t + min(d) + r: the taps in reverse order
                    sub = w[:, :, ti[::-1]][:, :, :, tj[::-1]]
                    sub = np.ascontiguousarray(sub.transpose(1, 0, 2, 3)).reshape(g.c, -1)
                phases.append((a, b, ti, tj, sub))
        return phases

    def _phase_grad(self, gp: np.ndarray, phases: list, out: np.ndarray) -> None:
        """Input gradient of a piece of a strided conv, one input phase at a time (no col2im scatter).

        The input positions (a + sh*t, b + sw*u) of phase (a, b) receive gradient only from the
        kernel taps ki ≡ a + ph (mod sh), kj ≡ b + pw (mod sw), each from the output gradient at
        (t + d_i, u + d_j), d = (a + ph - ki) // sh: a stride-1 correlation of gy with that
        sub-kernel. Each phase is one im2col from a flat plane of gy and one GEMM, written straight
        to its strided slice of the input gradient.
        """
        g = self.geo
        (sh, sw), (ph, pw) = self.stride, self.padding
        m, c, o = gp.shape[0], g.c, g.o
        di_all = [(a + ph - ki) // sh for a, _, ti, _, _ in phases for ki in ti] or [0]
        dj_all = [(b + pw - kj) // sw for _, b, _, tj, _ in phases for kj in tj] or [0]
        top, left = max(0, -min(di_all)), max(0, -min(dj_all))
        bottom = max(0, -(-g.h // sh) - 1 + max(di_all) - (g.ho - 1))
        right = max(0, -(-g.w // sw) - 1 + max(dj_all) - (g.wo - 1))
        hg, wg = g.ho + top + bottom, g.wo + left + right
        gpad = np.zeros((m, o, hg * wg + wg + g.kw), gp.dtype)  # spare: the last window's junk run
        gpad[:, :, :hg * wg].reshape(m, o, hg, wg)[:, :, top:top + g.ho, left:left + g.wo] = gp
        st = gpad.strides
        for a, b, ti, tj, sub in phases:
            dst = out[:, :, a::sh, b::sw]
            if sub is None:  # zeroed by the caller
                continue
            rows, ncols = dst.shape[2], dst.shape[3]
            r0 = min((a + ph - ki) // sh for ki in ti) + top
            c0 = min((b + pw - kj) // sw for kj in tj) + left
            base = r0 * wg + c0
            view = as_strided(gpad[:, :, base:], (m, o, len(ti), len(tj), rows * wg),
                              (st[0], st[1], wg * st[2], st[2], st[2]), writeable=False)
            cols = np.empty((m, o * len(ti) * len(tj), rows * wg), gp.dtype)
            cols.reshape(view.shape)[...] = view
            dst[...] = np.matmul(sub, cols).reshape(m, c, rows, wg)[..., :ncols]

    def _input_cols_weight_grad(self, a: int, e: int, gp: np.ndarray) -> np.ndarray:
        """A piece's weight gradient (O, K) from its input columns (kept, the input itself, or rebuilt)."""
        g = self.geo
        m, k = e - a, g.c * g.kh * g.kw
        if g.flat and g.wq != g.wo:  # zeros at the junk columns
            gpad = np.zeros((m, g.o, g.ho, g.wq), gp.dtype)
            gpad[..., :g.wo] = gp
            gpos = gpad.reshape(m, g.o, g.p)
        else:
            gpos = gp.reshape(m, g.o, g.p)
        if self.kept is not None:
            return _weight_grad(self.kept[a:e], gpos)
        if self.x is not None:  # a 1x1 conv: the input itself
            return _weight_grad(self.x[a:e].reshape(m, g.c, g.p), gpos)
        acc = None
        for p0, p1 in _blocks(g.o, k, g.p, gp.dtype.itemsize, 1 if g.flat else g.wo):
            cols = self._fill(np.empty((m, k, p1 - p0), gp.dtype), self.wins, a, e, g, p0, p1)
            part = _weight_grad(cols, gpos[:, :, p0:p1])
            acc = part if acc is None else acc + part
        return acc
