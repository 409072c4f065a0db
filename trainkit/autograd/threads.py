"""Intra-op threads: a small pool that runs the pieces of one kernel on several cores.

(With numba's OpenMP layer available, the hot kernels run their pieces as compiled loops on OpenMP's
threads instead, see :func:`trainkit.autograd.ops.jit.parallel`; this pool is their fallback and runs
the rest.)

numpy releases the GIL inside its array loops and BLAS calls, so Python
threads that each run large numpy calls on their own slice of an array use
several cores at once. The conv, pooling and batch-norm kernels split their
work into pieces (a few images each) and hand them to :func:`parallel_for`;
the calling thread works too, and the pieces are claimed dynamically, so a
worker that the scheduler keeps off the CPU on a busy machine delays the op by
at most the piece it is running.

Piece boundaries depend only on the sizes of the data, never on the number of
threads, and partial results (weight gradients, batch-norm sums) are combined
in piece order: a kernel gives bitwise the same result with 1 or N threads.

:func:`set_num_threads` mirrors ``torch.set_num_threads``: it sets trainkit's
pool and numpy's OpenBLAS (found among the loaded libraries; other BLAS
builds are left as they are). The default is the BLAS thread count numpy
started with (so ``OPENBLAS_NUM_THREADS=1`` also keeps trainkit on one
core), or ``TRAINKIT_NUM_THREADS`` when set. While pieces run in parallel,
OpenBLAS is switched to one thread, so that two pieces' GEMMs do not both
try to use every core.
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import queue
import threading

import numpy as np

__all__ = ["set_num_threads", "get_num_threads", "parallel_for", "split", "matmul", "blas_info"]

# --------------------------------------------------------------------------- numpy's OpenBLAS
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")
_CORES = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
          "openblas_get_corename64_", "openblas_get_corename")


class _Blas:
    """numpy's OpenBLAS thread controls, or nothing when numpy uses another BLAS. ``exclude``: library
    paths to pass over (another loaded OpenBLAS is then found: SciPy's, for the compiled loops)."""

    def __init__(self, exclude=()):
        self.set = self.get = None
        self.name = self.path = None
        import numpy  # noqa: F401  (loads the BLAS library before /proc/self/maps is read)
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
        except OSError:  # not Linux: leave the BLAS as it is
            return
        for path in paths:
            if path in exclude:
                continue
            try:
                lib = ctypes.PyDLL(path)  # calls keep the GIL: no hand-over to a waiting thread per call
            except OSError:
                continue
            setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
            getter = next((getattr(lib, s) for s in _GETTERS if hasattr(lib, s)), None)
            if setter is None or getter is None:
                continue
            setter.argtypes, setter.restype = (ctypes.c_int,), None
            getter.argtypes, getter.restype = (), ctypes.c_int
            self.set, self.get, self.path = setter, getter, path
            core = next((getattr(lib, s) for s in _CORES if hasattr(lib, s)), None)
            kernel = ""
            if core is not None:
                core.restype = ctypes.c_char_p
                kernel = f" ({core().decode(errors='replace')})"
            self.name = f"OpenBLAS {os.path.basename(path)}{kernel}"
            return


_blas = _Blas()


def blas_info() -> str | None:
    """numpy's BLAS as trainkit controls it: library, kernel and threads (None when not OpenBLAS)."""
    if _blas.get is None:
        return None
    return f"{_blas.name}, {_blas.get()} threads"


# --------------------------------------------------------------------------- the pool
def _default_threads() -> int:
    env = os.environ.get("TRAINKIT_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    if _blas.get is not None:
        return max(1, _blas.get())
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_num_threads = _default_threads()
_blas_threads = _blas.get() if _blas.get is not None else None
_workers: list = []
_local = threading.local()  # .busy: this thread is running a piece (nested calls run serially)


class _Job:
    """One parallel_for call: its pieces, a claim counter and a completion count."""

    __slots__ = ("fn", "pieces", "claim", "left", "lock", "done", "error")

    def __init__(self, fn, pieces):
        self.fn, self.pieces = fn, pieces
        self.claim = itertools.count()  # next() is atomic under the GIL
        self.left = len(pieces)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error = None

    def drain(self):
        """Run pieces until none is left to claim."""
        n = len(self.pieces)
        while True:
            i = next(self.claim)
            if i >= n:
                return
            try:
                self.fn(*self.pieces[i])
            except BaseException as e:  # re-raised by the caller of parallel_for
                self.error = e
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


def _forget_workers():
    """In a forked child: the parent's worker threads do not exist there; start new ones on demand."""
    _workers.clear()
    _local.busy = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _worker(q):
    _local.busy = True
    while True:
        job = q.get()
        if job is None:
            return
        job.drain()


def _ensure_workers(n: int) -> None:
    while len(_workers) < n:
        q = queue.SimpleQueue()
        t = threading.Thread(target=_worker, args=(q,), name=f"trainkit-intraop-{len(_workers)}", daemon=True)
        t.start()
        _workers.append(q)


def set_num_threads(n: int) -> None:
    """Threads for trainkit's kernels and numpy's OpenBLAS (as ``torch.set_num_threads``)."""
    global _num_threads, _blas_threads
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n}")
    _num_threads = n
    if _blas.set is not None:
        _blas.set(n)
        _blas_threads = n


def get_num_threads() -> int:
    """The number of threads trainkit's kernels use (as ``torch.get_num_threads``)."""
    return _num_threads


def split(n: int, size: int) -> list:
    """``range(n)`` cut into ``(start, stop)`` pieces of ``size`` (the last may be shorter)."""
    size = max(1, int(size))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


@contextlib.contextmanager
def serial_blas():
    """numpy's BLAS on the calling thread only, for a block that makes one small product after another
    (a recurrent layer's time steps): no worker is woken for each of them."""
    one = _blas.set is not None and _blas_threads not in (None, 1) and not getattr(_local, "busy", False)
    if one:
        _blas.set(1)
    try:
        yield
    finally:
        if one:
            _blas.set(_blas_threads)


def parallel_for(fn, pieces) -> None:
    """Call ``fn(*piece)`` for every piece, on up to :func:`get_num_threads` threads.

    Pieces are claimed in order by whichever thread is free (the caller
    included); returns when all have run and re-raises the last exception one
    raised. ``fn`` must write only to its own piece of any shared output.
    Nested calls, one thread, or a single piece run serially in the caller.
    """
    nthreads = min(_num_threads, len(pieces))
    if nthreads <= 1 or getattr(_local, "busy", False):
        for p in pieces:
            fn(*p)
        return
    _ensure_workers(nthreads - 1)
    job = _Job(fn, pieces)
    with serial_blas():  # each piece's GEMMs on its own thread's core
        _local.busy = True
        try:
            for q in _workers[:nthreads - 1]:
                q.put(job)
            job.drain()
            job.done.wait()
        finally:
            _local.busy = False
    if job.error is not None:
        raise job.error


#: Products with at least this many multiply-adds are cut into blocks run on the pool (with more than
#: one thread). OpenBLAS would thread them itself from 2^18 on, but its idle workers then spin for a
#: while after each call, competing with the pool's threads for the cores: with LeNet at 2 threads,
#: OpenBLAS's worker burned as much CPU as the main thread and the pool's worker got a fifth of it.
GEMM_SPLIT_MIN = 1 << 18


def _short_spin() -> bool:
    """Whether OpenBLAS's idle workers sleep soon after a call (OPENBLAS_THREAD_TIMEOUT at most 16, as
    :mod:`trainkit.blasenv` sets it before numpy loads); then products are left to OpenBLAS's threads."""
    for key in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"):
        value = os.environ.get(key)
        if value:
            try:
                return max(4, int(value)) <= 16
            except ValueError:
                return False
    return False


_SHORT_SPIN = _blas.set is not None and _short_spin()


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays; with several threads, large products cut into one block per thread
    unless OpenBLAS threads them itself without spinning (:mod:`trainkit.blasenv`).

    The blocks run along the output's longer side, which repacks the smaller operand once per
    block. With one thread this is ``np.matmul`` itself (a fixed cut into four blocks measured 10%
    slower on the MLP's 128 x 3072 x 512 product), so unlike the conv and batch-norm kernels, a
    large product's last bits may differ between 1 and N threads (OpenBLAS picks its kernel by
    shape).
    """
    if a.ndim != 2 or b.ndim != 2 or _num_threads <= 1 or _SHORT_SPIN:
        return np.matmul(a, b)
    m, k = a.shape
    n = b.shape[1]
    if m * n * k < GEMM_SPLIT_MIN:
        return np.matmul(a, b)
    out = np.empty((m, n), np.result_type(a, b))
    rows = m >= n
    size = -(-(m if rows else n) // _num_threads)
    size = -(-size // 16) * 16  # whole SIMD tiles per block

    def piece(i0, i1):
        if rows:
            np.matmul(a[i0:i1], b, out=out[i0:i1])
        else:
            np.matmul(a, b[:, i0:i1], out=out[:, i0:i1])

    parallel_for(piece, split(m if rows else n, size))
    return out


#: Elementwise operations on arrays smaller than this run on the calling thread only.
ELEMENTWISE_MIN_BYTES = 1 << 18

#: Bytes of the first operand per piece of a split elementwise operation.
ELEMENTWISE_PIECE_BYTES = 1 << 18


def elementwise(ufunc, a: np.ndarray, b=None, out: np.ndarray | None = None) -> np.ndarray:
    """``ufunc(a[, b], out=out)`` with large operands cut into pieces on the intra-op threads.

    ``b`` may be a scalar or an array of ``a``'s shape, ``out`` an array of that shape (it may be
    ``a`` or ``b``: each piece reads and writes the same positions); anything else (broadcasting,
    strided operands, one thread, small arrays) is a plain ufunc call. Elementwise results do not
    depend on how the array is cut.
    """
    args = (a,) if b is None else (a, b)
    barr = isinstance(b, np.ndarray) and b.ndim > 0
    if (_num_threads <= 1 or a.nbytes < ELEMENTWISE_MIN_BYTES or not a.flags.c_contiguous
            or (barr and (b.shape != a.shape or not b.flags.c_contiguous))
            or (out is not None and (out.shape != a.shape or not out.flags.c_contiguous))):
        return ufunc(*args) if out is None else ufunc(*args, out=out)
    fa = a.reshape(-1)
    fb = b.reshape(-1) if barr else b
    if out is None:
        probe = ufunc(fa[:1]) if b is None else ufunc(fa[:1], fb[:1] if barr else fb)
        out = np.empty(a.shape, probe.dtype)
    fo = out.reshape(-1)

    def piece(i0, i1):
        if b is None:
            ufunc(fa[i0:i1], out=fo[i0:i1])
        else:
            ufunc(fa[i0:i1], fb[i0:i1] if barr else fb, out=fo[i0:i1])

    parallel_for(piece, split(fa.size, max(1, ELEMENTWISE_PIECE_BYTES // a.itemsize)))
    return out
