"""The typed, immutable resolved config that the builders and the trainer read.

:func:`~trainkit.config.load_config` validates a YAML file once and keeps two
views of the result: ``Config.data``, plain dicts and lists (what is written to
the run directory as ``config.yaml`` and hashed), and ``Config.resolved``, a
:class:`RunConfig` of frozen dataclasses read by attribute
(``config.resolved.train.epochs``) instead of by string keys. Every default and
derived default is already in both: nothing downstream fills one in.

Frozen dataclasses rather than pydantic: pydantic is not a dependency, and the
validation itself is trainkit's own (it reports every problem at FILE:LINE:COL
with trainkit's messages, which pydantic's errors would have to be translated
into); what is needed here is only an immutable, typed record of its result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from trainkit.data.schema import DataSpec, freeze
from trainkit.registry import LOSSES, OPTIMIZERS, SCHEDULERS

from .model_spec import ModelNode, expand_model

__all__ = ["RunConfig", "ComponentSpec", "SchedulerSpec", "TrainSpec", "EarlyStoppingSpec", "ModelSpec"]


@dataclass(frozen=True)
class ComponentSpec:
    """A loss or an optimizer: its declared ``type`` and resolved arguments."""

    kind: str
    type: str
    args: Mapping[str, Any]

    @property
    def declaration(self):
        """The component's declaration."""
        return (LOSSES if self.kind == "loss" else OPTIMIZERS)[self.type]


@dataclass(frozen=True)
class SchedulerSpec:
    """A scheduler: ``type``, constructor arguments, when it steps and, for composites, its children.

    ``metric`` is the metric a metric-watching scheduler steps on (plateau);
    ``children`` the nested schedulers of a composite (sequential), which step
    with their parent (``interval`` None).
    """

    type: str
    args: Mapping[str, Any]
    interval: str | None
    metric: str | None
    children: tuple["SchedulerSpec", ...]

    @property
    def declaration(self):
        """The scheduler's declaration."""
        return SCHEDULERS[self.type]

    @classmethod
    def from_resolved(cls, data: Mapping) -> "SchedulerSpec":
        """The typed form of a validated scheduler mapping."""
        decl = SCHEDULERS[data["type"]]
        skip = {"type", "interval"} | ({"metric"} if decl.watches_metric else set()) | (
            {decl.nested} if decl.nested else set())
        children = tuple(cls.from_resolved(s) for s in data[decl.nested]) if decl.nested else ()
        return cls(data["type"], freeze({k: v for k, v in data.items() if k not in skip}), data.get("interval"),
                   data.get("metric") if decl.watches_metric else None, children)


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Stop when ``metric`` has not improved by ``min_delta`` (in ``mode``) for ``patience`` epochs."""

    metric: str
    patience: int
    min_delta: float
    mode: str


@dataclass(frozen=True)
class TrainSpec:
    """The ``train`` section."""

    epochs: int
    early_stopping: EarlyStoppingSpec | None
    grad_clip: float | None
    eval_every: int
    checkpoint_every: int
    log_every: int
    max_memory: int | None = None

    @classmethod
    def from_resolved(cls, data: Mapping) -> "TrainSpec":
        """The typed form of a validated ``train`` mapping."""
        es = data["early_stopping"]
        return cls(data["epochs"], EarlyStoppingSpec(**es) if es else None, data["grad_clip"], data["eval_every"],
                   data["checkpoint_every"], data["log_every"], data.get("max_memory"))


@dataclass(frozen=True)
class ModelSpec:
    """The ``model`` section: its nodes in evaluation order (both forms), the output, the form."""

    nodes: tuple[ModelNode, ...]
    output: str
    sequential: bool

    @classmethod
    def from_resolved(cls, data: Mapping) -> "ModelSpec":
        """The typed form of a validated ``model`` mapping."""
        nodes, output = expand_model(data)
        return cls(tuple(nodes), output, "layers" in data)


@dataclass(frozen=True)
class RunConfig:
    """A whole resolved config.

    ``task`` is ``classification``/``regression`` when the config alone decides
    it, None when the data does (a CSV with ``task: null``).
    """

    name: str
    seed: int
    data: DataSpec
    model: ModelSpec
    loss: ComponentSpec
    optimizer: ComponentSpec
    scheduler: SchedulerSpec | None
    train: TrainSpec
    task: str | None

    @classmethod
    def from_resolved(cls, data: Mapping) -> "RunConfig":
        """The typed form of a validated config (``Config.data``)."""
        spec = DataSpec.from_resolved(data["data"])

        def component(kind, d):
            return ComponentSpec(kind, d["type"], freeze({k: v for k, v in d.items() if k != "type"}))

        sched = data["scheduler"]
        return cls(data["name"], data["seed"], spec, ModelSpec.from_resolved(data["model"]),
                   component("loss", data["loss"]), component("optimizer", data["optimizer"]),
                   SchedulerSpec.from_resolved(sched) if sched is not None else None,
                   TrainSpec.from_resolved(data["train"]), spec.static_task())
