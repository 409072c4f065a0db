"""``trainkit train`` on every rank of an MPI job (``mpiexec -n N trainkit train CONFIG``, or ``--procs N``).

Rank 0 runs the single-process story (:func:`trainkit.train.session.train`)
with the job's side attached (:class:`Rank0`); the other ranks follow it
(:func:`_follow`):

1. rank 0 validates the config (and for ``--resume`` the run directory); a
   refusal is broadcast, every rank exits with code 2 and only rank 0 prints
   the message;
2. rank 0 broadcasts the resolved config; every other rank builds its data
   and model from it (the data root must exist on every machine) and all
   ranks report; if any rank failed, rank 0 prints which one and why (exit 2);
3. rank 0 creates or resumes the run directory - nothing is written before
   every rank is ready - and broadcasts the training state (fresh weights, or
   the checkpoint's weights, optimizer, loader position, ...), so every rank
   starts from rank 0's state;
4. every rank trains (:class:`~.trainer.DistributedTrainer`); only rank 0
   writes the run directory, the console, the logs and the checkpoints;
5. rank 0 writes the final report while the others wait at the last barrier.

A rank that raises tells rank 0 and the job is aborted (see
:mod:`.communicator`); rank 0 marks the run ``failed`` with that rank's
message. Signals (Ctrl-C on ``mpiexec``, which forwards it to every rank)
stop every rank after the same step: the run is ``interrupted`` and resumes
as usual, with any number of ranks.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..assemble.prepare import prepare, resolved_yaml
from ..errors import DivergedError, TrainkitError
from ..nn.norm import _BatchNorm
from ..train.console import RunLog
from ..train.session import train as train_session
from ..train.trainer import Interrupted
from ..utils.atomic import StorageError, atomic_write_json
from .. import rankenv
from .communicator import Communicator, MPIUnavailable, RankFailed, mpi_env_rank
from .trainer import DistributedTrainer

__all__ = ["train", "Rank0"]

#: Where a ``--procs`` launcher wants rank 0 to note the run directory (for a post-mortem status).
LAUNCH_INFO_ENV = "TRAINKIT_LAUNCH_INFO"
#: The command line the user typed (``--procs`` included), JSON, for ``run.json``.
LAUNCH_COMMAND_ENV = "TRAINKIT_LAUNCH_COMMAND"


class _NoMetrics:
    """The metrics log of a rank other than 0: rank 0 writes the rows."""

    def append(self, row) -> None:
        """Nothing: rank 0 appends the row."""

    def rows(self) -> list:
        """No rows on this rank."""
        return []


class _FollowerRun:
    """The run of a rank other than 0: the same path, and nothing written (rank 0 owns the directory)."""

    def __init__(self, path: str):
        from rich.console import Console

        self.path = Path(path)
        self.log = RunLog(Console(quiet=True), None, quiet=True)
        self.metrics = _NoMetrics()

    def update(self, **fields) -> None:
        """Nothing: rank 0 records progress."""

    def print(self, *objects, **kwargs) -> None:
        """Nothing: rank 0 prints."""


def _rank_info(comm) -> dict:
    return {"rank": comm.rank, "host": comm.host, "pid": os.getpid(), "threads": rankenv.DECISION,
            "first_on_machine": comm.local_rank == 0}


def _has_batchnorm(model) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


class Rank0:
    """Rank 0's side of a data-parallel ``trainkit train``: what :func:`trainkit.train.session.train`
    calls at the points where the other ranks join in (see the module docstring).

    ``phase`` says what the other ranks wait for: ``"config"``, ``"state"``,
    ``"training"``, or ``"gone"`` once they have left.
    """

    def __init__(self, comm: Communicator):
        self.comm = comm
        self.phase = "config"
        self.run = None
        self.dtrainer: DistributedTrainer | None = None

    def prepared(self, prep) -> None:
        """Rank 0 accepted the config: every other rank builds the same run from it."""
        comm = self.comm
        comm.bcast_obj(("config", resolved_yaml(prep.config), prep.config.name))
        self.phase = "state"
        outcomes = comm.gather_obj((comm.host, None))
        bad = [(rank, host, msg) for rank, (host, msg) in enumerate(outcomes) if msg is not None]
        if bad:
            self.phase = "gone"
            rank, host, msg = bad[0]
            more = f" (and {len(bad) - 1} other rank(s))" if len(bad) > 1 else ""
            raise TrainkitError(f"rank {rank} (on {host}) refused the run{more}: {msg}")

    def trainer(self, prep, run) -> DistributedTrainer:
        """The data-parallel trainer of rank 0."""
        self.run = run
        self.dtrainer = DistributedTrainer(prep, run, self.comm)
        return self.dtrainer

    def started(self, run, trainer: DistributedTrainer) -> None:
        """The run directory is written: every rank takes rank 0's training state; say how the job is laid out."""
        comm = self.comm
        comm.bcast_obj(("state", trainer.state_payload(), str(run.path)))
        self.phase = "training"
        infos = comm.gather_obj(_rank_info(comm))
        hosts = sorted({i["host"] for i in infos})
        n_machines = sum(1 for i in infos if i["first_on_machine"])  # MPI's view: ranks sharing memory
        batch = trainer.train_loader.batch_size
        per = batch / comm.size
        per_text = f"{batch // comm.size}" if per == int(per) else f"{batch // comm.size}-{batch // comm.size + 1}"
        machines = f"{n_machines} machine{'s' if n_machines > 1 else ''}"
        run.print(f"data parallel: {comm.size} ranks on {machines} ({', '.join(hosts)}); global batch "
                  f"{batch} = {per_text} per rank; {rankenv.describe(infos[0]['threads'])}", highlight=False)
        if _has_batchnorm(trainer.model):
            run.print("batch norm: " + ("synchronised over the ranks (train.sync_batchnorm)" if trainer.synced_norm
                                        else "per rank, over each rank's share of the batch (train.sync_batchnorm: "
                                             "true normalises over the global batch, as one process)"),
                      highlight=False)
        run.update(distributed={"ranks": comm.size, "machines": n_machines, "hosts": hosts,
                                "pids": [i["pid"] for i in infos],
                                "threads": [(i["threads"] or {}).get("threads") for i in infos],
                                "sync_batchnorm": trainer.synced_norm})
        where = os.environ.get(LAUNCH_INFO_ENV)
        if where:
            try:
                atomic_write_json(Path(where), {"run": str(run.path), "pids": [i["pid"] for i in infos]})
            except StorageError:
                pass  # only the launcher's post-mortem note depends on it

    def refuse(self) -> None:
        """Rank 0 stopped before training: the other ranks, waiting for the config or the state, exit with 2."""
        if self.phase in ("config", "state"):
            self.comm.bcast_obj(("refused", None, None))
        self.phase = "gone"


