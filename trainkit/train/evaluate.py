"""Evaluation of a model over a loader, shared by the trainer, the final report and ``trainkit eval``."""
from __future__ import annotations

from ..autograd.function import no_grad
from ..nn.module import Module
from .carry import carry_hidden
from .metrics import make_meter


def align_target(outputs, targets):
    """Regression targets shaped like the outputs ((N,) vs (N, 1)), so losses don't broadcast."""
    if targets.dtype.kind == "f" and targets.shape != outputs.shape and targets.numel() == outputs.numel():
        return targets.reshape(outputs.shape)
    return targets


class MirrorAverage(Module):
    """Horizontal-flip test-time augmentation as a module: the mean of ``model``'s outputs for the images and
    for their mirror images (the last axis reversed), as the fast-CIFAR recipes evaluate. Made of engine ops,
    so that ``trainkit export`` writes it into the ONNX graph too."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.training = model.training  # in the mode of the model it wraps (model.train() sets both)

    def forward(self, x):
        return (self.model(x) + self.model(x.flip(-1))) * 0.5


def with_tta(model, tta: str = "none"):
    """``model`` as evaluated under ``data.tta``: itself for ``none``, wrapped in :class:`MirrorAverage` for
    ``hflip`` (the wrapper holds no weights of its own)."""
    return MirrorAverage(model) if tta == "hflip" else model


def evaluate(model, loader, loss_fn, task: str, num_classes: int | None, options: dict | None = None,
             tta: str = "none"):
    """Mean loss and metrics of ``model`` on every batch of ``loader`` (eval mode, no graph).

    ``options`` are the meter's (see :func:`~trainkit.train.metrics.make_meter`); a BPTT
    stream's recurrent state is carried from batch to batch, starting from zeros. ``tta``
    is ``data.tta`` (see :func:`with_tta`): the loss and metrics are those of the averaged outputs.
    """
    meter = make_meter(task, num_classes, options)
    net = with_tta(model, tta)  # wrapped once, not per batch
    was_training = model.training
    model.eval()
    try:
        with no_grad(), carry_hidden(model, loader):
            for x, y in loader:
                out = net(x)
                y = align_target(out, y)
                loss = loss_fn(out, y)
                meter.update(loss.item(), out.numpy(), y.numpy())
    finally:
        model.train(was_training)
    return meter
