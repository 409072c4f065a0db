"""The numba kernels' pieces run on numba's OpenMP threads: one compiled call per op (see :func:`.jit.parallel`).

Each driver cuts its arrays into the same fixed pieces as the intra-op pool
would (sizes from the data only, never from the thread count), runs
:mod:`._numba_kernels`' kernel on each piece in a ``prange`` loop, and
returns per-piece partial results that the caller combines in piece order:
results are bitwise the same with 1 or N threads.

Why not the intra-op pool: on a virtual machine that halts idle cores
(Firecracker, ``haltpoll.guest_halt_poll_ns=0``) every hand-over between
Python threads (waking a worker, passing the GIL back and forth around each
numpy call, waiting for the last piece) costs 20-50 µs, and a pooled 1 MB
ufunc or batch-norm pass ran *slower* on two threads than on one (a 1 MB
multiply in 4 pieces: 53 µs on one thread, 148 µs on two). OpenMP's threads
wait for the next region by spinning for a moment (GNU OpenMP's default) and
need no GIL: the same batch-norm affine pass over 1 MB took 18.5 µs on two
threads against 54 µs on one. The convolutions and large products run on the
same threads (:mod:`._numba_blas`), so that no other pool's threads compete
with OpenMP's spinning ones for the cores.

For developers: numba's on-disk cache (``cache=True``) checks only the file of the function it caches.
After editing :mod:`._numba_kernels`, the cached drivers here still hold the old kernels until their own
file changes: delete the ``.nbi``/``.nbc`` files under ``trainkit/autograd/ops/__pycache__`` (or run with
``NUMBA_CACHE_DIR`` pointing at a fresh directory). An install rewrites every file, so users are not affected.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from . import _numba_kernels as K


@nb.njit(nogil=True, cache=True)
def _bounds(t, piece, n):
    a = t * piece
    return a, min(n, a + piece)


@nb.njit(nogil=True, parallel=True, cache=True)
def relu_forward(x, y, piece):
    """y = max(x, 0) over flat arrays, in pieces of ``piece`` elements."""
    n = x.size
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.relu_forward(x[a:e], y[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def relu_backward(gy, y, gx, piece):
    """:func:`._numba_kernels.relu_backward` over flat arrays, in pieces."""
    n = gy.size
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.relu_backward(gy[a:e], y[a:e], gx[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def maxpool2x2_forward(x, y, piece):
    """:func:`._numba_kernels.maxpool2x2_forward` in pieces of ``piece`` images."""
    n = x.shape[0]
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.maxpool2x2_forward(x[a:e], y[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def maxpool2x2_backward(x, gy, gx, piece):
    """:func:`._numba_kernels.maxpool2x2_backward` in pieces of ``piece`` images."""
    n = x.shape[0]
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.maxpool2x2_backward(x[a:e], gy[a:e], gx[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def moments(x3, piece):
    """Per-piece per-channel mean and centred sum of squares of (N, C, S): two (pieces, C) float64 arrays."""
    n, c = x3.shape[0], x3.shape[1]
    npieces = (n + piece - 1) // piece
    means = np.empty((npieces, c))
    m2s = np.empty((npieces, c))
    for t in nb.prange(npieces):
        a, e = _bounds(t, piece, n)
        mu, m2 = K.moments(x3[a:e])
        means[t] = mu
        m2s[t] = m2
    return means, m2s


@nb.njit(nogil=True, parallel=True, cache=True)
def affine(x3, scale, shift, y, piece):
    """:func:`._numba_kernels.affine` in pieces of ``piece`` images."""
    n = x3.shape[0]
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.affine(x3[a:e], scale, shift, y[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def grad_sums(x3, g3, mean, piece):
    """Per-piece per-channel sums of g and g * (x - mean): two (pieces, C) float64 arrays."""
    n, c = x3.shape[0], x3.shape[1]
    npieces = (n + piece - 1) // piece
    s1 = np.empty((npieces, c))
    s2 = np.empty((npieces, c))
    for t in nb.prange(npieces):
        a, e = _bounds(t, piece, n)
        p1, p2 = K.grad_sums(x3[a:e], g3[a:e], mean)
        s1[t] = p1
        s2[t] = p2
    return s1, s2


@nb.njit(nogil=True, parallel=True, cache=True)
def grad_input(x3, g3, mean, ca, cb, cc, gx, piece):
    """:func:`._numba_kernels.grad_input` in pieces of ``piece`` images."""
    n = x3.shape[0]
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.grad_input(x3[a:e], g3[a:e], mean, ca, cb, cc, gx[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def sgd_momentum_step(p, g, buf, lr, momentum, keep, weight_decay, has_wd, has_damp, nesterov, piece):
    """:func:`._numba_kernels.sgd_momentum_step` over flat arrays, in pieces."""
    n = p.size
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.sgd_momentum_step(p[a:e], g[a:e], buf[a:e], lr, momentum, keep, weight_decay, has_wd, has_damp,
                            nesterov)


@nb.njit(nogil=True, parallel=True, cache=True)
def gelu_forward(x, y, cdf, piece):
    """:func:`._numba_kernels.gelu_forward` over flat float32 arrays, in pieces."""
    n = x.size
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.gelu_forward(x[a:e], y[a:e], cdf[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def layer_norm_forward(x, w, b, eps, xhat, y, invstd, piece):
    """:func:`._numba_kernels.layer_norm_forward` in pieces of ``piece`` rows."""
    n = x.shape[0]
    for t in nb.prange((n + piece - 1) // piece):
        a, e = _bounds(t, piece, n)
        K.layer_norm_forward(x[a:e], w, b, eps, xhat[a:e], y[a:e], invstd[a:e])


@nb.njit(nogil=True, parallel=True, cache=True)
def layer_norm_backward(gy, xhat, w, invstd, gx, piece):
    """:func:`._numba_kernels.layer_norm_backward` in pieces of ``piece`` rows; per-piece float64 sums for the
    weight and bias gradients, two (pieces, N) arrays."""
    n, c = gy.shape
    npieces = (n + piece - 1) // piece
    gw = np.zeros((npieces, c))
    gb = np.zeros((npieces, c))
    for t in nb.prange(npieces):
        a, e = _bounds(t, piece, n)
        K.layer_norm_backward(gy[a:e], xhat[a:e], w, invstd[a:e], gx[a:e], gw[t], gb[t])
    return gw, gb
