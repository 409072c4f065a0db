"""The config schema, derived from the component declarations: one validation pass over a whole config.

:func:`validate` checks a raw (parsed, merged, overridden) config and returns it
resolved: defaults filled in, derived defaults computed (scheduler ``interval``,
a cosine's ``T_max``, the plateau metric and modes), the short forms expanded
(``loss: mse`` becomes ``{type: mse, reduction: mean}``), every problem
collected with its key path. What a loss, optimizer, scheduler, data set,
transform or layer accepts comes from its declaration (:mod:`trainkit.registry`);
only the ``train`` section and the top level are written here. Metric names come
from the one table of :mod:`trainkit.registry.tasks`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import trainkit.optim  # noqa: F401  (declares the optimizers and schedulers)
from trainkit.data.schema import check_data
from trainkit.nn import loss as _losses  # noqa: F401  (declares the losses)
from trainkit.registry import (DATASETS, INVALID, LOSSES, OPTIMIZERS, REQUIRED, SCHEDULERS, TASKS, Checker, Field,
                               Float, Int, Nullable, Record, Registry, Spec, Str, find_metric, found, metric_names,
                               unknown_key)

from .layers import validate_layer as registry_layer_check
from .sizes import ByteSize
from .model_spec import LayerValidator, check_model

__all__ = ["validate", "TOP_LEVEL", "TRAIN", "EARLY_STOPPING", "INTERVAL", "static_task", "default_loss"]

#: The default of ``validate(..., validate_layer=)``: check layers against their declarations.
DECLARED = object()


@dataclass
class Typed(Spec):
    """A ``{type: NAME, ...args}`` mapping whose allowed args come from ``NAME``'s declaration."""

    registry: Registry
    common: dict[str, Field]
    allow_str: bool = False

    def describe(self) -> str:
        return f"a mapping {{type: {'|'.join(self.registry)}, ...}}"

    def check(self, value, path, ck):
        if self.allow_str and isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        name = value.get("type")
        if "type" not in value:
            return ck.error(path, f"missing required key 'type' (one of {', '.join(self.registry)})")
        if not isinstance(name, str) or name not in self.registry:
            return ck.error(path + ("type",), self.registry.unknown(name))
        decl = self.registry[name]
        fields = {"type": Field(Str(), REQUIRED)} | decl.fields() | self.common
        return Record(fields, f"{name} {self.registry.label} mapping", decl.check).check(value, path, ck)


#: The ``interval`` every scheduler takes; its default is the scheduler's own.
INTERVAL = Field(Str(("epoch", "step"), "interval"), None,
                 "step the scheduler after every epoch or every optimizer step (default: step for onecycle, "
                 "epoch otherwise)")
LOSS = Typed(LOSSES, {}, allow_str=True)
OPTIMIZER = Typed(OPTIMIZERS, {})
SCHEDULER = Typed(SCHEDULERS, {"interval": INTERVAL})

EARLY_STOPPING = Record({
    "metric": Field(Str(), "val_loss", "metric to watch: a name from the metrics table (val_loss, "
                                       "val_accuracy, train_r2, ...)"),
    "patience": Field(Int(lo=1), 5, "epochs without improvement before stopping"),
    "min_delta": Field(Float(lo=0), 0.0, "smallest change that counts as an improvement"),
    "mode": Field(Nullable(Str(("min", "max"), "mode")), None,
                  "min or max; null: from the metric (max for accuracy and r2, min otherwise)"),
}, "early_stopping mapping")

TRAIN = Record({
    "epochs": Field(Int(lo=1), 10, "passes over the training set"),
    "early_stopping": Field(Nullable(EARLY_STOPPING), None, "null: train all epochs"),
    "grad_clip": Field(Nullable(Float(lo=0, lo_open=True)), None,
                       "clip the global gradient L2 norm to this; null: no clipping"),
    "eval_every": Field(Int(lo=1), 1, "evaluate on the validation set every N epochs"),
    "checkpoint_every": Field(Int(lo=1), 1, "write a checkpoint every N epochs"),
    "log_every": Field(Int(lo=1), 50, "log training loss every N optimizer steps"),
    "max_memory": Field(Nullable(ByteSize()), None,
                        "memory budget checked before anything is built: the model's parameters, gradients, "
                        "optimizer state and a batch's activations, and generated data, estimated from the "
                        "config (8GiB, 500MB or bytes); null: 80% of this machine's memory (its cgroup limit "
                        "if lower)"),
}, "train mapping")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Largest run seed: the generators take 64-bit seeds (as torch.manual_seed does).
MAX_SEED = 2 ** 64 - 1
TOP_LEVEL = ("name", "seed", "data", "model", "loss", "optimizer", "scheduler", "train")


def static_task(data) -> str | None:
    """The task a resolved ``data`` section implies without reading data (None: the data decides)."""
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str) or data["dataset"] not in DATASETS:
        return None
    decl = DATASETS[data["dataset"]]
    args = {k: data.get(k) for k in decl.arguments}
    if INVALID in args.values():
        return None
    return decl.static_task(args)


def default_loss(task: str | None) -> str:
    """The loss a task trains with unless the config names one (classification's when unknown)."""
    return TASKS[task or "classification"].default_loss


def check_metric(value: dict, path: tuple, ck: Checker, task: str | None) -> None:
    """Check a ``metric`` (against ``task``'s metrics when known) and fill a null ``mode`` from it."""
    metric = value["metric"]
    if metric is INVALID:
        return
    known = metric_names(task)
    if find_metric(metric, task) is None:
        ck.error(path + ("metric",), f"unknown metric {found(metric, bare=True)} "
                                     f"(known{' for ' + task if task else ''}: {', '.join(known)})")
    elif value.get("mode") is None:
        value["mode"] = find_metric(metric, task)[1].mode


