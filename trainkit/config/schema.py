"""The config schema: every key trainkit reads, its type, range and default.

The tables below are the single source of truth for ``docs/config.md`` and for
did-you-mean lists. :func:`validate` checks a raw (parsed, merged, overridden)
config and returns it resolved: defaults filled in, the short forms expanded
(``loss: mse`` becomes ``{type: mse, reduction: mean}``), every problem collected.
Layer types and their arguments are *not* checked here; the graph builder does
that through the layer registry (see :mod:`trainkit.config.model_spec`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from trainkit.config.model_spec import LayerValidator, check_model
from trainkit.config.spec import (INVALID, REQUIRED, AnyOf, Bool, Checker, Field, Float, Int,
                                  ListOf, Nullable, Raw, Record, Spec, Str, found, unknown_key,
                                  unknown_name)

# ----------------------------------------------------------------------------- data
#: Image datasets: (channels, height/width). ``digits`` is sklearn's embedded 8x8 set.
IMAGE_DATASETS = {"cifar10": (3, 32), "cifar100": (3, 32), "mnist": (1, 28),
                  "fashion_mnist": (1, 28), "digits": (1, 8)}
#: Datasets fetched over the network into ``root`` (they take ``root`` and ``download``).
DOWNLOADABLE = ("cifar10", "cifar100", "mnist", "fashion_mnist")
REGRESSION_DATASETS = ("diabetes", "linear")
DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "digits", "iris", "diabetes",
            "linear", "csv", "npz")

DATA_COMMON = {
    "dataset": Field(Str(DATASETS, "dataset"), REQUIRED, "which dataset to train on"),
    "val_split": Field(Float(0, 1, hi_open=True), 0.0,
                       "fraction of the training set held out for validation, in [0, 1)"),
    "batch_size": Field(Int(lo=1), 32, "samples per training batch"),
    "shuffle": Field(Bool(), True, "reshuffle the training set every epoch"),
    "transforms": Field(Raw(), list, "train-time transforms, in order (see below)"),
    "drop_last": Field(Bool(), False, "drop the last incomplete training batch"),
}
#: Keys that only some datasets take: key -> (field, datasets taking it).
DATA_SPECIFIC = {
    "root": (Field(Nullable(Str()), None, "download/cache folder; null: $TRAINKIT_DATA, "
                   "else ~/.cache/trainkit/datasets"), DOWNLOADABLE),
    "download": (Field(Bool(), True, "fetch the files when they are missing"), DOWNLOADABLE),
    "path": (Field(Str(), REQUIRED, "the data file, relative to the working directory"),
             ("csv", "npz")),
    "target": (Field(Str(), REQUIRED, "name of the target column"), ("csv",)),
    "features": (Field(Nullable(ListOf(Str(), min_len=1)), None,
                       "names of the feature columns; null: every column except the target"), ("csv",)),
    "task": (Field(Nullable(Str(("classification", "regression"), "task")), None,
                   "classification or regression; null: guessed from the targets (integers: "
                   "classification)"), ("csv", "npz")),
    "n_samples": (Field(Int(lo=2), 200, "number of generated samples"), ("linear",)),
    "n_features": (Field(Int(lo=1), 1, "number of input features"), ("linear",)),
    "noise": (Field(Float(lo=0), 0.1, "standard deviation of the Gaussian label noise"),
              ("linear",)),
    "seed": (Field(Int(lo=0), 0, "seed of the generated problem (independent of the run seed)"),
             ("linear",)),
    "test_split": (Field(Float(0, 1, lo_open=True, hi_open=True), 0.2,
                         "fraction held out as the test set (seeded, stratified for classification) when "
                         "the data has no test part"), ("digits", "iris", "diabetes", "linear", "csv", "npz")),
    "test_path": (Field(Nullable(Str()), None, "a CSV file with the same columns used as the test set; "
                        "null: hold out test_split"), ("csv",)),
}

_SIZE = AnyOf((Int(lo=1), ListOf(Int(lo=1), length=2)), "an integer >= 1 or a list [height, width]")
_FLOATS = AnyOf((Float(), ListOf(Float(), min_len=1)), "a number or a list of numbers")
TRANSFORMS = {
    "normalize": Record({"mean": Field(Nullable(_FLOATS), None, "per-channel (or per-feature) "
                                       "mean subtracted; null: computed from the training set"),
                         "std": Field(Nullable(_FLOATS), None, "per-channel std divided by (> 0); "
                                      "null: computed from the training set")},
                        "normalize mapping"),
    "random_crop": Record({"size": Field(Nullable(_SIZE), None, "output size; null: the image size"),
                           "padding": Field(Int(lo=0), 0, "zero padding added on each side first")},
                          "random_crop mapping"),
    "random_horizontal_flip": Record({"p": Field(Float(0, 1), 0.5, "flip probability, in [0, 1]")},
                                     "random_horizontal_flip mapping"),
}
IMAGE_TRANSFORMS = ("random_crop", "random_horizontal_flip")


def _check_transforms(value, path, ck: Checker, dataset: str | None) -> list:
    """Each item is a bare name or ``{name: {args}}``; returns them all as ``{name: {args}}``."""
    if value is None:
        return []
    if not isinstance(value, list):
        return ck.error(path, f"expected a list of transforms, found {found(value)}")
    out = []
    for i, item in enumerate(value):
        ipath = path + (i,)
        if isinstance(item, str):
            name, args, apath = item, None, ipath
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
            apath = ipath + (name,)
        else:
            ck.error(ipath, "expected a transform name or a one-key mapping "
                            f"'name: {{args}}', found {found(item)}")
            continue
        if name not in TRANSFORMS:
            ck.error(ipath, unknown_name("transform", name, tuple(TRANSFORMS)))
            continue
        args = TRANSFORMS[name].check(args, apath, ck)
        if args is INVALID or INVALID in args.values():
            continue
        if name in IMAGE_TRANSFORMS and dataset is not None and dataset not in IMAGE_DATASETS \
                and dataset != "npz":
            ck.error(ipath, f"transform '{name}' needs image data; dataset '{dataset}' is not images")
        if name == "normalize":
            _check_normalize(args, apath, ck, dataset)
        if name == "random_crop" and dataset in IMAGE_DATASETS and args["size"] is not None:
            side = IMAGE_DATASETS[dataset][1]
            size = args["size"] if isinstance(args["size"], list) else [args["size"]] * 2
            if max(size) > side + 2 * args["padding"]:
                ck.error(apath + ("size",), f"crop {size} is larger than the {dataset} image "
                         f"({side}x{side}) plus padding {args['padding']}")
        out.append({name: args})
    return out


def _check_normalize(args: dict, path: tuple, ck: Checker, dataset: str | None) -> None:
    mean, std = args["mean"], args["std"]
    std_list = std if isinstance(std, list) else [] if std is None else [std]
    if any(s <= 0 for s in std_list):
        ck.error(path + ("std",), f"every std must be > 0, found {std}")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) != len(std):
        ck.error(path, f"mean has {len(mean)} values but std has {len(std)}")
    if dataset in IMAGE_DATASETS:
        channels = IMAGE_DATASETS[dataset][0]
        for key in ("mean", "std"):
            if isinstance(args[key], list) and len(args[key]) not in (1, channels):
                ck.error(path + (key,), f"has {len(args[key])} values; {dataset} images have "
                                        f"{channels} channel(s)")


def check_data(value, path, ck: Checker) -> dict:
    """The ``data`` section; which keys are allowed depends on ``dataset``."""
    if not isinstance(value, dict):
        return ck.error(path, f"expected a mapping with at least 'dataset', found {found(value)}")
    dataset = value.get("dataset")
    fields = dict(DATA_COMMON)
    known_ds = isinstance(dataset, str) and dataset in DATASETS
    for key, (f, takers) in DATA_SPECIFIC.items():
        if known_ds and dataset in takers:
            fields[key] = f
    for key in value:
        if key in DATA_SPECIFIC and key not in fields:
            if known_ds:
                ck.error(path + (key,), f"key '{key}' does not apply to dataset '{dataset}' "
                                        f"(it is for {', '.join(DATA_SPECIFIC[key][1])})")
        elif key not in fields:
            ck.error(path + (key,), unknown_key(key, list(fields) + [
                k for k in DATA_SPECIFIC if k not in fields]))
    present = {k: v for k, v in value.items() if k in fields}
    out = Record(fields, "data mapping").check(present, path, ck)
    out["transforms"] = _check_transforms(value.get("transforms"), path + ("transforms",), ck,
                                          dataset if known_ds else None)
    return out


# ----------------------------------------------------------------------------- loss
_REDUCTION = Field(Str(("mean", "sum"), "reduction"), "mean", "mean or sum over the batch")
LOSSES = {
    "cross_entropy": {"label_smoothing": Field(Float(0, 1, hi_open=True), 0.0,
                                               "label smoothing, in [0, 1)"),
                      "reduction": _REDUCTION},
    "nll": {"reduction": _REDUCTION},
    "mse": {"reduction": _REDUCTION},
    "l1": {"reduction": _REDUCTION},
    "bce_with_logits": {"reduction": _REDUCTION},
}

# ----------------------------------------------------------------------------- optimizers
_LR = lambda default: Field(Float(lo=0, lo_open=True), default, "learning rate (> 0)")  # noqa: E731
_WD = Field(Float(lo=0), 0.0, "L2 penalty (>= 0)")
_EPS = Field(Float(lo=0, lo_open=True), 1e-8, "added to the denominator (> 0)")
_BETAS = Field(ListOf(Float(0, 1, hi_open=True), length=2), [0.9, 0.999],
               "[beta1, beta2], each in [0, 1)")
OPTIMIZERS = {
    "sgd": {"lr": _LR(0.001), "momentum": Field(Float(0, 1, hi_open=True), 0.0, "in [0, 1)"),
            "dampening": Field(Float(0, 1), 0.0, "in [0, 1]"), "weight_decay": _WD,
            "nesterov": Field(Bool(), False, "Nesterov momentum (needs momentum > 0, dampening 0)")},
    "adam": {"lr": _LR(0.001), "betas": _BETAS, "eps": _EPS, "weight_decay": _WD,
             "amsgrad": Field(Bool(), False, "use the AMSGrad variant")},
    "adamw": {"lr": _LR(0.001), "betas": _BETAS, "eps": _EPS,
              "weight_decay": Field(Float(lo=0), 0.01, "decoupled weight decay (>= 0)"),
              "amsgrad": Field(Bool(), False, "use the AMSGrad variant")},
    "rmsprop": {"lr": _LR(0.01), "alpha": Field(Float(0, 1, hi_open=True), 0.99, "smoothing, in [0, 1)"),
                "eps": _EPS, "weight_decay": _WD,
                "momentum": Field(Float(0, 1, hi_open=True), 0.0, "in [0, 1)"),
                "centered": Field(Bool(), False, "normalise by the estimated variance")},
}


def _check_sgd(out, path, ck):
    if out.get("nesterov") and (out["momentum"] <= 0 or out["dampening"] != 0):
        ck.error(path + ("nesterov",), "nesterov needs momentum > 0 and dampening 0")


# ----------------------------------------------------------------------------- schedulers
#: Metrics that early stopping and plateau may watch: train_ or val_ + one of these.
METRIC_NAMES = ("loss", "accuracy", "mae", "rmse", "r2")
_METRIC = re.compile(r"^(train|val)_(loss|accuracy|mae|rmse|r2)$")
_GAMMA = lambda default: Field(Float(lo=0, lo_open=True), default, "multiplicative factor (> 0)")  # noqa: E731
_INTERVAL = Field(Str(("epoch", "step"), "interval"), None,
                  "step the scheduler after every epoch or every optimizer step "
                  "(default: step for onecycle, epoch otherwise)")
SCHEDULERS = {
    "step": {"step_size": Field(Int(lo=1), REQUIRED, "period of decay, in intervals"),
             "gamma": _GAMMA(0.1)},
    "multistep": {"milestones": Field(ListOf(Int(lo=1), min_len=1, increasing=True), REQUIRED,
                                      "increasing interval indices"), "gamma": _GAMMA(0.1)},
    "exponential": {"gamma": _GAMMA(REQUIRED)},
    "cosine": {"T_max": Field(Nullable(Int(lo=1)), None, "intervals in one half cosine; null: "
                              "train.epochs (interval epoch) or every step of the run (interval step)"),
               "eta_min": Field(Float(lo=0), 0.0, "minimum learning rate")},
    "linear": {"start_factor": Field(Float(0, 1, lo_open=True), 1 / 3, "in (0, 1]"),
               "end_factor": Field(Float(0, 1), 1.0, "in [0, 1]"),
               "total_iters": Field(Int(lo=1), 5, "intervals to go from start to end")},
    "onecycle": {"max_lr": Field(Float(lo=0, lo_open=True), REQUIRED, "peak learning rate"),
                 "total_steps": Field(Nullable(Int(lo=1)), None, "null: every step of the run"),
                 "pct_start": Field(Float(0, 1, lo_open=True, hi_open=True), 0.3, "in (0, 1)"),
                 "anneal_strategy": Field(Str(("cos", "linear"), "anneal_strategy"), "cos", "cos or linear"),
                 "div_factor": Field(Float(lo=0, lo_open=True), 25.0, "initial lr = max_lr / div_factor"),
                 "final_div_factor": Field(Float(lo=0, lo_open=True), 1e4,
                                           "final lr = initial lr / final_div_factor"),
                 "three_phase": Field(Bool(), False, "use the three-phase schedule"),
                 "cycle_momentum": Field(Bool(), True, "cycle momentum (or beta1) inversely"),
                 "base_momentum": Field(Float(0, 1), 0.85, "lower momentum bound"),
                 "max_momentum": Field(Float(0, 1), 0.95, "upper momentum bound")},
    "plateau": {"metric": Field(Nullable(Str()), None, "metric to watch (as for early_stopping); "
                                "null: val_loss when validating, else train_loss"),
                "mode": Field(Nullable(Str(("min", "max"), "mode")), None,
                              "min: lower is better; null: max for accuracy and r2, else min"),
                "factor": Field(Float(0, 1, lo_open=True, hi_open=True), 0.1, "in (0, 1)"),
                "patience": Field(Int(lo=0), 10, "epochs without improvement before reducing"),
                "threshold": Field(Float(lo=0), 1e-4, "minimum significant change"),
                "threshold_mode": Field(Str(("rel", "abs"), "threshold_mode"), "rel", "rel or abs"),
                "cooldown": Field(Int(lo=0), 0, "epochs to wait after a reduction"),
                "min_lr": Field(Float(lo=0), 0.0, "lower bound on the learning rate"),
                "eps": Field(Float(lo=0), 1e-8, "smaller changes are ignored")},
    "sequential": {"schedulers": Field(Raw(), REQUIRED, "the schedulers to chain (>= 2)"),
                   "milestones": Field(ListOf(Int(lo=1), min_len=1, increasing=True), REQUIRED,
                                       "interval indices where the next scheduler takes over")},
}


@dataclass
class Typed(Spec):
    """A ``{type: NAME, ...args}`` mapping whose allowed args depend on ``type``."""

    kind: str
    variants: dict[str, dict[str, Field]]
    common: dict[str, Field]
    allow_str: bool = False
    checks: dict[str, Callable] | None = None

    def describe(self) -> str:
        return f"a mapping {{type: {'|'.join(self.variants)}, ...}}"

    def check(self, value, path, ck):
        if self.allow_str and isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        name = value.get("type")
        if "type" not in value:
            return ck.error(path, f"missing required key 'type' (one of {', '.join(self.variants)})")
        if not isinstance(name, str) or name not in self.variants:
            return ck.error(path + ("type",), unknown_name(self.kind, name, tuple(self.variants)))
        fields = {"type": Field(Str(), REQUIRED)} | self.variants[name] | self.common
        extra = (self.checks or {}).get(name)
        return Record(fields, f"{name} {self.kind} mapping", extra).check(value, path, ck)


LOSS = Typed("loss", LOSSES, {}, allow_str=True)
OPTIMIZER = Typed("optimizer", OPTIMIZERS, {}, checks={"sgd": _check_sgd})
SCHEDULER = Typed("scheduler", SCHEDULERS, {"interval": _INTERVAL},
                  checks={"plateau": lambda out, path, ck: _check_metric(out, path, ck)})

# ----------------------------------------------------------------------------- train


def _check_metric(out, path, ck):
    """Check ``metric`` (null allowed: the loss) and infer ``mode`` from it when null."""
    metric = out["metric"]
    if metric is not None and not _METRIC.match(metric):
        ck.error(path + ("metric",), f"unknown metric {found(metric, bare=True)} (known: "
                 "train_ or val_ followed by " + ", ".join(METRIC_NAMES) + ")")
    elif out["mode"] is None:
        out["mode"] = "max" if (metric or "").endswith(("accuracy", "r2")) else "min"


_check_early = _check_metric


EARLY_STOPPING = Record({
    "metric": Field(Str(), "val_loss", "metric to watch, e.g. val_loss, val_accuracy, train_loss"),
    "patience": Field(Int(lo=1), 5, "epochs without improvement before stopping"),
    "min_delta": Field(Float(lo=0), 0.0, "smallest change that counts as an improvement"),
    "mode": Field(Nullable(Str(("min", "max"), "mode")), None,
                  "min or max; null: max for accuracy and r2, min otherwise"),
}, "early_stopping mapping", _check_early)

TRAIN = Record({
    "epochs": Field(Int(lo=1), 10, "passes over the training set"),
    "early_stopping": Field(Nullable(EARLY_STOPPING), None, "null: train all epochs"),
    "grad_clip": Field(Nullable(Float(lo=0, lo_open=True)), None,
                       "clip the global gradient L2 norm to this; null: no clipping"),
    "eval_every": Field(Int(lo=1), 1, "evaluate on the validation set every N epochs"),
    "checkpoint_every": Field(Int(lo=1), 1, "write a checkpoint every N epochs"),
    "log_every": Field(Int(lo=1), 50, "log training loss every N optimizer steps"),
}, "train mapping")

# ----------------------------------------------------------------------------- top level
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_LEVEL = ("name", "seed", "data", "model", "loss", "optimizer", "scheduler", "train")


def validate(raw: dict, default_name: str, validate_layer: LayerValidator | None = None
             ) -> tuple[dict, list[tuple[tuple, str]]]:
    """Check a raw config; return ``(resolved, problems)`` where problems are ``(path, message)``.

    ``resolved`` holds :data:`INVALID` where a value had a problem; it is only
    meaningful when ``problems`` is empty.
    """
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
    out["seed"] = Int(lo=0).check(raw.get("seed", 0), ("seed",), ck)
    if "data" not in raw:
        ck.error((), "missing required key 'data' (a mapping with at least 'dataset')")
        data = INVALID
    else:
        data = check_data(raw["data"], ("data",), ck)
    out["data"] = data
    if "model" not in raw:
        ck.error((), "missing required key 'model' (a mapping with 'layers' or 'graph')")
        out["model"] = INVALID
    else:
        out["model"] = check_model(raw["model"], ("model",), ck, validate_layer)
    out["loss"] = LOSS.check(raw.get("loss", _default_loss(data)), ("loss",), ck)
    if "optimizer" not in raw:
        ck.error((), "missing required key 'optimizer' (e.g. {type: sgd, lr: 0.01})")
        out["optimizer"] = INVALID
    else:
        out["optimizer"] = OPTIMIZER.check(raw["optimizer"], ("optimizer",), ck)
    out["train"] = TRAIN.check(raw.get("train"), ("train",), ck)
    out["scheduler"] = _check_scheduler(raw.get("scheduler"), ("scheduler",), ck, out["train"], False)
    out = {k: out[k] for k in TOP_LEVEL}
    return out, ck.problems


def _default_loss(data) -> str:
    if isinstance(data, dict):
        if data.get("dataset") in REGRESSION_DATASETS or data.get("task") == "regression":
            return "mse"
    return "cross_entropy"


def _check_scheduler(value, path, ck, train, nested: bool):
    """Check a scheduler (recursively for ``sequential``) and fill in the run-dependent defaults."""
    if value is None and not nested:
        return None
    out = SCHEDULER.check(value, path, ck)
    if out is INVALID:
        return out
    kind = out["type"]
    if nested:
        if value.get("interval") is not None:
            ck.error(path + ("interval",), "set interval on the sequential scheduler, not inside it")
        if kind in ("sequential", "plateau"):
            ck.error(path + ("type",), f"'{kind}' cannot be chained inside a sequential scheduler")
        del out["interval"]
    elif out["interval"] is None:
        out["interval"] = "step" if kind == "onecycle" else "epoch"
    if not nested and kind == "plateau" and out["interval"] != "epoch":
        ck.error(path + ("interval",), "plateau watches a per-epoch metric; interval must be epoch")
    interval = out.get("interval", "epoch")
    if kind == "cosine" and out["T_max"] is None and interval == "epoch" and isinstance(train, dict) \
            and isinstance(train.get("epochs"), int):
        out["T_max"] = train["epochs"]
    if kind == "sequential":
        subs = value.get("schedulers")
        if not isinstance(subs, list) or len(subs) < 2:
            ck.error(path + ("schedulers",), f"expected a list of at least 2 schedulers, found {found(subs)}")
            return INVALID
        out["schedulers"] = [_check_scheduler(s, path + ("schedulers", i), ck, train, True)
                             for i, s in enumerate(subs)]
        ms = out["milestones"]
        if isinstance(ms, list) and len(ms) != len(subs) - 1:
            ck.error(path + ("milestones",), f"expected {len(subs) - 1} milestone(s) for "
                                              f"{len(subs)} schedulers, found {len(ms)}")
    return out
