"""``trainkit sweep``: the sweep: section's validation, deterministic trials, pruning, failed trials,
parallel jobs, Ctrl-C and --resume, the results (table, trials.csv, best.yaml, sweep.png), Optuna optional."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clitools import env_for, tk
from trainkit.config import ConfigError, load_config, loads_config
from trainkit.sweep.space import grid_points, random_params

BASE = """\
name: tiny_sweep
seed: 3
data: {dataset: digits, val_split: 0.2, batch_size: 32, limit: 128}
model:
  layers:
    - flatten
    - linear: {out_features: 16}
    - relu
    - linear: {out_features: 10}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: EPOCHS}
"""


def config(epochs=3, sweep="") -> str:
    return BASE.replace("EPOCHS", str(epochs)) + sweep


GRID = """\
sweep:
  sampler: grid
  pruner: {type: median, startup_trials: 1, warmup_epochs: 0}
  parameters:
    optimizer.lr: {space: grid, values: [0.05, 1.0e+30, 0.00001]}
"""


def _errors(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        loads_config(text, file="s.yaml")
    return str(e.value)


def test_sweep_section_is_validated_at_file_line_col_with_did_you_mean():
    msg = _errors(config(sweep="""\
sweep:
  metric: val_acuracy
  sampler: tpee
  parameters:
    optimizer.lrr: {space: loguniform, lower: 0.001, upper: 0.1}
    model.layers.1.linear.out_features: {space: choice, values: [8, 0]}
    train.epochs: {space: int, lower: 1, upper: 2.5}
    optimizer.momentum: {space: uniform, lower: 0.9, upper: 0.1}
"""))
    assert "s.yaml:13:3: sweep.metric: unknown metric 'val_acuracy'" in msg
    assert "s.yaml:14:3: sweep.sampler: unknown sampler 'tpee'; did you mean 'tpe'?" in msg
    assert "s.yaml:16:5: sweep.parameters.optimizer.lrr: " in msg and "did you mean 'lr'?" in msg
    assert "s.yaml:17:5: sweep.parameters.model.layers.1.linear.out_features: " in msg and "=0" in msg
    assert "s.yaml:18:" in msg and "whole number" in msg
    assert "upper (0.1) must be greater than lower (0.9)" in msg
    grid_bad = _errors(config(sweep="sweep:\n  sampler: grid\n  parameters:\n    optimizer.lr: "
                                    "{space: uniform, lower: 0.1, upper: 0.2}\n"))
    assert "sampler grid tries every combination" in grid_bad
    ok = loads_config(config(sweep=GRID), file="s.yaml")
    assert ok.data["sweep"]["metric"] == "val_accuracy" and ok.data["sweep"]["goal"] == "maximize"
    assert "sweep" not in loads_config(config()).data  # absent: nothing added to run configs


def test_bad_sweep_exits_2_before_any_trial(tmp_path):
    (tmp_path / "s.yaml").write_text(config(sweep="sweep:\n  parameters:\n    optimizer.lrr: "
                                                   "{space: choice, values: [0.1]}\n"))
    r = tk(tmp_path, "sweep", "s.yaml", "--sweep-dir", "sw", check=2)
    assert "s.yaml:14:5" in r.stderr and "did you mean 'lr'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "sw").exists()
    (tmp_path / "plain.yaml").write_text(config())
    r = tk(tmp_path, "sweep", "plain.yaml", check=2)
    assert "no sweep: section" in r.stderr


def test_random_and_grid_trials_depend_only_on_seed_and_number():
    params = load_config_text(config(sweep="""\
sweep:
  parameters:
    optimizer.lr: {space: loguniform, lower: 0.0001, upper: 0.1}
    model.layers.1.linear.out_features: {space: choice, values: [8, 16, 32]}
    train.epochs: {space: int, lower: 1, upper: 4}
