"""TensorBoard event files of a run (``train.tensorboard: true``), written with tensorboardX.

Everything is logged against the optimizer step (``global_step``), as
Lightning does, so that one ``purge_step`` covers every tag: per-epoch scalars
(every metric of the task from :mod:`trainkit.registry.tasks` by its table
name, ``lr``, ``images_per_s`` and ``epoch``) at the step that ends the epoch,
the training loss every ``train.log_every`` steps as ``train_loss_step``,
optional weight and gradient histograms, the config as text and, at the end,
hparams with the final metrics (in ``tensorboard/hparams``).

Resuming: the event file starts with the event ``SummaryWriter(purge_step=)``
writes, at the checkpoint's step + 1, so TensorBoard drops what a killed
process wrote after that checkpoint and the resumed run's events replace it; no
step is shown twice. Events are written synchronously (tensorboardX's
``SummaryWriter`` queues them for a background thread whose ``flush`` does not
wait for the queue) and the file is flushed and fsynced at every epoch end
before the checkpoint is written, so a checkpoint never covers events that are
not on disk. A killed run's files stay readable: event files are length- and
CRC-framed records, and a cut last record is skipped by every reader. Each
process writes its own file (a resume never reopens an old one).
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..utils.extras import require
from .callbacks import Callback

__all__ = ["TensorBoardLogger", "EventFile", "TENSORBOARD_DIR"]

#: The folder of a run directory holding its event files.
TENSORBOARD_DIR = "tensorboard"
#: Buckets of a weight or gradient histogram.
HIST_BINS = 64


def _has_events(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.startswith("events.out.tfevents") for p in folder.iterdir())


def _tensorboardx():
    """Import tensorboardX (or say which extra installs it) without importing PyTorch.

    tensorboardX's package import tries ``import torch`` only to accept torch tensors as values; trainkit
    hands it numpy arrays and protos. Where torch is installed but not yet imported, that try costs about
    1 s of start-up (measured: 1.67 s against 0.6 s to import tensorboardX here), so during the import
    ``torch`` is marked absent and tensorboardX takes its numpy-only path. A process that has imported
    torch already is left as it is.
    """
    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        return require("tensorboardX", "tensorboard", "train.tensorboard")
    sys.modules["torch"] = None  # ``import torch`` raises ImportError while this is set
    try:
        return require("tensorboardX", "tensorboard", "train.tensorboard")
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


class EventFile:
    """One event file written synchronously with tensorboardX's record writer and summary builders.

    Args:
        folder: the log directory (created if missing).
        purge_step: as ``SummaryWriter(purge_step=)``: TensorBoard discards the events of earlier
            files at this step and later.
    """

    def __init__(self, folder: Path, purge_step: int | None = None):
        _tensorboardx()
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        self._Event = Event
        folder.mkdir(parents=True, exist_ok=True)
        # the library names files by the second and host: a resume within the same second would truncate
        # the killed process's file, so each writer adds its pid and a counter
        n = 0
        while list(folder.glob(f"events.out.tfevents.*.{os.getpid()}.{n}")):
            n += 1
        self._writer = EventsWriter(str(folder / "events"), f".{os.getpid()}.{n}")
        if purge_step is not None:
            self._writer.write_event(Event(step=purge_step, wall_time=time.time(),
                                           session_log=SessionLog(status=SessionLog.START)))

    def add(self, summary, step: int) -> None:
        """Append a ``Summary`` proto at ``step``."""
        self._writer.write_event(self._Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        """Write the buffered events to disk (fsync)."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.close()


class TensorBoardLogger(Callback):
    """Writes a run's TensorBoard events (see the module docstring).

    Args:
        config: the run's :class:`~trainkit.config.Config` (logged as text; hparams are its
            scalar values).
        histograms: also log a histogram of each parameter and its gradient every epoch.

    Raises:
        MissingExtra: tensorboardX is not installed (checked here, before the run writes anything).
    """

    name = "tensorboard"

    def __init__(self, config, histograms: bool = False):
        _tensorboardx()
        from tensorboardX import summary

        self._summary = summary
        self.config = config
        self.histograms = histograms
        self.writer = None
        self.folder: Path | None = None

    def on_fit_start(self, trainer) -> None:
        self.folder = trainer.run_dir / TENSORBOARD_DIR
        resumed = _has_events(self.folder)
        # steps 1..S are covered by the checkpoint this run resumed from (S = 0: it starts over)
        self.writer = EventFile(self.folder, purge_step=trainer.state.step + 1 if resumed else None)
        if not resumed:
            self.writer.add(self._summary.text("config", "```yaml\n" + self.config.to_yaml() + "\n```"), 0)
            self.writer.flush()

    def on_train_batch_end(self, trainer, loss: float) -> None:
        step = trainer.state.step
        if step % trainer.spec.log_every == 0:
            self.writer.add(self._summary.scalar("train_loss_step", loss), step)

    def on_epoch_end(self, trainer, epoch: int, row: dict, values: dict) -> None:
        w, step, scalar = self.writer, trainer.state.step, self._summary.scalar
        w.add(scalar("epoch", row["epoch"]), step)
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                w.add(scalar(name, value), step)
        for key in ("lr", "images_per_s"):
            if row.get(key) is not None:
                w.add(scalar(key, row[key]), step)
        if self.histograms:
            for name, p in trainer.model.named_parameters():
                w.add(self._summary.histogram(f"weights/{name}", np.asarray(p._array, np.float64), HIST_BINS), step)
                if p.grad is not None:
                    w.add(self._summary.histogram(f"grads/{name}", np.asarray(p.grad._array, np.float64), HIST_BINS),
                          step)
        w.flush()  # on disk before the checkpoint that covers this epoch

    def on_fit_end(self, trainer) -> None:
        hparams = {k: v for k, v in _flat(self.config.data).items()
                   if isinstance(v, (bool, int, float, str)) and k.split(".")[0] != "model"}
        final = {}
        if trainer.state.history:
            final = {f"hparam/{k}": float(v) for k, v in trainer.state.history[-1].items()
                     if k not in ("epoch", "seconds", "images_per_s", "lr") and isinstance(v, (int, float))
                     and not isinstance(v, bool) and math.isfinite(v)}
        best = trainer.state.best
        if best is not None:
            final[f"hparam/best_{best['name']}"] = float(best["value"])
        if not final:
            return
        folder = self.folder / "hparams"
        step = trainer.state.step
        hp = EventFile(folder, purge_step=step if _has_events(folder) else None)
        try:
            for summary in self._summary.hparams(hparams, final):
                hp.add(summary, 0)
            for k, v in final.items():
                hp.add(self._summary.scalar(k, v), step)
        finally:
            hp.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _flat(data, prefix: str = "") -> dict:
    out = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
    elif isinstance(data, list):
        out[prefix[:-1]] = str(data)
    else:
        out[prefix[:-1]] = data
    return out
