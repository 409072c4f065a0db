"""One trial of a sweep, in its own process: ``python -m trainkit.sweep.trial SWEEP_DIR NUMBER``.

It trains the sweep's config with the trial's parameters as ``--set``
overrides into ``SWEEP_DIR/trial-NNNN`` (a normal run directory; a trial
interrupted earlier is resumed from its checkpoint), reports each epoch's
metric to the Optuna study when the sweep has one, stops when the pruner says
so, and writes ``results/trial-NNNN.json`` for the sweep. Its exit code is
``trainkit train``'s (0, 2, 3 diverged, 130 interrupted).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..train.callbacks import Callback
from ..utils.atomic import atomic_write_json

__all__ = ["MetricReporter", "overrides_of", "main"]


def overrides_of(params: dict) -> list[str]:
    """``--set`` texts of a trial's parameters (JSON is YAML: strings stay strings, numbers numbers)."""
    return [f"{name}={json.dumps(value)}" for name, value in params.items()]


class MetricReporter(Callback):
    """Collects the sweep's metric each epoch; reports it to an Optuna trial, which may prune the run."""

    name = "sweep_trial"

    def __init__(self, metric: str, trial=None):
        self.metric = metric
        self.trial = trial
        self.history: list[list] = []
        self.pruned = False

    def on_epoch_end(self, trainer, epoch: int, row: dict, values: dict) -> None:
        value = values.get(self.metric)
        if value is None:  # a val metric on an epoch without evaluation
            return
        epoch = row["epoch"]
        self.history.append([epoch, float(value)])
        if self.trial is not None and math.isfinite(value):
            self.trial.report(float(value), epoch)
            if self.trial.should_prune():
                self.pruned = True
                trainer.should_stop = True
                trainer.log.print(f"pruned after epoch {epoch}: {self.metric} {value:.4g} is worse than the "
                                  "median of the earlier trials")


def main(argv: list[str] | None = None) -> int:
    """Run one trial (see the module docstring); returns the exit code."""
    from rich.console import Console

    from ..config import load_config
    from ..errors import TrainkitError
    from ..train.session import train
    from .study import open_optuna

    sweep_dir, number = Path(argv[0]), int(argv[1])
    info = json.loads((sweep_dir / "sweep.json").read_text())
    entry = json.loads((sweep_dir / "trials.json").read_text())
    t = next(x for x in entry["trials"] if x["number"] == number)
    spec = load_config(info["config_file"]).data["sweep"]
    trial = None
    if t["optuna_id"] is not None:
        import optuna

        study = open_optuna(sweep_dir, spec)
        trial = optuna.trial.Trial(study, t["optuna_id"][0])
    reporter = MetricReporter(spec["metric"], trial)
    run_dir = sweep_dir / t["run_dir"]
    resume = run_dir if (run_dir / "run.json").exists() else None
    if resume is not None:  # the epochs before the interruption, from the run's own log
        reporter.history = list(t.get("history") or [])
    console = Console(file=sys.stdout, width=130)
    try:
        code = train(None if resume else info["config_file"], [] if resume else overrides_of(t["params"]),
                     run_dir=None if resume else run_dir, resume=resume, quiet=True, console=console,
                     command=["trainkit", "sweep", str(sweep_dir), "trial", str(number)], callbacks=[reporter])
    except TrainkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    state = {0: "pruned" if reporter.pruned else "complete", 3: "failed", 130: "interrupted"}.get(code, "failed")
    (sweep_dir / "results").mkdir(exist_ok=True)
    atomic_write_json(sweep_dir / "results" / f"trial-{number:04d}.json",
                      {"number": number, "state": state, "exit_code": code, "history": reporter.history})
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
