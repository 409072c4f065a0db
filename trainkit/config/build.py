"""Builders: a validated :class:`~trainkit.config.Config` to model, loss, optimizer and scheduler.

    config = load_config("configs/cifar_cnn.yaml", validate_layer=validate_layer)
    model = build_model(config, bundle.input_shape, num_classes=bundle.num_classes)
    loss_fn = build_loss(config)
    optimizer = build_optimizer(config, model)
    schedule = build_scheduler(config, optimizer, steps_per_epoch=len(train_loader))

Scheduler ``interval`` semantics: with ``interval: epoch`` (the default except
for ``onecycle``) the trainer calls :meth:`Schedule.after_epoch` once per
epoch and every count in the scheduler's arguments (``step_size``,
``milestones``, ``T_max``, ``total_iters``) is in epochs; with ``interval:
step`` it calls :meth:`Schedule.after_step` after every optimizer step and the
counts are optimizer steps. ``T_max``/``total_steps`` left null cover the
whole run in the chosen unit. ``plateau`` always steps per epoch, on the
metric it watches (default ``val_loss``, else ``train_loss`` without a
validation split).
"""
from __future__ import annotations

from dataclasses import dataclass

from trainkit.config.graph import GraphModule, ModelPlan, instantiate, output_problem, plan_model
from trainkit.config.schema import IMAGE_DATASETS
from trainkit.nn.container import Sequential
from trainkit.nn.module import Module
from trainkit.nn.registry import LOSSES

__all__ = ["build_model", "build_model_and_plan", "build_loss", "build_optimizer", "build_scheduler",
           "Schedule", "static_input_shape"]


def build_model(config, input_shape, num_classes: int | None = None) -> Module:
    """The model of ``config`` for samples of ``input_shape`` (e.g. ``(3, 32, 32)``).

    A ``layers`` list gives an ``nn.Sequential`` (state_dict keys ``0.weight``,
    ``3.bias``, ... as PyTorch's); a ``graph`` gives a :class:`GraphModule`
    (keys ``stem.weight``). With ``num_classes`` (and a classification loss)
    the output must have that many values per sample.

    Raises:
        ConfigError: every layer problem at once, each at its YAML line.
    """
    return build_model_and_plan(config, input_shape, num_classes)[0]


def build_model_and_plan(config, input_shape, num_classes: int | None = None
                         ) -> tuple[Module, ModelPlan]:
    """:func:`build_model` that also returns the checked plan (shapes, multiply-adds)."""
    plan = plan_model(config, input_shape)
    output_problem(config, plan, num_classes)
    built = instantiate(plan)
    if plan.sequential:
        model = Sequential(*[m for _, m, _ in built])
    else:
        model = GraphModule(built, plan.output)
    return model, plan


def static_input_shape(config) -> tuple[int, ...] | None:
    """The per-sample input shape known from the config alone, or None (csv, npz: read the file).

    Lets ``trainkit summary`` work before a dataset is downloaded.
    """
    data = config["data"]
    name = data["dataset"]
    if name in IMAGE_DATASETS:
        c, side = IMAGE_DATASETS[name]
        return (c, side, side)
    if name == "iris":
        return (4,)
    if name == "diabetes":
        return (10,)
    if name == "linear":
        return (int(data.get("n_features", 1)),)
    return None


def build_loss(config) -> Module:
    """The loss module of ``config["loss"]`` (e.g. ``CrossEntropyLoss(label_smoothing=0.1)``)."""
    spec = dict(config["loss"])
    cls = LOSSES[spec.pop("type")]
    return cls(**spec)


def build_optimizer(config, model: Module):
    """The optimizer of ``config["optimizer"]`` over ``model.parameters()``."""
    from trainkit import optim

    spec = dict(config["optimizer"])
    kind = spec.pop("type")
    classes = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    return classes[kind](model.parameters(), **spec)


@dataclass
class Schedule:
    """A learning-rate scheduler and when to step it.

    Attributes:
        scheduler: the ``trainkit.optim.lr_scheduler`` object (its ``state_dict``
            goes into checkpoints).
        interval: ``"epoch"`` or ``"step"`` (see the module docstring).
        metric: the metric a ``plateau`` scheduler watches (None otherwise).
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
            value = metrics.get("train_loss")  # no validation split: watch the training loss
        if value is None:
            raise KeyError(f"plateau scheduler watches '{self.metric}', which this epoch did not "
                           f"report (metrics: {', '.join(metrics)})")
        self.scheduler.step(value)

    def state_dict(self) -> dict:
        """The scheduler's JSON-able state."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore the scheduler's state."""
        self.scheduler.load_state_dict(state)


def build_scheduler(config, optimizer, steps_per_epoch: int) -> Schedule | None:
    """The scheduler of ``config["scheduler"]`` (None when there is none).

    ``steps_per_epoch`` (optimizer steps per epoch) turns null ``T_max`` and
    ``total_steps`` into the length of the whole run in the scheduler's unit.
    """
    spec = config["scheduler"]
    if spec is None:
        return None
    interval = spec.get("interval") or ("step" if spec["type"] == "onecycle" else "epoch")
    epochs = int(config["train"]["epochs"])
    run_length = epochs * max(int(steps_per_epoch), 1) if interval == "step" else epochs
    sched = _make(spec, optimizer, run_length)
    metric = None
    if spec["type"] == "plateau":
        metric = spec.get("metric") or "val_loss"
    return Schedule(sched, interval, metric)


def _make(spec: dict, optimizer, run_length: int):
    from trainkit.optim import lr_scheduler as ls

    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k not in ("type", "interval")}
    if kind == "step":
        return ls.StepLR(optimizer, **args)
    if kind == "multistep":
        return ls.MultiStepLR(optimizer, **args)
    if kind == "exponential":
        return ls.ExponentialLR(optimizer, **args)
    if kind == "cosine":
        args["T_max"] = args.get("T_max") or run_length
        return ls.CosineAnnealingLR(optimizer, **args)
    if kind == "linear":
        return ls.LinearLR(optimizer, **args)
    if kind == "onecycle":
        args["total_steps"] = args.get("total_steps") or run_length
        return ls.OneCycleLR(optimizer, **args)
    if kind == "plateau":
        args.pop("metric", None)
        return ls.ReduceLROnPlateau(optimizer, **args)
    if kind == "sequential":
        subs = [_make(s, optimizer, run_length) for s in args["schedulers"]]
        return ls.SequentialLR(optimizer, subs, list(args["milestones"]))
    raise ValueError(f"unknown scheduler type {kind!r}")  # the schema refuses these earlier
