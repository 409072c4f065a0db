"""Session set-up shared by every test module.

Byte-compile trainkit and the test helpers once, before any test runs. Many
tests start real ``trainkit`` processes (CLI runs, kills and resumes, MPI
ranks); where ``PYTHONDONTWRITEBYTECODE`` is set (as on the project machine)
and the package is installed editable, no ``.pyc`` is ever written, so each
of those processes compiled all of trainkit's ~260 modules from source again:
about 0.3 s of CPU a process, more than a minute of the suite's wall time.
``compileall`` writes the caches whatever that variable says; the
interpreter still reads them, and checks them against each source's
modification time, so an edited module is recompiled as usual.
"""
from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

# The suite runs in several xdist workers on few cores, each with two intra-op threads: OpenMP's threads
# (trainkit's compiled loops, numba's OpenMP layer) would spin between regions on cores another worker
# needs. They sleep at once here; GNU OpenMP reads this when it loads, on the first compiled loop, and
# the CLI processes the tests start inherit it. Benchmarks and users keep OpenMP's default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import trainkit  # noqa: E402


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has compiled already
        return
    for folder in (Path(trainkit.__file__).resolve().parent, Path(__file__).resolve().parent):
        compileall.compile_dir(folder, quiet=2, workers=1)


@pytest.fixture
def two_threads():
    """trainkit's intra-op pool (and numpy's OpenBLAS) on two threads for one test, then back."""
    prev = trainkit.get_num_threads()
    trainkit.set_num_threads(2)
    yield
    trainkit.set_num_threads(prev)
