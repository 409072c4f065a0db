"""Optional numba kernels for the memory-bound passes numpy cannot do in one sweep.

numpy needs several passes (and temporaries) for batch norm's statistics and
its affine step, and for the 2x2 max-pool gradient with PyTorch's tie rule;
a compiled loop does each in one pass over memory. When numba is installed
(``pip install trainkit[fast]``) the ops use :func:`kernels`; otherwise, or
with ``TRAINKIT_NUMBA=0``, they run their numpy code, which gives the same
results (the tests check both against each other).

numba is imported on the first use of a kernel, not with trainkit, so the CLI
starts as fast without it; the kernels are compiled once per dtype and cached
on disk (numba's ``cache=True``).
"""
from __future__ import annotations

import contextlib
import os

from .. import threads as _threads

_kernels = None
_tried = False
_enabled = os.environ.get("TRAINKIT_NUMBA", "1") != "0"

#: Run the kernels' pieces on numba's OpenMP threads (:mod:`._numba_par`) rather than on the intra-op
#: pool; ``TRAINKIT_NUMBA_PARALLEL=0`` keeps the pool (for A/B measurements and tests).
PARALLEL = os.environ.get("TRAINKIT_NUMBA_PARALLEL", "1") != "0"
_par = None
_par_tried = False
_launched = False  # a driver ran in this process: OpenMP's threads exist
_forked = False  # this process was forked from one whose OpenMP threads existed: GNU OpenMP would abort


#: The dtypes the compiled kernels take (numba has no float16 arrays; integers go to numpy).
DTYPES = ("float32", "float64")


def kernels(dtype=None):
    """The compiled kernel module, or None when numba is missing or disabled, or ``dtype`` (when given) is
    not one the kernels take (:data:`DTYPES`)."""
    global _kernels, _tried
    if not _enabled or (dtype is not None and str(dtype) not in DTYPES):
        return None
    if not _tried:
        _tried = True
        try:
            from . import _numba_kernels
            _kernels = _numba_kernels
        except ImportError:
            _kernels = None
    return _kernels


def _load_parallel():
    """:mod:`._numba_par`, when numba has its OpenMP threading layer (workqueue, the fallback, makes its
    workers sleep between regions and measured slower than the intra-op pool); else None."""
    if kernels() is None:
        return None
    try:
        import numba
        from numba.np.ufunc import omppool  # noqa: F401  (ImportError without an OpenMP runtime)
    except ImportError:
        return None
    layer = str(numba.config.THREADING_LAYER)
    if layer not in ("default", "omp"):
        return None  # the user asked numba for another layer
    from numba.np.ufunc import parallel as _npar
    if getattr(_npar, "_is_initialized", False):  # somebody launched numba's threads already
        if numba.threading_layer() != "omp":
            return None
    else:
        numba.config.THREADING_LAYER = "omp"
    from . import _numba_par
    return _numba_par


def parallel(dtype=None):
    """The OpenMP drivers of the kernels (:mod:`._numba_par`), or None: then ops run the kernels' pieces
    on the intra-op pool (or serially).

    None when numba or its OpenMP layer is missing, for a ``dtype`` the kernels do not take, when
    disabled (``PARALLEL``), in a process forked
    after OpenMP's threads started (GNU OpenMP is not fork-safe), and inside a piece already running on
    the intra-op pool. numba's thread count follows :func:`trainkit.set_num_threads`.
    """
    global _par, _par_tried, _launched
    if not (_enabled and PARALLEL) or _forked or (dtype is not None and str(dtype) not in DTYPES):
        return None
    if not _par_tried:
        _par_tried = True
        _par = _load_parallel()
    if _par is None:
        return None
    if getattr(_threads._local, "busy", False):
        return None
    numba = _par.nb
    want = max(1, min(_threads._num_threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != want:  # numba's count is per calling thread
        numba.set_num_threads(want)
    _launched = True
    return _par


_conv = None
_conv_tried = False
_sp_set = _sp_get = None  # SciPy's OpenBLAS thread controls (numba's np.dot calls SciPy's BLAS)


def _load_conv():
    """:mod:`._numba_blas` when SciPy's BLAS (which numba's ``np.dot`` calls) can be found; else None."""
    global _sp_set, _sp_get
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return None
    scipy_blas = _threads._Blas(exclude={_threads._blas.path})  # the other OpenBLAS loaded: SciPy's
    _sp_set, _sp_get = scipy_blas.set, scipy_blas.get
    from . import _numba_blas
    return _numba_blas


def blas_parallel():
    """The compiled convolution passes (:mod:`._numba_blas`) when :func:`parallel` is available and SciPy
    provides the BLAS numba calls; else None (the ops then run their numpy pieces on the intra-op pool)."""
    global _conv, _conv_tried
    if parallel() is None:
        return None
    if not _conv_tried:
        _conv_tried = True
        _conv = _load_conv()
    return _conv


@contextlib.contextmanager
def serial_scipy_blas():
    """SciPy's BLAS on one thread while a compiled loop's OpenMP threads each make their own products."""
    prev = _sp_get() if _sp_get is not None else 1
    if prev != 1:
        _sp_set(1)
    try:
        yield
    finally:
        if prev != 1:
            _sp_set(prev)


def _after_fork_in_child():
    global _forked
    if _launched:
        _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_parallel(flag: bool) -> bool:
    """Use the OpenMP drivers when available (True) or the intra-op pool (False); returns the previous
    setting. For tests and A/B measurements; ``TRAINKIT_NUMBA_PARALLEL=0`` sets False at import."""
    global PARALLEL
    prev, PARALLEL = PARALLEL, bool(flag)
    return prev


def set_enabled(flag: bool) -> bool:
    """Use the numba kernels when installed (True) or the numpy code (False); returns the previous setting.

    For tests and A/B measurements; ``TRAINKIT_NUMBA=0`` sets False at import.
    """
    global _enabled
    prev, _enabled = _enabled, bool(flag)
    return prev
