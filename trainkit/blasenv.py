"""How long numpy's OpenBLAS lets its idle threads spin, set in the environment before numpy loads.

After each threaded BLAS call, OpenBLAS's worker threads busy-wait for new
work for ``2**OPENBLAS_THREAD_TIMEOUT`` cycles (2**28 by default, about a
tenth of a second) before they sleep. trainkit runs its own intra-op threads
between GEMMs (im2col, pooling, elementwise pieces), so on a machine with as
many cores as threads those spinning workers took the cores from them: with
LeNet at 2 threads, OpenBLAS's idle worker burned as much CPU as the main
thread. trainkit used to avoid OpenBLAS's threading altogether by cutting
large products into blocks on its own pool (:func:`trainkit.autograd.threads.matmul`).

With the spin cut to ``2**SPIN_EXPONENT`` cycles (about 6 µs: long enough to
catch the next product of a loop of small ones, as an LSTM's time steps make),
OpenBLAS's own threading of a product wins instead (measured on the 2-core Xeon, 2 threads, medians of 3
alternating runs against PyTorch; see docs/performance.md, "Round four"), and
:func:`~trainkit.autograd.threads.matmul` hands products straight to it.

BLAS reads the variable once, when numpy loads it, so this runs at the top of
``trainkit/__init__.py`` (after :mod:`trainkit.rankenv`). A user's own
``OPENBLAS_THREAD_TIMEOUT`` (or ``GOTO_THREAD_TIMEOUT``) stands; if numpy was
imported before trainkit, nothing can be changed and the pool's blocks are
used as before (:func:`trainkit.autograd.threads.matmul` reads the variable
to know which). Only the standard library is used here.
"""
from __future__ import annotations

import os
import sys

#: OpenBLAS's idle workers spin for 2**SPIN_EXPONENT cycles before sleeping (OpenBLAS clamps the
#: exponent to 4..30). 14 (16K cycles) against 4 (16 cycles: sleep at once), 2 threads, ratios to
#: PyTorch in two alternating rounds: LeNet b32 0.66 / 0.66 against 0.62 / 0.59, cifar_resnet b64
#: 0.59 / 0.60 against 0.56 / 0.57, LSTM LM 0.56 / 0.56 against 0.54 / 0.56, the rest within noise.
SPIN_EXPONENT = 14
#: The variables OpenBLAS reads for it (a user's value stands).
TIMEOUT_VARS = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")


def apply(environ=None) -> bool:
    """Set OPENBLAS_THREAD_TIMEOUT before numpy loads (see the module docstring); True when it was set."""
    env = os.environ if environ is None else environ
    if "numpy" in sys.modules or any(env.get(k) for k in TIMEOUT_VARS):
        return False  # too late (OpenBLAS has read its environment), or the user's choice
    env["OPENBLAS_THREAD_TIMEOUT"] = str(SPIN_EXPONENT)
    return True
