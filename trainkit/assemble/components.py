"""Builders of the loss, the optimizer and the scheduler, from the typed config and the declarations.

    loss_fn = build_loss(config)
    optimizer = build_optimizer(config, model)
    schedule = build_scheduler(config, optimizer, steps_per_epoch=len(train_loader))

Each builder looks the ``type`` up in its registry and calls the declared class
with the resolved arguments; nothing here lists components.

Scheduler ``interval`` semantics: with ``interval: epoch`` (the default except
for ``onecycle``) the trainer calls :meth:`Schedule.after_epoch` once per
epoch and every count in the scheduler's arguments (``step_size``,
``milestones``, ``T_max``, ``total_iters``) is in epochs; with ``interval:
step`` it calls :meth:`Schedule.after_step` after every optimizer step and the
counts are optimizer steps. The argument a scheduler declares as its
``run_length`` (``T_max``, ``total_steps``), left null, covers the whole run in
the chosen unit. A metric-watching scheduler (``plateau``) always steps per
epoch, on the metric the config names (``val_loss`` by default; the training
loss when the run has neither a validation nor a test split).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from trainkit.config.resolved import SchedulerSpec
from trainkit.data.schema import thaw
from trainkit.nn.module import Module

__all__ = ["build_loss", "build_optimizer", "build_scheduler", "Schedule", "PerTokenLoss"]


def _tuples_where_tuples(cls, args: dict) -> dict:
    """Lists become tuples where the constructor's default is a tuple (Adam's ``betas``), as PyTorch stores them."""
    params = inspect.signature(cls).parameters
    return {k: tuple(v) if isinstance(v, list) and k in params and isinstance(params[k].default, tuple) else v
            for k, v in args.items()}


class PerTokenLoss(Module):
    """A loss over classes applied at every position of a sequence: the loss of a language model.

    The model's logits ``(N, T, V)`` and the targets ``(N, T)`` are flattened to
    ``(N*T, V)`` and ``(N*T,)`` for the wrapped loss, as nanoGPT and PyTorch's
    word_language_model do, so a ``mean`` reduction is the mean loss per token.
    """

    def __init__(self, loss: Module):
        super().__init__()
        self.loss = loss

    def forward(self, input, target):  # noqa: A002 - PyTorch's argument name
        return self.loss(input.reshape(-1, input.shape[-1]), target.reshape(-1))


def build_loss(config) -> Module:
    """The loss module of the config (e.g. ``CrossEntropyLoss(label_smoothing=0.1)``).

    For a language model it is applied per token (:class:`PerTokenLoss`).
    """
    spec = config.resolved.loss
    loss = spec.declaration.cls(**thaw(spec.args))
    return PerTokenLoss(loss) if config.resolved.task == "language_model" else loss


def build_optimizer(config, model: Module):
    """The optimizer of the config over ``model.parameters()``."""
    spec = config.resolved.optimizer
    cls = spec.declaration.cls
    return cls(model.parameters(), **_tuples_where_tuples(cls, thaw(spec.args)))


@dataclass
class Schedule:
    """A learning-rate scheduler and when to step it.

    Attributes:
        scheduler: the ``trainkit.optim.lr_scheduler`` object (its ``state_dict``
            goes into checkpoints).
        interval: ``"epoch"`` or ``"step"`` (see the module docstring).
        metric: the metric a metric-watching scheduler steps on (None otherwise).
    """

    scheduler: object
    interval: str
    metric: str | None = None

    def after_step(self) -> None:
        """Call after every optimizer step; steps the scheduler when ``interval`` is step."""
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, metrics: dict | None = None) -> None:
        """Call after every epoch with its metrics (``{"val_loss": ..., "train_loss": ...}``)."""
        if self.interval != "epoch":
            return
        if self.metric is None:
            self.scheduler.step()
            return
        metrics = metrics or {}
        value = metrics.get(self.metric)
        if value is None and self.metric == "val_loss":
            value = metrics.get("train_loss")  # no validation nor test split: watch the training loss
        if value is None:
            raise KeyError(f"scheduler watches '{self.metric}', which this epoch did not report "
                           f"(metrics: {', '.join(metrics)})")
        self.scheduler.step(value)

    def state_dict(self) -> dict:
        """The scheduler's JSON-able state."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore the scheduler's state."""
        self.scheduler.load_state_dict(state)


def build_scheduler(config, optimizer, steps_per_epoch: int) -> Schedule | None:
    """The scheduler of the config (None when there is none).

    ``steps_per_epoch`` (optimizer steps per epoch) turns a null run-length
    argument into the length of the whole run in the scheduler's unit.
    """
    spec = config.resolved.scheduler
    if spec is None:
        return None
    epochs = config.resolved.train.epochs
    run_length = epochs * max(int(steps_per_epoch), 1) if spec.interval == "step" else epochs
    return Schedule(make_scheduler(spec, optimizer, run_length), spec.interval, spec.metric)


def make_scheduler(spec: SchedulerSpec, optimizer, run_length: int):
    """The scheduler object of ``spec`` (composites build their children first)."""
    decl = spec.declaration
    args = thaw(spec.args)
    if decl.run_length and not args.get(decl.run_length):
        args[decl.run_length] = run_length
    if decl.nested:
        args[decl.nested] = [make_scheduler(child, optimizer, run_length) for child in spec.children]
    return decl.cls(optimizer=optimizer, **args)
