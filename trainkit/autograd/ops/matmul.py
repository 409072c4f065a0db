"""Matrix products: ``@`` with batch broadcasting, and the fused ``linear``."""
from __future__ import annotations

import numpy as np

from ..function import Op, sum_to
from ..tensor import Tensor
from .. import threads
from . import jit

#: Products with at least this many multiply-adds and rows for ROWS_PER_THREAD per thread go to the
#: compiled row blocks on OpenMP's threads (see :func:`gemm`).
GEMM_MIN = 1 << 18
ROWS_PER_THREAD = 32
#: A transposed left operand up to this size is copied contiguous for row blocks (the MLP's gyᵀ, 256 KB);
#: a larger one is cut along the reduction instead (a ViT's gyᵀ over 4,160 tokens: a transposing copy of
#: its 8.5 MB made the weight gradient 2-6x slower than the product itself).
TRANSPOSE_COPY_MAX_BYTES = 1 << 20


def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays.

    With the compiled kernels (:func:`.jit.blas_parallel`) and several threads, a large product is cut
    into one block of rows per thread, each multiplied on one of OpenMP's threads: OpenBLAS's own
    worker threads would otherwise compete for the cores with OpenMP's, which spin for a moment after
    each batch-norm, ReLU or optimizer pass (the MLP's step ran 2x slower at 2 threads than at 1 when
    the scheduler put both on one core). Otherwise :func:`trainkit.autograd.threads.matmul`.
    """
    m, k = a.shape
    n = b.shape[1]
    nt = threads.get_num_threads()
    if (nt > 1 and m * n * k >= GEMM_MIN and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and (a.flags.c_contiguous or a.flags.f_contiguous) and (b.flags.c_contiguous or b.flags.f_contiguous)):
        drv = jit.blas_parallel()
        if drv is not None:
            if not a.flags.c_contiguous and k >= ROWS_PER_THREAD * nt and a.nbytes > TRANSPOSE_COPY_MAX_BYTES:
                # a large transposed ``a`` (gyᵀ of a weight gradient over many rows): blocks along the
                # reduction, whose columns of ``a`` are contiguous, summed in block order (a transposing
                # copy for row blocks ran 2-6x slower than the product)
                size = -(-(-(-k // nt)) // 16) * 16
                parts = np.empty((-(-k // size), m, n), a.dtype)
                with jit.serial_scipy_blas():
                    drv.gemm_k(a.T, b if b.flags.c_contiguous else np.ascontiguousarray(b), parts, size)
                out = parts[0]
                for p in parts[1:]:
                    out += p
                return out
            if m >= ROWS_PER_THREAD * nt:
                a = np.ascontiguousarray(a)  # a small transposed ``a``: copied
                out = np.empty((m, n), a.dtype)
                size = -(-m // nt)
                with jit.serial_scipy_blas():
                    drv.gemm_rows(a, b, out, -(-size // 16) * 16)
                return out
    return threads.matmul(a, b)


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
        y = gemm(x.reshape(-1, x.shape[-1]), w.T).reshape(x.shape[:-1] + (w.shape[0],))
        if b is not None:
            y += b
        return y

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
