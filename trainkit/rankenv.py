"""BLAS threads of a data-parallel rank, set in the environment before numpy loads.

Several training processes on one machine each running numpy's OpenBLAS with
one thread per core would oversubscribe the cores many times over (and
OpenBLAS threads spin while they wait). So when this process is one of
several MPI ranks on its machine, ``trainkit`` gives BLAS ``cores // local
ranks`` threads (at least one), unless the user set a thread count
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) - then
theirs stands. BLAS libraries read these variables once, when they load, so
this runs at the top of ``trainkit/__init__.py``, before numpy is imported;
:data:`DECISION` records what was done so that rank 0 can report it.

Only the standard library is used here (it runs before everything else).
"""
from __future__ import annotations

import os
import sys

#: The variables BLAS builds read for their thread count (OpenMP, OpenBLAS, MKL).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: What :func:`apply` decided: None outside an MPI job, else a dict with ``threads`` (an int, or
#: None for BLAS's default or unknown), ``source`` ('trainkit', 'user', 'default' for a rank alone on
#: its machine, or 'numpy-already-loaded'), ``cores`` and ``local_ranks``.
DECISION: dict | None = None


def local_ranks(environ=None) -> int | None:
    """How many ranks of this MPI job run on this machine, from the launcher's environment.

    MPICH's hydra sets ``MPI_LOCALNRANKS``, Open MPI ``OMPI_COMM_WORLD_LOCAL_SIZE``;
    under Slurm's ``srun`` ``SLURM_STEP_TASKS_PER_NODE`` (``"4"`` or ``"4(x2)"``) is read.
    None when the process was not started by one of them.
    """
    env = os.environ if environ is None else environ
    for key in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = env.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    value = env.get("SLURM_STEP_TASKS_PER_NODE", "").split("(")[0].split(",")[0]
    if value.isdigit() and int(value) > 0:
        return int(value)
    return None


def cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def apply(environ=None) -> dict | None:
    """Set the BLAS thread variables for a rank sharing its machine (see the module docstring)."""
    global DECISION
    env = os.environ if environ is None else environ
    local = local_ranks(env)
    if local is None:
        return None
    n_cores = cores()
    decision = {"cores": n_cores, "local_ranks": local}
    user = [k for k in THREAD_VARS if env.get(k)]
    if user:
        value = env[user[0]]
        decision.update(threads=int(value) if value.isdigit() else None, source="user", variable=user[0])
    elif local == 1:  # alone on its machine: BLAS's own default (a thread per core)
        decision.update(threads=None, source="default")
    elif "numpy" in sys.modules:
        # Too late for the environment: BLAS has read it already (trainkit imported after numpy).
        decision.update(threads=None, source="numpy-already-loaded")
    else:
        threads = max(1, n_cores // local)
        for key in THREAD_VARS:
            env[key] = str(threads)
        decision.update(threads=threads, source="trainkit")
    DECISION = decision
    return decision


def describe(decision: dict | None) -> str:
    """One line for the console: the BLAS threads of each rank and who chose them."""
    if decision is None:
        return "BLAS threads: numpy's default"
    cores_, local = decision["cores"], decision["local_ranks"]
    if decision["source"] == "trainkit":
        return (f"{decision['threads']} BLAS thread(s) per rank (set by trainkit: {cores_} cores / "
                f"{local} ranks on this machine; set OMP_NUM_THREADS to choose)")
    if decision["source"] == "user":
        return f"{decision['threads'] or decision.get('variable')} BLAS thread(s) per rank ({decision['variable']})"
    if decision["source"] == "default":
        return f"BLAS threads per rank: numpy's default (one rank per machine, {cores_} cores here)"
    return ("BLAS threads per rank: numpy's default (numpy was loaded before trainkit; set "
            f"OMP_NUM_THREADS={max(1, cores_ // local)} for {local} ranks on {cores_} cores)")
