"""``Run``: one run directory and everything written into it while training.

A :class:`Run` owns the directory (``runs/<stamp>-<name>`` or ``--run-dir``),
its ``config.yaml``, its status (``run.json``, :class:`~.rundir.RunInfo`), its
metrics log (``metrics.csv``/``metrics.jsonl``, :class:`~.rundir.MetricsLog`)
and its console log (``train.log``, :class:`~.console.RunLog`). The trainer
writes through it; the session decides when a run starts, resumes and ends.

Nothing is written until the session calls :meth:`Run.start` or
:meth:`Run.resume`: a refused config or checkpoint leaves a new run directory
empty and an existing one exactly as it was.
"""
from __future__ import annotations

from pathlib import Path

from trainkit.utils.atomic import StorageError, atomic_write_text
from .console import RunLog
from .rundir import MetricsLog, RunInfo, create_run_dir, open_run

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
        self._owned = False  # True once this process started or resumed the run (may mark it failed)

    @classmethod
    def create(cls, runs_dir, name: str, exact=None) -> "Run":
        """A new, empty run directory (``exact``: ``--run-dir``; else ``<runs_dir>/<stamp>-<name>``)."""
        return cls(create_run_dir(runs_dir, name, exact=exact))

    @classmethod
    def open(cls, path) -> "Run":
        """An existing run directory (for ``--resume`` and ``eval``); refuses anything else."""
        info = open_run(path)
        return cls(Path(path), info)

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
        """Start mirroring output to ``train.log`` (and the console unless ``quiet``)."""
        self.log = RunLog(console, self.path / "train.log", quiet=quiet)
        return self.log

    def start(self, config_yaml: str, *, name: str, seed: int, epochs: int, command: list[str], config_file: str,
              data: dict) -> None:
        """Write a new run's ``config.yaml`` and ``run.json`` (status running)."""
        atomic_write_text(self.config_path, config_yaml)
        self.info = RunInfo.create(self.path, name=name, seed=seed, epochs_planned=epochs, command=command,
                                   config_file=config_file, data=data)
        self._owned = True

    def resume(self, config_yaml: str, *, epochs_done: int, epochs: int, command: list[str]) -> None:
        """Mark an accepted resume: rewrite ``config.yaml``, drop metrics rows past the checkpoint, status running."""
        atomic_write_text(self.config_path, config_yaml)
        self.metrics.truncate_after(epochs_done)
        self.info.resume(command=command, epochs_planned=epochs)
        self._owned = True

    def update(self, **fields) -> None:
        """Record progress in ``run.json`` (epochs done, best metric)."""
        self.info.update(**fields)

    def finish(self, status: str, message: str | None = None, **fields) -> None:
        """Set the final status (completed, interrupted, diverged, failed)."""
        self.info.finish(status, message=message, **fields)

    def fail_quietly(self, status: str, message: str) -> None:
        """Set a final status if this process owns the run; a storage failure here is not worth a second error."""
        if not self._owned or self.info is None:
            return
        try:
            self.info.finish(status, message=message)
        except StorageError:
            pass

    def print(self, *objects, **kwargs) -> None:
        """Print to the console and ``train.log`` (see :meth:`RunLog.print`)."""
        self.log.print(*objects, **kwargs)

    def close(self) -> None:
        """Close ``train.log``."""
        if self.log is not None:
            self.log.close()
