"""What a training checkpoint's ``state.json`` must look like before the trainer trusts it.

The manifest's sha256 proves that a checkpoint is intact, not that trainkit
wrote it: anyone can edit ``state.json`` and rehash it (a copied run directory
is untrusted input). So every field the loop reads back is checked here first,
and a checkpoint that fails is refused with a :class:`CheckpointError` naming
the file and the field, before anything of the run changes:

* the counters are counts (``epoch: -5`` would have deleted earlier metrics
  rows), and they agree with each other: ``step`` is ``epoch`` times the steps
  of an epoch plus the batches of an interrupted epoch, the loader's position
  lies inside an epoch, the best epoch is one that has been trained;
* the partial epoch's accumulators (``in_epoch``) are the meter's own fields,
  finite, with a confusion matrix of the run's classes that counts the samples;
* the optimizer's and scheduler's JSON state has exactly the structure that the
  run's own optimizer and scheduler produce (same keys, list lengths and kinds
  of value): a scheduler's state is loaded into its attributes, so an extra key
  could otherwise replace any of them;
* every array of the weights and of the optimizer state is finite
  (:func:`nonfinite`), so a NaN checkpoint is never resumed or called good.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainkit.errors import CheckpointError

__all__ = ["check_loop_state", "check_same_structure", "nonfinite"]

#: Largest count accepted in a checkpoint (numpy's int64 holds the meter's sums).
_MAX_COUNT = 2 ** 62


def _count(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v < _MAX_COUNT


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _number(v) and math.isfinite(v)


def _show(value) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):  # pragma: no cover - JSON values always dump
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if _number(v):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def check_same_structure(expected: Any, got: Any, where: str) -> str | None:
    """Why ``got`` (loaded JSON) is not shaped like ``expected`` (what this run writes), or None.

    Mappings need the same keys, lists the same length, scalars the same kind
    (ints and floats are both numbers). A null in ``expected`` accepts null or any
    scalar (a value that starts unset, such as a plateau's best so far).
    """
    if isinstance(expected, tuple):
        expected = list(expected)
    if isinstance(expected, Mapping):
        if not isinstance(got, dict):
            return f"{where} must be {_kind(dict())}, found {_show(got)}"
        if set(got) != set(expected):
            missing = sorted(set(map(str, expected)) - set(map(str, got)))
            extra = sorted(set(map(str, got)) - set(map(str, expected)))
            return (f"{where} has other keys than this run writes"
                    + (f" (missing: {', '.join(missing)})" if missing else "")
                    + (f" (unexpected: {', '.join(extra)})" if extra else ""))
        for k in expected:
            why = check_same_structure(expected[k], got[k], f"{where}.{k}")
            if why:
                return why
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{where} must be a list of {len(expected)}, found {_show(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            why = check_same_structure(e, g, f"{where}[{i}]")
            if why:
                return why
        return None
    if expected is None:
        return None if got is None or isinstance(got, (str, bool, int, float)) else \
            f"{where} must be a single value, found {_show(got)}"
    if _kind(got) != _kind(expected):
        return f"{where} must be {_kind(expected)}, found {_show(got)}"
    return None


def _json_like(value):
    """``value`` as it reads back from state.json (tuples become lists, numpy scalars numbers)."""
    from trainkit.utils.atomic import json_default

    return json.loads(json.dumps(value, default=json_default))


def _check_meter(state, fresh: dict, where: str) -> str | None:
    why = check_same_structure(_json_like(fresh), state, where)
    if why:
        return why
    for key, value in state.items():
        if key == "confusion":
            cells = [c for row in value for c in row]
            if not all(_count(c) for c in cells):
                return f"{where}.confusion must hold counts"
            if sum(cells) != state.get("n"):
                return f"{where}.confusion counts {sum(cells)} samples but n is {_show(state.get('n'))}"
        elif key in ("n", "m"):
            if not _count(value):
                return f"{where}.{key} must be a count, found {_show(value)}"
        elif key != "num_classes" and not _finite(value):
            return f"{where}.{key} must be a finite number, found {_show(value)}"
    return None


def check_loop_state(meta: dict, path: Path, *, steps_per_epoch: int, fresh_meter: dict,
                     optimizer_groups, scheduler_state) -> None:
    """Refuse a ``state.json`` (``meta``) that this run did not and could not have written.

    Args:
        meta: the loaded ``state.json``.
        path: the checkpoint folder (for the message).
        steps_per_epoch: optimizer steps in one epoch of this run.
        fresh_meter: the state of a new meter of this run's task (the partial epoch's shape).
        optimizer_groups: this run's optimizer's ``param_groups`` as ``state_json`` gives them.
        scheduler_state: this run's scheduler's ``state_dict()`` (None: the run has no scheduler).

    Raises:
        CheckpointError: naming ``state.json`` and the first field that is wrong.
    """
    why = _why(meta, steps_per_epoch, fresh_meter, optimizer_groups, scheduler_state)
    if why:
        raise CheckpointError(f"{Path(path) / 'state.json'}: {why}; the checkpoint was not written by this run "
                              "(or was edited), so it is not resumed")


def _why(meta, spe, fresh_meter, optimizer_groups, scheduler_state) -> str | None:
    epoch, step = meta.get("epoch"), meta.get("step")
    if not _count(epoch):
        return f"epoch must be a count >= 0, found {_show(epoch)}"
    if not _count(step):
        return f"step must be a count >= 0, found {_show(step)}"
    rng = meta.get("rng")
    if not isinstance(rng, dict) or set(rng) != {"global", "train_loader"} or not isinstance(
            rng.get("train_loader"), dict) or not isinstance(rng.get("global"), dict):
        return "rng must be {global, train_loader}"
    done = rng["train_loader"].get("batches_done")
    if not _count(done) or done >= max(spe, 1):
        return f"rng.train_loader.batches_done must be a count below {spe} (the batches of an epoch), " \
               f"found {_show(done)}"
    in_epoch = meta.get("in_epoch")
    if in_epoch is None:
        if done:
            return f"rng.train_loader.batches_done is {done} but in_epoch (the partial epoch) is null"
    else:
        if not isinstance(in_epoch, dict) or set(in_epoch) != {"meter", "seconds"}:
            return f"in_epoch must be null or {{meter, seconds}}, found {_show(in_epoch)}"
        if not (_finite(in_epoch["seconds"]) and in_epoch["seconds"] >= 0):
            return f"in_epoch.seconds must be a number >= 0, found {_show(in_epoch['seconds'])}"
        why = _check_meter(in_epoch["meter"], fresh_meter, "in_epoch.meter")
        if why:
            return why
        if not done:
            return "in_epoch holds a partial epoch but rng.train_loader.batches_done is 0"
    if step != epoch * spe + done:
        return (f"step {step} does not match epoch {epoch} x {spe} steps per epoch"
                + (f" + {done} batches" if done else ""))
    best = meta.get("best")
    if best is not None:
        if not (isinstance(best, dict) and set(best) <= {"name", "value", "epoch", "split"}
                and isinstance(best.get("name"), str) and _finite(best.get("value"))
                and _count(best.get("epoch"), 1) and best["epoch"] <= epoch
                and (best.get("split") is None or isinstance(best.get("split"), str))):
            return f"best must be null or {{name, value (a finite number), epoch (1..{epoch}), split}}, " \
                   f"found {_show(best)}"
    es = meta.get("early_stopping")
    if not (isinstance(es, dict) and set(es) == {"best", "wait"} and _count(es.get("wait"))
            and (es.get("best") is None or _finite(es.get("best")))):
        return f"early_stopping must be {{best: null or a finite number, wait: a count}}, found {_show(es)}"
    if not isinstance(meta.get("config_hash"), str):
        return "config_hash must be a string"
    opt = meta.get("optimizer")
    if not isinstance(opt, dict):
        return f"optimizer must be a mapping, found {_show(opt)}"
    why = check_same_structure(_json_like(optimizer_groups), opt.get("param_groups"), "optimizer.param_groups")
    if why:
        return why
    sched = meta.get("scheduler")
    if scheduler_state is None:
        if sched is not None:
            return "scheduler state found, but this run has no scheduler"
    else:
        why = check_same_structure(_json_like(scheduler_state), sched, "scheduler")
        if why:
            return why
    return None


def nonfinite(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the floating-point arrays that hold a NaN or an infinity."""
    return [k for k, v in arrays.items()
            if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all()]
