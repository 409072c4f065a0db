"""The record of a sweep's trials: ``trials.json`` (trainkit's) and the Optuna study in ``study.db``.

``trials.json`` is written only by the sweep's own process (atomically), and
holds each trial's number, parameters, state (``running``, ``complete``,
``pruned``, ``failed``), value and Optuna trial id and number. When Optuna is installed the
same trials live in an Optuna study in SQLite (``study.db``): the tpe sampler
reads it, trials report each epoch's metric to it and the median pruner decides
from it; it can be opened with Optuna's own tools (``optuna-dashboard
sqlite:///SWEEP/study.db``). Random and grid sweeps work without Optuna.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import TrainkitError
from ..utils.atomic import atomic_write_json
from ..utils.extras import require

__all__ = ["Ledger", "STUDY_NAME", "storage_url", "open_optuna", "pruner_of"]

STUDY_NAME = "trainkit"
FINISHED = ("complete", "pruned", "failed")


def storage_url(sweep_dir: Path) -> str:
    """SQLAlchemy URL of the sweep's Optuna study."""
    return f"sqlite:///{(Path(sweep_dir) / 'study.db').resolve()}"


def pruner_of(spec: dict):
    """Optuna's pruner for a resolved ``sweep`` section (a NopPruner without one)."""
    import optuna

    p = spec.get("pruner")
    if not p:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=p["startup_trials"], n_warmup_steps=p["warmup_epochs"] + 1)
    # Optuna prunes from step n_warmup_steps on; epochs 1..warmup_epochs are never pruned


def open_optuna(sweep_dir: Path, spec: dict, sampler=None):
    """Create or open the sweep's Optuna study (SQLite, with a lock timeout for parallel trials)."""
    optuna = require("optuna", "sweep", "the sweep's study")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url(sweep_dir), engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, direction=spec["goal"], sampler=sampler,
                               pruner=pruner_of(spec), load_if_exists=True)


class Ledger:
    """``trials.json`` of a sweep directory: the trials, by number (see the module docstring)."""

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / "trials.json"
        self.trials: dict[int, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.trials = {int(t["number"]): t for t in data["trials"]}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise TrainkitError(f"{self.path}: unreadable record of the sweep's trials ({exc})") from None

    def save(self) -> None:
        """Write the record atomically."""
        atomic_write_json(self.path, {"trials": [self.trials[n] for n in sorted(self.trials)]})

    def add(self, number: int, params: dict, optuna_id: int | None) -> dict:
        """Record a new trial as running."""
        self.trials[number] = {"number": number, "params": params, "state": "running", "value": None,
                               "epochs": None, "history": [], "message": None, "optuna_id": optuna_id,
                               "run_dir": f"trial-{number:04d}"}
        self.save()
        return self.trials[number]

    def finished(self) -> list[dict]:
        """Trials that ended (complete, pruned or failed): a resume never runs them again."""
        return [t for n, t in sorted(self.trials.items()) if t["state"] in FINISHED]

    def unfinished(self) -> list[dict]:
        """Trials started but not ended (the sweep was interrupted): a resume continues them."""
        return [t for n, t in sorted(self.trials.items()) if t["state"] not in FINISHED]