def validate(raw: dict, default_name: str, validate_layer: LayerValidator | None | object = DECLARED
             ) -> tuple[dict, list[tuple[tuple, str]]]:
    """Check a raw config; return ``(resolved, problems)`` where problems are ``(path, message)``.

    ``validate_layer`` checks each layer's type and arguments: by default against
    the layer declarations; None skips it, a function replaces it.
    ``resolved`` holds :data:`INVALID` where a value had a problem; it is only
    meaningful when ``problems`` is empty.
    """
    if validate_layer is DECLARED:
        validate_layer = registry_layer_check
    ck = Checker()
    if not isinstance(raw, dict):
        ck.error((), f"a config must be a mapping of keys ({', '.join(TOP_LEVEL)}), found {found(raw)}")
        return {}, ck.problems
    for key in raw:
        if key not in TOP_LEVEL:
            ck.error((key,), unknown_key(key, TOP_LEVEL))
    out: dict = {}
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        ck.error(("name",), "expected a name of letters, digits, '_', '-', '.' (it names run "
                            f"directories), found {found(name)}")
    out["name"] = name
    out["seed"] = Int(lo=0, hi=MAX_SEED).check(raw.get("seed", 0), ("seed",), ck)
    if "data" not in raw:
        ck.error((), "missing required key 'data' (a mapping with at least 'dataset')")
        data = INVALID
    else:
        data = check_data(raw["data"], ("data",), ck)
    out["data"] = data
    task = static_task(data)
    if "model" not in raw:
        ck.error((), "missing required key 'model' (a mapping with 'layers' or 'graph')")
        out["model"] = INVALID
    else:
        out["model"] = check_model(raw["model"], ("model",), ck, validate_layer)
    out["loss"] = LOSS.check(raw.get("loss", default_loss(task)), ("loss",), ck)
    if task == "language_model" and isinstance(out["loss"], dict) and LOSSES[out["loss"]["type"]].target != "classes":
        fitting = ", ".join(n for n, d in LOSSES.items() if d.target == "classes")
        ck.error(("loss",), f"a language model predicts token ids: its loss compares logits with class indices "
                            f"({fitting}), not {out['loss']['type']}")
    if "optimizer" not in raw:
        ck.error((), "missing required key 'optimizer' (e.g. {type: sgd, lr: 0.01})")
        out["optimizer"] = INVALID
    else:
        out["optimizer"] = OPTIMIZER.check(raw["optimizer"], ("optimizer",), ck)
    out["train"] = train = TRAIN.check(raw.get("train"), ("train",), ck)
    if isinstance(train, dict) and isinstance(train.get("early_stopping"), dict):
        check_metric(train["early_stopping"], ("train", "early_stopping"), ck, task)
    out["scheduler"] = _check_scheduler(raw.get("scheduler"), ("scheduler",), ck, train, task, parent=None)
    _check_momentum_cycling(out["scheduler"], out["optimizer"], ("scheduler",), ck)
    return {k: out[k] for k in TOP_LEVEL}, ck.problems


def _check_momentum_cycling(sched, opt, path, ck) -> None:
    """A scheduler cycling momentum (onecycle, cyclic) needs an optimizer that has one (momentum or betas)."""
    if not isinstance(sched, dict) or not isinstance(opt, dict):
        return
    for i, child in enumerate(sched.get("schedulers") or ()):
        _check_momentum_cycling(child, opt, path + ("schedulers", i), ck)
    if sched.get("cycle_momentum") and not ({"momentum", "betas"} & set(opt)):
        ck.error(path + ("cycle_momentum",), f"optimizer '{opt.get('type')}' has no momentum or betas to cycle; "
                                             "set cycle_momentum: false")


def _check_scheduler(value, path, ck, train, task, parent: str | None):
    """Check a scheduler (recursively inside ``parent``) and fill in the run-dependent defaults."""
    nested = parent is not None
    if value is None and not nested:
        return None
    out = SCHEDULER.check(value, path, ck)
    if out is INVALID:
        return out
    decl = SCHEDULERS[out["type"]]
    if nested:
        if value.get("interval") is not None:
            ck.error(path + ("interval",), f"set interval on the {parent} scheduler, not inside it")
        if decl.nested or decl.watches_metric:
            ck.error(path + ("type",), f"'{decl.name}' cannot be chained inside a {parent} scheduler")
        del out["interval"]
    elif out["interval"] is None:
        out["interval"] = decl.interval
    if decl.watches_metric:
        if not nested and out["interval"] != "epoch":
            ck.error(path + ("interval",), f"{decl.name} watches a per-epoch metric; interval must be epoch")
        if out["metric"] is None:
            out["metric"] = "val_loss"
        check_metric(out, path, ck, task)
    interval = out.get("interval", "epoch")
    if decl.run_length and out[decl.run_length] is None and interval == "epoch" and isinstance(train, dict) \
            and isinstance(train.get("epochs"), int):
        out[decl.run_length] = train["epochs"]
    if decl.nested:
        subs = value.get(decl.nested)
        if not isinstance(subs, list) or len(subs) < 2:
            ck.error(path + (decl.nested,), f"expected a list of at least 2 schedulers, found {found(subs)}")
            return INVALID
        out[decl.nested] = [_check_scheduler(s, path + (decl.nested, i), ck, train, task, decl.name)
                            for i, s in enumerate(subs)]
    return out
