"""Matrix products: ``@`` with batch broadcasting, and the fused ``linear``."""
from __future__ import annotations

import numpy as np

from ..function import Op, sum_to
from ..tensor import Tensor
from .. import threads
from . import jit

#: Products with at least this many multiply-adds go to the compiled blocks on OpenMP's threads (see
#: :func:`gemm`): row blocks when the product has ROWS_PER_THREAD rows per thread and no more columns than
#: rows, else column blocks of at least 16 columns per thread.
GEMM_MIN = 1 << 18
ROWS_PER_THREAD = 32
#: A transposed left operand larger than this, over a reduction long enough for every thread, is cut along
#: the reduction instead (a ViT's gyᵀ over 4,160 tokens: a transposing copy of its 8.5 MB for row blocks
#: made the weight gradient 2-6x slower than the product itself).
TRANSPOSE_COPY_MAX_BYTES = 1 << 20
#: Products of at most SWAP_MAX_ROWS rows over a reduction of at least SWAP_MIN_K run with BLAS's roles
#: swapped (:func:`._numba_blas.gemm_t`), on any thread count. Swept at 2 threads over 36 shapes x @ Wᵀ
#: (rows 64-512, columns 256-1024, reduction 256-3072) against column blocks: 0.84-0.98 of the time for
#: rows <= 128 and reduction >= 1024 (the MLP's first layer 0.92), 1.03-1.30 for 256 rows and more.
SWAP_MAX_ROWS = 128
SWAP_MIN_K = 1024
_N, _T = ord("n"), ord("t")  # BLAS's transpose flags


def _operand(x: np.ndarray):
    """A C- or F-contiguous 2-D array as BLAS takes it: (flat view, C-contiguous?, leading dimension)."""
    c = bool(x.flags.c_contiguous)
    return x.ravel(order="C" if c else "F"), c, (x.shape[1] if c else x.shape[0])


def _compiled_gemm(a: np.ndarray, b: np.ndarray, bias):
    """(``a @ b``, whether ``bias`` was added) by the compiled blocks (:mod:`._numba_blas`); None where they
    do not apply. Only the swapped roles add the bias, in their store (after the product, as ``y += b``)."""
    m, k = a.shape
    n = b.shape[1]
    if (m * n * k < GEMM_MIN or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or not (a.flags.c_contiguous or a.flags.f_contiguous) or not (b.flags.c_contiguous or b.flags.f_contiguous)):
        return None
    nt = threads.get_num_threads()
    swap = m <= SWAP_MAX_ROWS and k >= SWAP_MIN_K
    if not swap and nt == 1:
        return None
    drv = jit.blas_parallel()
    if drv is None:
        return None
    if not swap and not a.flags.c_contiguous and k >= ROWS_PER_THREAD * nt and a.nbytes > TRANSPOSE_COPY_MAX_BYTES:
        # a large transposed ``a`` (gyᵀ of a weight gradient over many rows): blocks along the reduction,
        # whose columns of ``a`` are contiguous, summed in block order
        size = -(-(-(-k // nt)) // 16) * 16
        parts = np.empty((-(-k // size), m, n), a.dtype)
        with jit.serial_scipy_blas():
            drv.gemm_k(a.T, b if b.flags.c_contiguous else np.ascontiguousarray(b), parts, size)
        out = parts[0]
        for p in parts[1:]:
            out += p
        return out, False
    row_blocks = m >= ROWS_PER_THREAD * nt and n <= m
    if not swap and not row_blocks and n < 16 * nt:
        return None
    cols = -(-n // (16 * nt)) * 16  # a thread's columns, whole cache lines
    fa, ca, lda = _operand(a)
    fb, cb, ldb = _operand(b)
    kind = ord("s") if a.dtype == np.float32 else ord("d")
    out = np.empty((m, n), a.dtype)
    with jit.serial_scipy_blas():
        if swap:
            fused = bias is not None and bias.dtype == a.dtype and bias.shape == (n,)
            drv.gemm_t(kind, _T if ca else _N, _T if cb else _N, m, n, k, fa, lda, fb, ldb, out, cols,
                       np.ascontiguousarray(bias) if fused else np.empty(0, a.dtype))
            return out, fused
        # BLAS's column-major view of ``out`` is outᵀ = bᵀ aᵀ: out's columns are its rows
        drv.gemm_blocks(kind, _N if cb else _T, _N if ca else _T, n, m, k, fb, ldb, fa, lda, out.reshape(-1),
                        n if row_blocks else cols, -(-m // nt) if row_blocks else m)
    return out, False


def gemm(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays, plus ``bias`` (broadcast over the rows) when given.

    With the compiled kernels (:func:`.jit.blas_parallel`), a large product is cut into blocks of rows or
    columns, one per thread, each multiplied by one BLAS call on one of OpenMP's threads: OpenBLAS's own
    worker threads would otherwise compete for the cores with OpenMP's, which spin for a moment after each
    batch-norm, ReLU or optimizer pass (the MLP's step ran 2x slower at 2 threads than at 1 when the
    scheduler put both on one core). A product of few rows over a long reduction runs with BLAS's roles
    swapped on any thread count (:data:`SWAP_MAX_ROWS`). Otherwise
    :func:`trainkit.autograd.threads.matmul`.
    """
    done = _compiled_gemm(a, b, bias)
    out, added = done if done is not None else (threads.matmul(a, b), False)
    if bias is not None and not added:
        out += bias
    return out


class MatMul(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, gy):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = gy
        if a.ndim == 1 and b.ndim == 1:  # a dot product: gy is 0-d, and expand_dims(-2) would fail
            g2 = np.reshape(gy, (1, 1))
        elif a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        elif b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if self.needs[0]:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            ga = sum_to(ga, a2.shape).reshape(a.shape)
        if self.needs[1]:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            gb = sum_to(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    from .elementwise import promote
    a, b = promote(a, b)
    return MatMul.apply(a, b)


class Linear(Op):
    """y = x Wᵀ + b in one node (one GEMM forward, two backward)."""

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        return gemm(x.reshape(-1, x.shape[-1]), w.T, b).reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, gy):
        x, w = self.x, self.w
        gx = gw = gb = None
        if self.needs[0]:
            gx = gemm(gy.reshape(-1, gy.shape[-1]), w).reshape(x.shape)
        if self.needs[1]:
            gw = gemm(gy.reshape(-1, gy.shape[-1]).T, x.reshape(-1, x.shape[-1]))
        if len(self.needs) > 2 and self.needs[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """``input @ weight.T + bias`` (PyTorch's ``F.linear``).

    Input with several leading dimensions (a sequence model's ``(N, L, E)``) is run as one
    2-D GEMM over all rows: numpy would otherwise loop over the leading dimensions with
    one small GEMM each (measured 1.6x slower for a transformer's ``(12, 64, 128)``).
    """
    lead = input.shape[:-1]
    if len(lead) > 1:
        flat = input.reshape((-1, input.shape[-1]))
        return linear(flat, weight, bias).reshape(tuple(lead) + (weight.shape[0],))
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)