def _prepare_from_text(text: str, name: str):
    with tempfile.TemporaryDirectory(prefix="trainkit-rank-") as tmp:
        path = Path(tmp) / f"{name or 'config'}.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return prepare(path)
        except TrainkitError as exc:
            # The file is a private copy: point at what the user can look at.
            where = f"the config as rank 0 resolved it ({path.name})"
            raise TrainkitError(str(exc).replace(str(path), where)) from None


def _follow(comm: Communicator) -> int:
    """A rank other than 0: prepare rank 0's config, take its state, train, meet at the end."""
    kind, text, name = comm.bcast_obj()
    if kind == "refused":
        return 2
    prep, problem = None, None
    try:
        prep = _prepare_from_text(text, name)
    except TrainkitError as exc:
        problem = str(exc)
    outcomes = comm.gather_obj((comm.host, problem))
    if any(msg is not None for _, msg in outcomes):
        return 2
    kind, payload, run_path = comm.bcast_obj()
    if kind == "refused":
        return 2
    trainer = DistributedTrainer(prep, _FollowerRun(run_path), comm)
    trainer.load_shared_state(payload, source=Path(run_path) / "checkpoints")
    comm.gather_obj(_rank_info(comm))
    try:
        trainer.fit()
        code = 0
    except Interrupted:
        code = 130
    except DivergedError:
        code = 3
    comm.finish()
    return code


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _abort(comm: Communicator, code: int) -> None:
    """Rank 0 ends the job with ``code``. The launcher returns that code: MPICH's ``mpiexec`` reports the exit
    status of whichever rank it saw end first, which for a rank killed by the abort can be 9 (SIGKILL)."""
    where = os.environ.get(LAUNCH_INFO_ENV)
    if where:
        try:
            note = json.loads(Path(where).read_text() or "{}")
            atomic_write_json(Path(where), {**(note if isinstance(note, dict) else {}), "exit": code})
        except (OSError, ValueError, StorageError):
            pass  # the launcher then returns mpiexec's status
    comm.abort(code)


def train(config_path, overrides=(), *, run_dir=None, runs_dir=None, resume=None, quiet=False, console=None,
          command=None, trust_code: bool = False) -> int:
    """``trainkit train`` on one rank of an MPI job; returns the exit code (as the single-process train)."""
    try:
        comm = Communicator()
    except MPIUnavailable:
        if mpi_env_rank() != 0:
            return 2  # one message, from rank 0
        raise
    if comm.rank != 0:
        try:
            return _follow(comm)
        except BaseException as exc:  # noqa: BLE001 - every way out must end the job, not hang it
            if isinstance(exc, KeyboardInterrupt):
                comm.report_failure("aborted by a second Ctrl-C", kind="interrupted")
            if not isinstance(exc, TrainkitError):
                _say(f"rank {comm.rank} (on {comm.host}):\n{traceback.format_exc()}")
            comm.report_failure(f"{type(exc).__name__}: {exc}" if not isinstance(exc, TrainkitError) else str(exc))
            raise
    parallel = Rank0(comm)
    if command is None and os.environ.get(LAUNCH_COMMAND_ENV):
        try:
            command = [str(a) for a in json.loads(os.environ[LAUNCH_COMMAND_ENV])]
        except (ValueError, TypeError):
            command = None
    try:
        code = train_session(config_path, overrides, run_dir=run_dir, runs_dir=runs_dir, resume=resume, quiet=quiet,
                             console=console, command=command, trust_code=trust_code, parallel=parallel)
    except BaseException as exc:  # noqa: BLE001
        if parallel.phase != "training":
            parallel.refuse()
            comm.stop_listening()
            raise
        # The other ranks may be inside a collective rank 0 left: record, say why, end the job.
        if isinstance(exc, RankFailed) and exc.kind == "interrupted" and parallel.run is not None:
            parallel.run.fail_quietly("interrupted", str(exc))
        if isinstance(exc, TrainkitError):
            _say(f"error: {exc}")
            _abort(comm, 130 if isinstance(exc, RankFailed) and exc.kind == "interrupted" else exc.exit_code)
        if isinstance(exc, KeyboardInterrupt):
            _say("interrupted")
            _abort(comm, 130)
        _say(traceback.format_exc())
        _abort(comm, 1)
        raise
    comm.finish()
    return code
