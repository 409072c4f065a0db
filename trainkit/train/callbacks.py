"""The trainer's hook point: observers called at the start and end of training, after each step and epoch.

A :class:`Callback` sees the :class:`~trainkit.train.trainer.Trainer` (its
``state``, ``model``, ``optimizer``, ``run``) and may end training after the
current epoch by setting ``trainer.should_stop`` (as Keras' ``stop_training``
and Lightning's ``should_stop`` do). The loop calls ``on_epoch_end`` after the
epoch's metrics row is logged and *before* the checkpoint covering the epoch is
written, so what a callback wrote for an epoch a resume repeats was never
covered by a checkpoint (TensorBoard purges it on resume).
"""
from __future__ import annotations

__all__ = ["Callback", "run_callbacks"]


class Callback:
    """Base class of the trainer's observers; every method does nothing unless overridden."""

    def on_fit_start(self, trainer) -> None:
        """Training (or its resumption) begins; ``trainer.state`` holds the restored counters."""

    def on_step_end(self, trainer, loss: float) -> None:
        """An optimizer step is done (``trainer.state.step`` counts it); ``loss`` is its batch loss."""

    def on_epoch_end(self, trainer, row: dict, values: dict) -> None:
        """An epoch ended: ``row`` is its ``metrics.jsonl`` row, ``values`` every metric of the task by its
        table name (``train_loss``, ``val_accuracy``, ``train_r2``; val ones only on evaluated epochs)."""

    def on_fit_end(self, trainer) -> None:
        """The epochs ended normally (all done, early stopping or ``should_stop``)."""

    def close(self) -> None:
        """Always called when ``fit`` returns or raises: release files."""


def run_callbacks(prep) -> list[Callback]:
    """The callbacks a run's config asks for (``train.tensorboard``), built before anything is written.

    Raises:
        MissingExtra: the config needs an optional package that is not installed.
    """
    out: list[Callback] = []
    spec = prep.config.resolved.train
    if spec.tensorboard:
        from .tensorboard import TensorBoardLogger

        out.append(TensorBoardLogger(prep.config, histograms=spec.tensorboard_histograms))
    return out
