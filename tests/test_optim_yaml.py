"""Every declared optimizer and scheduler trains from YAML; cross-section checks refuse what cannot run."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import trainkit.optim  # noqa: F401  (declares the built-in optimizers and schedulers)
from trainkit.cli import app
from trainkit.registry import OPTIMIZERS, SCHEDULERS

BASE = """\
data: {{dataset: iris, val_split: 0.2, batch_size: 16}}
model: {{layers: [{{linear: {{out_features: 8}}}}, relu, {{linear: {{out_features: 3}}}}]}}
optimizer: {opt}
scheduler: {sched}
train: {{epochs: 3}}
"""

#: Arguments a scheduler needs beyond its defaults (required ones, or to make it move in 3 short epochs).
SCHEDULER_ARGS = {
    "step": "{type: step, step_size: 1}",
    "multistep": "{type: multistep, milestones: [1, 2]}",
    "exponential": "{type: exponential, gamma: 0.9}",
    "onecycle": "{type: onecycle, max_lr: 0.05}",
    "sequential": "{type: sequential, schedulers: [{type: linear, total_iters: 1}, {type: cosine}], milestones: [1]}",
    "chained": "{type: chained, schedulers: [{type: constant, factor: 0.5, total_iters: 1}, "
               "{type: exponential, gamma: 0.9}]}",
    "cyclic": "{type: cyclic, base_lr: 0.001, max_lr: 0.01, step_size_up: 5}",
    "cosine_warm_restarts": "{type: cosine_warm_restarts, T_0: 1, T_mult: 2}",
    "constant": "{type: constant, factor: 0.5, total_iters: 1}",
    "polynomial": "{type: polynomial, total_iters: 2}",
    "linear": "{type: linear, total_iters: 2}",
}


def _run(tmp_path, opt: str, sched: str = "null") -> tuple[int, str, list[dict]]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE.format(opt=opt, sched=sched))
    result = CliRunner().invoke(app, ["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"])
    rows = []
    if (tmp_path / "run" / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return result.exit_code, result.output, rows


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_declared_optimizer_trains_from_yaml(tmp_path, name):
    code, out, rows = _run(tmp_path, f"{{type: {name}}}")
    assert code == 0, out
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"] * 1.5


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_declared_scheduler_trains_from_yaml(tmp_path, name):
    sched = SCHEDULER_ARGS.get(name, f"{{type: {name}}}")
    code, out, rows = _run(tmp_path, "{type: sgd, lr: 0.05, momentum: 0.9}", sched)
    assert code == 0, out
    lrs = [r["lr"] for r in rows]
    assert len(lrs) == 3
    if name != "plateau":  # plateau waits `patience` epochs before it moves
        assert len(set(lrs)) > 1 or name in ("cyclic", "onecycle"), f"{name} never changed the lr: {lrs}"


@pytest.mark.parametrize("sched", ["{type: onecycle, max_lr: 0.1}", "{type: cyclic, base_lr: 0.001, max_lr: 0.01}",
                                   "{type: chained, schedulers: [{type: cyclic, base_lr: 0.001, max_lr: 0.01}, "
                                   "{type: exponential, gamma: 0.9}]}"])
def test_momentum_cycling_needs_an_optimizer_with_momentum(tmp_path, sched):
    code, out, _ = _run(tmp_path, "{type: adagrad}", sched)
    assert code == 2 and "has no momentum or betas to cycle" in out and "Traceback" not in out
    assert not (tmp_path / "run").exists()
    # the same with the cycling turned off trains
    off = sched.replace("max_lr: 0.1}", "max_lr: 0.1, cycle_momentum: false}").replace(
        "max_lr: 0.01}", "max_lr: 0.01, cycle_momentum: false}")
    code, out, _ = _run(tmp_path, "{type: adagrad}", off)
    assert code == 0, out


def test_cyclic_lr_range_is_checked_in_the_first_pass(tmp_path):
    code, out, _ = _run(tmp_path, "{type: sgd, momentum: 0.9}", "{type: cyclic, base_lr: 0.1, max_lr: 0.01}")
    assert code == 2 and "scheduler.max_lr: must be at least base_lr (0.1)" in out