""")).data["sweep"]["parameters"]
    a = [random_params(params, 7, n) for n in range(20)]
    assert a == [random_params(params, 7, n) for n in range(20)]
    assert a != [random_params(params, 8, n) for n in range(20)]
    assert all(1e-4 <= p["optimizer.lr"] <= 0.1 and p["train.epochs"] in (1, 2, 3, 4) for p in a)
    assert {p["model.layers.1.linear.out_features"] for p in a} == {8, 16, 32}
    grid = load_config_text(config(sweep=GRID)).data["sweep"]["parameters"]
    assert grid_points(grid) == [{"optimizer.lr": v} for v in (0.05, 1e30, 1e-5)]


def load_config_text(text):
    return loads_config(text, file="s.yaml")


def _trials(sweep: Path) -> list[dict]:
    return json.loads((sweep / "trials.json").read_text())["trials"]


def test_grid_sweep_records_complete_failed_and_pruned_trials_and_writes_results(tmp_path):
    pytest.importorskip("optuna", reason="the [sweep] extra (optuna) is not installed")
    (tmp_path / "s.yaml").write_text(config(epochs=4, sweep=GRID))
    r = tk(tmp_path, "sweep", "s.yaml", "--sweep-dir", "sw", "--jobs", "1", check=0, timeout=300)
    sw = tmp_path / "sw"
    states = {t["number"]: t["state"] for t in _trials(sw)}
    assert states == {0: "complete", 1: "failed", 2: "pruned"}, (states, r.stdout)
    trials = _trials(sw)
    assert "diverged" in trials[1]["message"]
    assert trials[2]["epochs"] < 4  # stopped early by the median pruner
    for t in trials:  # each trial is a normal run directory
        info = json.loads((sw / t["run_dir"] / "run.json").read_text())
        assert info["status"] == {"complete": "completed", "pruned": "completed", "failed": "diverged"}[t["state"]]
    rows = list(csv.DictReader((sw / "trials.csv").open()))
    assert [row["state"] for row in rows] == ["complete", "failed", "pruned"]
    assert float(rows[0]["val_accuracy"]) == trials[0]["value"]
    assert "pruned" in r.stdout and "failed" in r.stdout and "best trial 0" in r.stdout
    best = load_config(sw / "best.yaml")
    assert best.data["optimizer"]["lr"] == 0.05 and "sweep" not in best.data
    assert (sw / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sw / "study.db").exists()
    import optuna

    study = optuna.load_study(study_name="trainkit", storage=f"sqlite:///{sw / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "PRUNED"]
    assert study.trials[2].intermediate_values  # the trial reported its epochs
    r = tk(tmp_path, "runs", sw, check=0)  # trainkit runs lists the trials
    assert "trial-0000" in r.stdout and "trial-0002" in r.stdout


def _fake_no_optuna(tmp_path) -> dict:
    fake = tmp_path / "fake"
    (fake / "optuna").mkdir(parents=True)
    (fake / "optuna" / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    env = env_for(tmp_path)
    env["PYTHONPATH"] = f"{fake}:{env.get('PYTHONPATH', '')}"
    return env


def test_random_sweep_works_without_optuna_and_tpe_names_the_extra(tmp_path):
    env = _fake_no_optuna(tmp_path)
    sweep = "sweep:\n  trials: 2\n  parameters:\n    optimizer.lr: {space: loguniform, lower: 0.01, upper: 0.1}\n"
    (tmp_path / "r.yaml").write_text(config(epochs=1, sweep=sweep))
    (tmp_path / "t.yaml").write_text(config(epochs=1, sweep=sweep + "  sampler: tpe\n"))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "trainkit", "sweep", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    r = run("t.yaml", "--sweep-dir", "tpe")
    assert r.returncode == 2 and "trainkit[sweep]" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "tpe").exists()
    r = run("r.yaml", "--sweep-dir", "rand", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    trials = _trials(tmp_path / "rand")
    assert [t["state"] for t in trials] == ["complete", "complete"]
    assert not (tmp_path / "rand" / "study.db").exists()
    spec = load_config(tmp_path / "r.yaml").data["sweep"]
    assert [t["params"] for t in trials] == [random_params(spec["parameters"], 3, n) for n in range(2)]
    for t in trials:  # the parameters reached the trial's run
        run_cfg = load_config(tmp_path / "rand" / t["run_dir"] / "config.yaml")
        assert run_cfg.data["optimizer"]["lr"] == t["params"]["optimizer.lr"]


def test_ctrl_c_exits_130_and_resume_continues_without_repeating(tmp_path):
    sweep = "sweep:\n  trials: 1\n  parameters:\n    optimizer.lr: {space: choice, values: [0.05]}\n"
    # checkpoints only when stopped or done: the epochs are fast, the trial long enough to interrupt
    (tmp_path / "s.yaml").write_text(config(epochs=120, sweep=sweep).replace("{epochs: 120}",
                                                                            "{epochs: 120, checkpoint_every: 1000}"))
    proc = subprocess.Popen([sys.executable, "-m", "trainkit", "sweep", "s.yaml", "--sweep-dir", "sw"],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = tmp_path / "sw" / "trial-0000" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "sweep --resume" in out
    t = _trials(tmp_path / "sw")[0]
    assert t["state"] == "running"
    run_json = json.loads((tmp_path / "sw" / "trial-0000" / "run.json").read_text())
    assert run_json["status"] == "interrupted"
    done_before = run_json["epochs_done"]
    assert 0 < done_before < 120
    r = tk(tmp_path, "sweep", "--resume", "sw", "--trials", "2", check=0, timeout=300)
    trials = _trials(tmp_path / "sw")
    assert [x["state"] for x in trials] == ["complete", "complete"]
    resumed = json.loads((tmp_path / "sw" / "trial-0000" / "run.json").read_text())
    assert resumed["epochs_done"] == 120 and "resuming" in (tmp_path / "sw" / "trial-0000" / "train.log").read_text()
    stamp = (tmp_path / "sw" / "trial-0001" / "run.json").stat().st_mtime_ns
    r = tk(tmp_path, "sweep", "--resume", "sw", check=0, timeout=300)  # nothing left: no trial runs again
    assert len(_trials(tmp_path / "sw")) == 2
    assert (tmp_path / "sw" / "trial-0001" / "run.json").stat().st_mtime_ns == stamp
    assert "0 to continue, 0 to start" in r.stdout
