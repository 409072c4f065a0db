"""Evaluation of a model over a loader, shared by the trainer, the final report and ``trainkit eval``."""
from __future__ import annotations

from ..autograd.function import no_grad
from .carry import carry_hidden
from .metrics import make_meter


def align_target(outputs, targets):
    """Regression targets shaped like the outputs ((N,) vs (N, 1)), so losses don't broadcast."""
    if targets.dtype.kind == "f" and targets.shape != outputs.shape and targets.numel() == outputs.numel():
        return targets.reshape(outputs.shape)
    return targets


def evaluate(model, loader, loss_fn, task: str, num_classes: int | None, options: dict | None = None):
    """Mean loss and metrics of ``model`` on every batch of ``loader`` (eval mode, no graph).

    ``options`` are the meter's (see :func:`~trainkit.train.metrics.make_meter`); a BPTT
    stream's recurrent state is carried from batch to batch, starting from zeros.
    """
    meter = make_meter(task, num_classes, options)
    was_training = model.training
    model.eval()
    try:
        with no_grad(), carry_hidden(model, loader):
            for x, y in loader:
                out = model(x)
                y = align_target(out, y)
                loss = loss_fn(out, y)
                meter.update(loss.item(), out.numpy(), y.numpy())
    finally:
        model.train(was_training)
    return meter
