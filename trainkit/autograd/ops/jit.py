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

import os

_kernels = None
_tried = False
_enabled = os.environ.get("TRAINKIT_NUMBA", "1") != "0"


def kernels():
    """The compiled kernel module, or None when numba is missing or disabled."""
    global _kernels, _tried
    if not _enabled:
        return None
    if not _tried:
        _tried = True
        try:
            from . import _numba_kernels
            _kernels = _numba_kernels
        except ImportError:
            _kernels = None
    return _kernels


def set_enabled(flag: bool) -> bool:
    """Use the numba kernels when installed (True) or the numpy code (False); returns the previous setting.

    For tests and A/B measurements; ``TRAINKIT_NUMBA=0`` sets False at import.
    """
    global _enabled
    prev, _enabled = _enabled, bool(flag)
    return prev
