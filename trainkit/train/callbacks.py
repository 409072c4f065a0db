"""The trainer's extension point: callbacks that watch training without changing it.

A :class:`Callback` gets the :class:`~trainkit.train.trainer.Trainer` at a few
points of the loop (named as in Lightning) and may read anything on it — the
model, the optimizer, the loop state, the run directory — but must not change
what training computes: it must not draw from the global RNG, advance a data
loader or touch parameters and gradients. Its :meth:`Callback.state_dict` goes
into every checkpoint (under ``callbacks.<name>`` of ``state.json``), so a
resumed run continues a callback exactly where the interrupted one stopped,
mid-epoch included.

:func:`default_callbacks` builds those the config asks for (today the
per-layer diagnostics of :mod:`trainkit.train.diagnostics`); a TensorBoard
writer is meant to be one more callback here, and can also subscribe to the
diagnostics' per-epoch arrays (``Diagnostics.add_sink``) for its histograms.
"""
from __future__ import annotations

__all__ = ["Callback", "default_callbacks"]


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

    def on_train_batch_end(self, trainer) -> None:
        """The optimizer stepped (``trainer.state.step`` already counts it)."""

    def on_epoch_end(self, trainer, epoch: int, row: dict) -> None:
        """After the epoch's evaluation and metrics row (``row``), before its checkpoint."""

    def on_fit_end(self, trainer) -> None:
        """Training finished (all epochs or early stopping); not called on interrupt or divergence."""

    def state_dict(self) -> dict | None:
        """JSON-serialisable state carried by checkpoints (None: nothing to carry)."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`'s result (None: the checkpoint had no state for this callback)."""


def default_callbacks(trainer) -> list[Callback]:
    """The callbacks a run's config asks for (``train.diagnostics`` ...)."""
    out: list[Callback] = []
    spec = trainer.spec.diagnostics
    if spec.enabled:
        from .diagnostics import Diagnostics

        out.append(Diagnostics(trainer, spec))
    return out
