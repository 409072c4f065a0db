"""The trainer's extension point: callbacks that watch training without changing what it computes.

A :class:`Callback` gets the :class:`~trainkit.train.trainer.Trainer` at a few
points of the loop (named as in Lightning) and may read anything on it — the
model, the optimizer, the loop state, the run directory — but must not change
what training computes: it must not draw from the global RNG, advance a data
loader or touch parameters and gradients. It may end training after the
current epoch by setting ``trainer.should_stop`` (Keras' ``stop_training``,
Lightning's ``should_stop``; a sweep's pruner does).

``on_epoch_end`` runs after the epoch's metrics row is logged and *before*
the checkpoint covering the epoch is written, so what a callback wrote for an
epoch that a resume repeats was never covered by a checkpoint (TensorBoard
purges it on resume). :meth:`Callback.state_dict` goes into every checkpoint
(under ``callbacks.<name>`` of ``state.json``), so a resumed run continues a
callback exactly where the interrupted one stopped, mid-epoch included.

:func:`default_callbacks` builds the trainer's own (the per-layer diagnostics
of :mod:`trainkit.train.diagnostics`); :func:`run_callbacks` those a run's
config adds (``train.tensorboard``), built before the run directory exists so
that a missing optional package is refused first.
"""
from __future__ import annotations

__all__ = ["Callback", "default_callbacks", "run_callbacks"]


class Callback:
    """Base class: every hook does nothing; override the ones you need.

    Attributes:
        name: the key of this callback's state in checkpoints (unique per trainer).
    """

    name = "callback"

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch of this process (a fresh run, or after a resume restored the state)."""

    def on_after_backward(self, trainer) -> None:
        """Gradients of this step are in ``.grad`` (before clipping and the optimizer step)."""

    def on_train_batch_end(self, trainer, loss: float) -> None:
        """The optimizer stepped (``trainer.state.step`` already counts it); ``loss`` is the batch's loss."""

    def on_epoch_end(self, trainer, epoch: int, row: dict, values: dict) -> None:
        """After the epoch's evaluation and metrics row, before its checkpoint.

        ``row`` is its ``metrics.jsonl`` row, ``values`` every metric of the task by its table name
        (``train_loss``, ``val_accuracy``, ``train_r2``; val ones only on evaluated epochs).
        """

    def on_fit_end(self, trainer) -> None:
        """Training finished (all epochs, early stopping or ``should_stop``); not called on interrupt or
        divergence."""

    def close(self) -> None:
        """Always called when ``fit`` returns or raises: release files."""

    def state_dict(self) -> dict | None:
        """JSON-serialisable state carried by checkpoints (None: nothing to carry)."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`'s result (None: the checkpoint had no state for this callback)."""


def default_callbacks(trainer) -> list[Callback]:
    """The trainer's own callbacks (``train.diagnostics``)."""
    out: list[Callback] = []
    spec = trainer.spec.diagnostics
    if spec.enabled:
        from .diagnostics import Diagnostics

        out.append(Diagnostics(trainer, spec))
    return out


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
