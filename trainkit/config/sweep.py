"""The ``sweep:`` section of a config (Ludwig's form): what ``trainkit sweep`` searches and how.

    sweep:
      metric: val_accuracy        # a name from the metric table (default: the task's best metric)
      goal: maximize              # or minimize (default: from the metric)
      trials: 8
      sampler: random             # random | grid | tpe (tpe needs the [sweep] extra: Optuna)
      pruner: median              # optional; or {type: median, startup_trials: 3, warmup_epochs: 1}
      parameters:                 # keyed by --set paths
        optimizer.lr: {space: loguniform, lower: 0.0003, upper: 0.01}
        model.layers.1.linear.out_features: {space: choice, values: [64, 128, 256]}
        data.batch_size: {space: grid, values: [32, 64]}
        train.epochs: {space: int, lower: 5, upper: 10}

Each parameter path is checked as ``--set PATH=VALUE`` would be, with every value
the space can take at its ends (each choice, lower and upper), against the whole
config: an unknown key gets the schema's did-you-mean, a value out of range the
schema's message, each placed at the parameter in the file (FILE:LINE:COL).
Trainkit's ``train`` ignores the section.
"""
from __future__ import annotations

import copy
import math

from trainkit.registry import (INVALID, REQUIRED, TASKS, Bool, Field, Float, Int, ListOf, Nullable, Raw, Record, Str, find_metric,
                               found, metric_names)
from trainkit.registry.spec import AnyOf

__all__ = ["SWEEP", "SPACES", "SAMPLERS", "check_sweep", "parameter_values"]

SPACES = ("choice", "uniform", "loguniform", "int", "grid")
SAMPLERS = ("random", "grid", "tpe")
#: Values one choice or grid parameter may list.
MAX_VALUES = 1000


def _check_parameter(value: dict, path: tuple, ck) -> None:
    space = value["space"]
    if space in ("choice", "grid"):
        if value["values"] is None:
            ck.error(path, f"space {space} needs 'values' (a list of the values to try)")
        elif len(value["values"]) > MAX_VALUES:
            ck.error(path + ("values",), f"{len(value['values'])} values; at most {MAX_VALUES}")
        for key in ("lower", "upper"):
            if value[key] is not None:
                ck.error(path + (key,), f"space {space} takes 'values', not '{key}'")
        for i, v in enumerate(value["values"] or ()):
            if not (v is None or isinstance(v, (bool, int, float, str))):
                ck.error(path + ("values", i), f"expected a number, string, true/false or null, found {found(v)}")
        return
    if value["values"] is not None:
        ck.error(path + ("values",), f"space {space} takes 'lower' and 'upper', not 'values'")
    lo, hi = value["lower"], value["upper"]
    for key, v in (("lower", lo), ("upper", hi)):
        if v is None:
            ck.error(path, f"space {space} needs '{key}'")
        elif space == "int" and not float(v).is_integer():
            ck.error(path + (key,), f"space int needs a whole number, found {v!r}")
        elif space == "loguniform" and v <= 0:
            ck.error(path + (key,), f"space loguniform needs a positive bound, found {v!r}")
    if lo is not None and hi is not None and lo > hi or (space != "int" and lo is not None and lo == hi):
        ck.error(path + ("upper",), f"upper ({hi!r}) must be greater than lower ({lo!r})")
    if value["log"] and space != "int":
        ck.error(path + ("log",), "log applies to space int (loguniform is the log-scaled float space)")


PARAMETER = Record({
    "space": Field(Str(SPACES, "space"), REQUIRED, "choice | uniform | loguniform | int | grid"),
    "values": Field(Nullable(ListOf(Raw(), min_len=1)), None,
                    "choice and grid: the values to try (numbers, strings, true/false, null)"),
    "lower": Field(Nullable(Float()), None, "uniform, loguniform, int: the smallest value"),
    "upper": Field(Nullable(Float()), None, "uniform, loguniform, int: the largest value (included for int)"),
    "log": Field(Bool(), False, "int: sample on a log scale"),
}, "sweep parameter mapping", _check_parameter)

PRUNER = Record({
    "type": Field(Str(("median",), "pruner"), "median", "median: stop a trial whose metric after an epoch is "
                  "worse than the median of the earlier trials at that epoch (Optuna's MedianPruner)"),
    "startup_trials": Field(Int(lo=0), 5, "trials that run to the end before any is pruned"),
    "warmup_epochs": Field(Int(lo=0), 0, "epochs of each trial that are never pruned"),
}, "pruner mapping")

