"""The communicator: the few collectives data-parallel training needs, over MPI through mpi4py.

As ChainerMN's ``create_communicator``, it wraps an MPI communicator with
the job's rank, size and the ranks that share this machine, and offers
exactly what training uses: broadcast and gather of Python objects (setup,
configuration, training state), an in-place sum Allreduce of a numpy array
(one per step for the gradients, a few per epoch for metrics), an Allgather
(sync batch norm) and a barrier at the end.

Failure handling. MPI collectives wait forever for a rank that never comes,
so a rank that raises tells rank 0 before it goes: it sends its message on a
separate channel (a duplicate communicator), waits a few seconds for rank 0
to take it, then aborts the job (``MPI_Abort``). Rank 0 always waits for a
collective together with that channel, so it learns the failure at its next
collective, marks the run ``failed`` with the rank's message and aborts the
job itself. A rank killed outright (``kill -9``) cannot say anything; the MPI
launcher then ends the others (MPICH's hydra does so within a second).
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time

import numpy as np

from ..errors import TrainkitError

__all__ = ["Communicator", "MPIUnavailable", "RankFailed", "import_mpi", "mpi_world_size"]

_ERROR_TAG = 7
_ERROR_BYTES = 1 << 16
#: How long a failing rank waits for rank 0 to take its message, and then for rank 0 to end the job.
REPORT_WAIT_S = 4.0
ABORT_GRACE_S = 3.0
#: How long rank 0 waits at the final barrier for ranks that should be there already.
FINISH_WAIT_S = 10.0
MPI_EXTRA_HINT = "pip install 'trainkit[mpi]' (mpi4py and an MPI runtime; on a cluster, mpi4py built on the site's MPI)"


class MPIUnavailable(TrainkitError):
    """Data-parallel training was asked for, but mpi4py (or an MPI runtime) is not installed."""


class RankFailed(TrainkitError):
    """Another rank raised: rank 0 learns it at a collective and ends the job.

    Attributes:
        rank: the rank that failed.
        kind: ``'error'`` (an exception) or ``'interrupted'`` (aborted by a second Ctrl-C).
    """

    exit_code = 1

    def __init__(self, rank: int, host: str, kind: str, message: str):
        self.rank, self.host, self.kind = rank, host, kind
        super().__init__(f"rank {rank} (on {host}) {'was aborted' if kind == 'interrupted' else 'failed'}: "
                         f"{message}")


def mpi_world_size(environ=None) -> int:
    """The size of the MPI job this process was started in (from the launcher's environment; 1 outside one).

    Read without importing mpi4py, so that a plain ``trainkit train`` never
    initialises MPI: MPICH's hydra sets ``PMI_SIZE``, Open MPI
    ``OMPI_COMM_WORLD_SIZE``, PMIx launchers ``PMIX_SIZE``... and Slurm's srun ``SLURM_NTASKS``
    (with ``PMI_SIZE`` under ``--mpi=pmi2``).
    """
    env = os.environ if environ is None else environ
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_WORLDSIZE"):
        value = env.get(key, "")
        if value.isdigit():
            return int(value)
    return 1


def mpi_env_rank(environ=None) -> int:
    """This process's rank from the launcher's environment (0 outside an MPI job)."""
    env = os.environ if environ is None else environ
    for key in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_RANK"):
        value = env.get(key, "")
        if value.isdigit():
            return int(value)
    return 0


def import_mpi():
    """``mpi4py.MPI``, or :class:`MPIUnavailable` naming the extra to install."""
    try:
        import mpi4py
    except ImportError:
        raise MPIUnavailable(f"data-parallel training needs mpi4py: {MPI_EXTRA_HINT}") from None
    # One thread calls MPI; the default (THREAD_MULTIPLE) makes every call take locks.
    mpi4py.rc.thread_level = "funneled"
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # mpi4py without a loadable MPI library
        raise MPIUnavailable(f"mpi4py cannot load an MPI library ({exc}): {MPI_EXTRA_HINT}") from None
    return MPI


class Communicator:
    """Rank, size and collectives of a data-parallel job (see the module docstring).

    Args:
        comm: an ``mpi4py`` communicator (default ``MPI.COMM_WORLD``); it is
            duplicated, so trainkit's messages never mix with the caller's.

    Attributes:
        rank, size: this process's rank and the number of ranks.
        local_rank, local_size: the same among the ranks on this machine.
        host: this machine's name.
        allreduce_seconds, allreduce_calls: time spent in :meth:`allreduce_` (waiting included).
    """

    def __init__(self, comm=None):
        MPI = import_mpi()
        self.MPI = MPI
        world = comm if comm is not None else MPI.COMM_WORLD
        self.comm = world.Dup()   # training collectives
        self.ctrl = world.Dup()   # failure reports and the final barrier
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = world.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.host = MPI.Get_processor_name() or socket.gethostname()
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0
        self._err_buf = None
        self._err_req = None
        if self.rank == 0 and self.size > 1:
            self._post_error_receive()

    # ------------------------------------------------------------------ failures
    def _post_error_receive(self) -> None:
        self._err_buf = bytearray(_ERROR_BYTES)
        self._err_req = self.ctrl.Irecv([self._err_buf, self.MPI.BYTE], source=self.MPI.ANY_SOURCE, tag=_ERROR_TAG)

    def _raise_reported(self, status) -> None:
        n = status.Get_count(self.MPI.BYTE)
        self._err_req = None
        try:
            report = json.loads(bytes(self._err_buf[:n]).decode("utf-8"))
        except ValueError:
            report = {"rank": status.Get_source(), "host": "?", "kind": "error", "message": "(unreadable report)"}
        raise RankFailed(int(report.get("rank", status.Get_source())), str(report.get("host", "?")),
                         str(report.get("kind", "error")), str(report.get("message", "")))

    def report_failure(self, message: str, kind: str = "error") -> None:
        """From a rank other than 0 that cannot go on: tell rank 0, give it a moment to end the job, abort."""
        if self.size == 1:
            return
        if self.rank == 0:
            self.abort(1)
        data = json.dumps({"rank": self.rank, "host": self.host, "kind": kind,
                           "message": message[-(_ERROR_BYTES // 2):]}).encode("utf-8")[:_ERROR_BYTES]
        req = self.ctrl.Issend([data, self.MPI.BYTE], dest=0, tag=_ERROR_TAG)
        deadline = time.monotonic() + REPORT_WAIT_S
        taken = False
        while time.monotonic() < deadline:
            if req.Test():
                taken = True
                break
            time.sleep(0.01)
        if taken:  # rank 0 records the failure and aborts the job; this rank goes with it
            time.sleep(ABORT_GRACE_S)
        self.abort(130 if kind == "interrupted" else 1)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        self.comm.Abort(code)

    # ------------------------------------------------------------------ waiting
    def _wait(self, req, patient: bool = False) -> None:
        """Complete ``req``; rank 0 also watches the failure channel. ``patient``: sleep between polls
        (setup and the end, where a rank may wait seconds for rank 0 and should not take a core)."""
        MPI = self.MPI
        watch = self._err_req is not None
        if not patient:
            if not watch:
                req.Wait()
                return
            status = MPI.Status()
            index = MPI.Request.Waitany([req, self._err_req], status)
            if index == 1:
                self._raise_reported(status)
            return
        pause = 0.0
        while True:
            if req.Test():
                return
            if watch:
                status = MPI.Status()
                if self._err_req.Test(status):
                    self._raise_reported(status)
            time.sleep(pause)
            pause = min(0.005, pause + 0.0005)

    # ------------------------------------------------------------------ collectives
    def allreduce_(self, array: np.ndarray, account: bool = True) -> np.ndarray:
        """Sum ``array`` over the ranks, in place (every rank gets the same result).

        ``account``: count the call in :attr:`allreduce_seconds` (the per-step gradient Allreduce).
        """
        t0 = time.perf_counter()
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM))
        if account:
            self.allreduce_seconds += time.perf_counter() - t0
            self.allreduce_calls += 1
        return array

    def allgather(self, array: np.ndarray) -> np.ndarray:
        """Every rank's ``array`` (same shape and dtype everywhere), stacked in rank order."""
        out = np.empty((self.size,) + array.shape, dtype=array.dtype)
        self._wait(self.comm.Iallgather(np.ascontiguousarray(array), out))
        return out

    def bcast_obj(self, obj=None, root: int = 0):
        """``obj`` from ``root`` on every rank (pickled: only ever between the ranks of one job)."""
        if self.rank == root:
            data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
            size = np.array([data.size], dtype=np.int64)
        else:
            size = np.zeros(1, dtype=np.int64)
        self._wait(self.comm.Ibcast(size, root=root), patient=True)
        if self.rank != root:
            data = np.empty(int(size[0]), dtype=np.uint8)
        self._wait(self.comm.Ibcast(data, root=root), patient=True)
        return obj if self.rank == root else pickle.loads(data.tobytes())

    def gather_obj(self, obj) -> list:
        """Every rank's ``obj`` on every rank, in rank order (small objects: setup reports)."""
        data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self._wait(self.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes), patient=True)
        out = np.empty(int(sizes.sum()), dtype=np.uint8)
        counts = [int(s) for s in sizes]
        displs = [int(d) for d in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
        self._wait(self.comm.Iallgatherv(data, [out, counts, displs, self.MPI.BYTE]), patient=True)
        return [pickle.loads(out[d:d + c].tobytes()) for d, c in zip(displs, counts)]

    def stop_listening(self) -> None:
        """Rank 0: withdraw the pending receive of failure reports (before the job ends); raises
        :class:`RankFailed` if a report arrived since the last collective."""
        if self._err_req is None:
            return
        status = self.MPI.Status()
        self._err_req.Cancel()
        self._err_req.Wait(status)
        if not status.Is_cancelled():
            self._raise_reported(status)
        self._err_req = None

    def finish(self) -> None:
        """The end of a job: every rank meets here; rank 0 ends the job if a rank never comes."""
        req = self.ctrl.Ibarrier()
        if self.rank != 0:
            self._wait(req, patient=True)
            return
        self.stop_listening()
        deadline = time.monotonic() + FINISH_WAIT_S
        while not req.Test():
            if time.monotonic() > deadline:  # a rank is stuck in a collective rank 0 left early
                self.abort(1)
            time.sleep(0.005)
