"""``Run``: one run directory and everything written into it while training.

A :class:`Run` owns the directory (``runs/<stamp>-<name>`` or ``--run-dir``),
its ``config.yaml``, its status (``run.json``, :class:`~.rundir.RunInfo`), its
metrics log (``metrics.csv``/``metrics.jsonl``, :class:`~.rundir.MetricsLog`)
and its console log (``train.log``, :class:`~.console.RunLog`). The trainer
writes through it; the session decides when a run starts, resumes and ends.

Nothing is written until the session calls :meth:`Run.start` or
:meth:`Run.resume`: a refused config or checkpoint leaves a new run directory
empty and an existing one exactly as it was.

A run is written by one process at a time: :meth:`Run.create` and
:meth:`Run.open_for_writing` take its lock (:mod:`.lock`), held until
:meth:`Run.close` or the process's end. A resume that fails before it saved a
checkpoint of its own puts ``run.json``, ``config.yaml`` and the metrics back
as they were, so a completed run never turns ``failed`` because a later
extension of it was refused or broke.
"""
from __future__ import annotations

import copy
from pathlib import Path

from trainkit.utils.atomic import StorageError, atomic_write_bytes, atomic_write_json, atomic_write_text
from .console import RunLog
from .lock import RunLock
from .rundir import RUN_JSON, MetricsLog, RunInfo, create_run_dir, is_run_dir, open_run

__all__ = ["Run"]


class Run:
    """A run directory with its status, metrics log and console log (see the module docstring).

    Attributes:
        path: the run directory.
        info: ``run.json`` (None until the run is started or opened).
        metrics: the per-epoch metrics log.
        log: console + ``train.log`` output (after :meth:`open_log`).
    """

    def __init__(self, path: Path, info: RunInfo | None = None):
        self.path = Path(path)
        self.info = info
        self._metrics: MetricsLog | None = None
        self.log: RunLog | None = None
        self.lock: RunLock | None = None
        self._owned = False  # True once this process started or resumed the run (may mark it failed)
        self._before: tuple[dict, bytes | None] | None = None  # run.json + config.yaml before a resume
        self._checkpointed = False  # this process saved a checkpoint of its own

    @classmethod
    def create(cls, runs_dir, name: str, exact=None) -> "Run":
        """A new, empty run directory (``exact``: ``--run-dir``; else ``<runs_dir>/<stamp>-<name>``), locked."""
        run = cls(create_run_dir(runs_dir, name, exact=exact))
        run.lock = RunLock.acquire(run.path)
        return run

    @classmethod
    def open(cls, path) -> "Run":
        """An existing run directory, to read (``eval``); refuses anything else."""
        info = open_run(path)
        return cls(Path(path), info)

    @classmethod
    def open_for_writing(cls, path) -> "Run":
        """An existing run directory for ``--resume``: locked against a second writer, then read.

        Raises:
            RunDirError: not a run, another process is writing it (its PID is named), or it
                cannot be locked (a read-only folder).
        """
        path = Path(path)
        if not is_run_dir(path):
            open_run(path)  # raises the precise reason (missing, not a directory, no run.json)
        lock = RunLock.acquire(path)
        try:
            run = cls(path, open_run(path))  # read after locking: the writer may just have finished
        except BaseException:
            lock.release()
            raise
        run.lock = lock
        return run

    @property
    def metrics(self) -> MetricsLog:
        """The per-epoch metrics log (opened on first use: ``eval`` never reads it)."""
        if self._metrics is None:
            self._metrics = MetricsLog(self.path)
        return self._metrics

    @property
    def config_path(self) -> Path:
        """The run's resolved config."""
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        """The folder holding the ``last`` and ``best`` checkpoints."""
        return self.path / "checkpoints"

    def open_log(self, console, quiet: bool = False) -> RunLog:
        """Start mirroring output to ``train.log`` (and the console unless ``quiet``).

        Raises:
            StorageError: ``train.log`` cannot be opened for appending (a symbolic link, a
                read-only folder).
        """
        self.log = RunLog(console, self.path / "train.log", quiet=quiet)
        return self.log

    def start(self, config_yaml: str, *, name: str, seed: int, epochs: int, command: list[str], config_file: str,
              data: dict, **extra) -> None:
        """Write a new run's ``config.yaml`` and ``run.json`` (status running; ``extra``: more run.json fields)."""
        atomic_write_text(self.config_path, config_yaml)
        self.info = RunInfo.create(self.path, name=name, seed=seed, epochs_planned=epochs, command=command,
                                   config_file=config_file, data=data, **extra)
        self._owned = True

    def resume(self, config_yaml: str, *, epochs_done: int, epochs: int, command: list[str]) -> None:
        """Mark an accepted resume: rewrite ``config.yaml``, drop metrics rows past the checkpoint, status running."""
        try:
            config_before = self.config_path.read_bytes()
        except OSError:
            config_before = None
        self._before = (copy.deepcopy(self.info.data), config_before)
        self._owned = True  # from here a failure puts the files back (see fail_quietly)
        atomic_write_text(self.config_path, config_yaml)
        self.metrics.truncate_after(epochs_done)
        self.info.resume(command=command, epochs_planned=epochs, epochs_done=epochs_done)

    def checkpointed(self) -> None:
        """Called by the trainer after it saved a checkpoint: from now on the run has moved on."""
        self._checkpointed = True

    def update(self, **fields) -> None:
        """Record progress in ``run.json`` (epochs done, best metric)."""
        self.info.update(**fields)

    def finish(self, status: str, message: str | None = None, **fields) -> None:
        """Set the final status (completed, interrupted, diverged, failed)."""
        self.info.finish(status, message=message, **fields)

    def fail_quietly(self, status: str, message: str) -> None:
        """Set a final status if this process owns the run; a storage failure here is not worth a second error.

        A resume of a completed run that ends this way before saving a checkpoint of its own
        changed nothing the run had: its files are put back as they were (status completed).
        """
        if not self._owned or self.info is None:
            return
        if self._before is not None and self._before[0].get("status") == "completed" and not self._checkpointed:
            self._restore_before()
            return
        try:
            self.info.finish(status, message=message)
        except StorageError:
            pass

    def _restore_before(self) -> None:
        data, config = self._before
        epochs = data.get("epochs_done")
        steps = [lambda: atomic_write_json(self.path / RUN_JSON, data)]
        if config is not None:
            steps.append(lambda: atomic_write_bytes(self.config_path, config))
        if isinstance(epochs, int):
            steps.append(lambda: self.metrics.truncate_after(epochs))
        self.info.data = data
        for step in steps:  # each on its own: one failed write must not keep the others from happening
            try:
                step()
            except StorageError:
                pass

    def print(self, *objects, **kwargs) -> None:
        """Print to the console and ``train.log`` (see :meth:`RunLog.print`)."""
        self.log.print(*objects, **kwargs)

    def close(self) -> None:
        """Close ``train.log`` and let the run's lock go."""
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