SWEEP = Record({
    "parameters": Field(Raw(), None, "mapping of --set paths (optimizer.lr, model.layers.1.linear.out_features) "
                        "to {space, values | lower, upper}"),
    "metric": Field(Nullable(Str()), None, "metric to optimize, from the metrics table (null: the task's metric "
                    "that picks the best checkpoint, val_accuracy for classification)"),
    "goal": Field(Nullable(Str(("maximize", "minimize"), "goal")), None, "maximize or minimize (null: from "
                  "the metric)"),
    "trials": Field(Int(lo=1, hi=100000), 10, "trials in the sweep (trainkit sweep --trials overrides)"),
    "sampler": Field(Str(SAMPLERS, "sampler"), "random", "random | grid (every combination of the grid and "
                     "choice values) | tpe (Optuna's TPE; needs pip install 'trainkit[sweep]')"),
    "seed": Field(Nullable(Int(lo=0, hi=2 ** 32 - 1)), None, "seed of the sampler (null: the config's seed)"),
    "pruner": Field(Nullable(AnyOf((Str(("median",), "pruner"), PRUNER), "median or a pruner mapping")), None,
                    "null: every trial runs all its epochs; median (or a mapping {type: median, startup_trials, "
                    "warmup_epochs}); needs pip install 'trainkit[sweep]'"),
}, "sweep mapping")


def parameter_values(spec: dict) -> list:
    """The values a parameter's validation tries: each choice, or the two bounds."""
    if spec["space"] in ("choice", "grid"):
        return list(spec["values"])
    lo, hi = spec["lower"], spec["upper"]
    if spec["space"] == "int":
        return [int(lo), int(hi)]
    return [lo, hi]


def check_sweep(raw_sweep, raw_config: dict, ck, task: str | None, validate) -> object:
    """Check a ``sweep`` section; ``validate`` is the schema's (checks each parameter as ``--set``)."""
    path = ("sweep",)
    out = SWEEP.check(raw_sweep, path, ck)
    if not isinstance(out, dict):
        return out
    if isinstance(out["pruner"], str):
        out["pruner"] = PRUNER.check({"type": out["pruner"]}, path + ("pruner",), ck)
    if out["metric"] is None:
        out["metric"] = TASKS[task or "classification"].best
    elif find_metric(out["metric"], task) is None:
        ck.error(path + ("metric",), f"unknown metric {found(out['metric'], bare=True)} "
                                     f"(known{' for ' + task if task else ''}: {', '.join(metric_names(task))})")
    if out["goal"] is None and find_metric(out["metric"], task) is not None:
        out["goal"] = "maximize" if find_metric(out["metric"], task)[1].mode == "max" else "minimize"
    params = out["parameters"]
    if not isinstance(params, dict) or not params:
        ck.error(path + ("parameters",), f"expected a mapping of --set paths to spaces, found {found(params)}")
        out["parameters"] = INVALID
        return out
    base = {k: v for k, v in raw_config.items() if k != "sweep"}
    checked = {}
    for name, spec in params.items():
        ppath = path + ("parameters", name)
        if not isinstance(name, str) or not name or any(not p for p in name.split(".")):
            ck.error(ppath, f"expected a --set path such as optimizer.lr, found {found(name)}")
            continue
        if name.split(".")[0] in ("sweep", "name"):
            ck.error(ppath, f"'{name}' cannot be swept (each trial is a run of this config)")
            continue
        spec = PARAMETER.check(spec, ppath, ck)
        checked[name] = spec
        if not isinstance(spec, dict) or any(k for k, _ in ck.problems if k[:len(ppath)] == ppath):
            continue
        _check_path(name, spec, base, ppath, ck, validate)
    out["parameters"] = checked
    if out["sampler"] == "grid":
        for name, spec in checked.items():
            if isinstance(spec, dict) and spec["space"] not in ("grid", "choice"):
                ck.error(path + ("parameters", name, "space"), f"sampler grid tries every combination of listed "
                         f"values: space {spec['space']} has none (use grid or choice, or sampler random or tpe)")
    return out


def _check_path(name: str, spec: dict, base: dict, ppath: tuple, ck, validate) -> None:
    """Validate the config with the parameter set to each of its end values; report at the parameter."""
    from trainkit.config.overrides import _set

    for value in parameter_values(spec):
        trial = copy.deepcopy(base)
        where, message = _set(trial, tuple(name.split(".")), value)
        if message:
            ck.error(ppath, f"not a path of this config: {message}")
            return
        _, problems = validate(trial)
        mine = [(p, m) for p, m in problems if tuple(map(str, p[:len(where)])) == tuple(map(str, where))
                or tuple(map(str, where[:len(p)])) == tuple(map(str, p))]
        for p, m in mine[:1]:
            shown = value if not isinstance(value, float) or math.isfinite(value) else str(value)
            ck.error(ppath, f"{name}={shown!r}: {'.'.join(map(str, p))}: {m}")
            return
