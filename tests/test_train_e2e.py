"""End-to-end runs of the CLI in subprocesses: run directories, reports, eval, resume, signals, divergence."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clitools import assert_same_weights, digits_config, env_for, rows_without_timing, tk, weights

def write_config(tmp_path: Path, epochs: int = 3, extra: str = "") -> Path:
    p = tmp_path / "tiny_digits.yaml"
    p.write_text(digits_config(epochs) + extra)
    return p


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """One uninterrupted 3-epoch run shared by the comparisons below (once per module and test worker:
    the tests only read it, or copy it before they resume it)."""
    tmp = tmp_path_factory.mktemp("baseline")
    cfg = write_config(tmp)
    tk(tmp, "train", cfg, "--run-dir", tmp / "run", "--quiet", check=0)
    return tmp / "run"


def test_run_directory_contents_and_report(baseline, tmp_path):
    run = baseline
    for name in ("config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "report.json", "report.md",
                 "curves.png", "confusion_matrix.png", "train.log"):
        assert (run / name).is_file(), name
    for which in ("last", "best"):
        for name in ("model.safetensors", "state.safetensors", "state.json"):
            assert (run / "checkpoints" / which / name).is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 3 and info["seed"] == 3
    assert set(info["versions"]) >= {"trainkit", "numpy", "python"}
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:5] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert len(csv_lines) == 4
    report = json.loads((run / "report.json").read_text())
    assert report["checkpoint"] == "best" and report["split"] == "test"
    test = report["test"]
    assert 0.8 < test["accuracy"] <= 1.0
    assert len(test["per_class"]) == 10 and sum(c["support"] for c in test["per_class"]) == test["n"]
    assert np.trace(np.array(test["confusion_matrix"])) == round(test["accuracy"] * test["n"])
    log = (run / "train.log").read_text()
    assert "\x1b[" not in log and "train loss" in log
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # eval of the test split with the best checkpoint reproduces report.json exactly
    r = tk(tmp_path, "eval", run, "--json", check=0)
    assert json.loads(r.stdout) == report
    assert json.loads((run / "eval-test-best.json").read_text()) == report
    r = tk(tmp_path, "eval", run, "--checkpoint", "last", "--split", "val", check=0)
    assert "accuracy" in r.stdout
    # runs lists it
    r = tk(tmp_path, "runs", run.parent, check=0)
    assert "run" in r.stdout and "completed" in r.stdout


def test_same_seed_gives_identical_metrics_and_weights(baseline, tmp_path):
    cfg = write_config(tmp_path)
    tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "again", "--quiet", check=0)
    assert rows_without_timing(tmp_path / "again") == rows_without_timing(baseline)
    assert_same_weights(weights(tmp_path / "again"), weights(baseline))


def test_sigint_then_resume_equals_uninterrupted(baseline, tmp_path):
    cfg = write_config(tmp_path)
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(cfg), "--run-dir", str(run)],
                         env=env_for(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    assert f"trainkit train --resume {run}" in (out + err).replace("\n", "")
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    tk(tmp_path, "train", "--resume", run, "--quiet", check=0)
    assert rows_without_timing(run) == rows_without_timing(baseline)
    assert_same_weights(weights(run), weights(baseline))
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("delay", [0.9, 1.4, 2.1])
def test_sigkill_then_resume_equals_uninterrupted(baseline, tmp_path, delay):
    cfg = write_config(tmp_path)
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(cfg), "--run-dir", str(run), "--quiet"],
                         env=env_for(tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    if not (run / "checkpoints").exists() and not (run / "run.json").exists():
        pytest.skip("killed before the run started")
    r = tk(tmp_path, "train", "--resume", run, "--quiet")
    if r.returncode == 2 and "no checkpoint" in r.stderr:
        # killed before the first checkpoint: nothing to resume, and the tool says so
        return
    if r.returncode == 2 and "already completed" in r.stderr:
        pass  # the kill came after the end
    else:
        assert r.returncode == 0, r.stderr
    assert rows_without_timing(run) == rows_without_timing(baseline)
    assert_same_weights(weights(run), weights(baseline))


def test_resume_extends_a_finished_run(baseline, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(baseline, run)
    r = tk(tmp_path, "train", "--resume", run)
    assert r.returncode == 2 and "already completed 3 of 3 epochs" in r.stderr
    tk(tmp_path, "train", "--resume", run, "--set", "train.epochs=4", "--quiet", check=0)
    rows = rows_without_timing(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[:3] == rows_without_timing(baseline)
    r = tk(tmp_path, "train", "--resume", run, "--set", "optimizer.lr=0.5")
    assert r.returncode == 2 and "only train.* keys" in r.stderr


def test_divergence_exits_3_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = write_config(tmp_path, epochs=3)
    text = cfg.read_text().replace("lr: 0.1,", "lr: 1.0e+12,")
    cfg.write_text(text)
    r = tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "run")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "diverged" in r.stdout + r.stderr and "lower learning rate" in (r.stdout + r.stderr).replace("\n", " ")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "diverged" and "epoch 1" in info["message"]


def test_refuses_to_overwrite_and_bad_config_leaves_nothing(baseline, tmp_path):
    cfg = write_config(tmp_path)
    r = tk(tmp_path, "train", cfg, "--run-dir", baseline)
    assert r.returncode == 2 and "not empty" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("batch_size: 32", "batch_sise: 32"))
    r = tk(tmp_path, "train", bad)
    assert r.returncode == 2 and "batch_sise" in r.stderr and "batch_size" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_two_runs_in_the_same_second_get_distinct_directories(tmp_path):
    cfg = write_config(tmp_path, epochs=1)
    procs = [subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(cfg), "--quiet"], env=env_for(tmp_path),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_corrupt_checkpoint_is_refused_by_eval(baseline, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(baseline, run)
    (run / "checkpoints" / "best" / "model.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle
    r = tk(tmp_path, "eval", run)
    assert r.returncode == 2 and "model.safetensors" in r.stderr and "Traceback" not in r.stderr
    r = tk(tmp_path, "eval", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_early_stopping_stops_and_is_reported(tmp_path):
    cfg = write_config(tmp_path, epochs=6, extra="")
    text = cfg.read_text().replace("  epochs: 6\n", "  epochs: 6\n  early_stopping: {metric: val_loss, patience: 1, min_delta: 100.0}\n")
    cfg.write_text(text)
    r = tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "run", "--set", "train.log_every=10", check=0)
    assert "early stopping" in r.stdout
    # no terminal, no progress bar: a line every log_every batches, also in train.log
    assert "epoch 1  batch 10/" in r.stdout and "epoch 2  batch 40/" in r.stdout
    assert "epoch 1  batch 10/" in (tmp_path / "run" / "train.log").read_text()
    rows = rows_without_timing(tmp_path / "run")
    assert [row["epoch"] for row in rows] == [1, 2]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 2


def test_regression_run_reports_mse_mae_r2(tmp_path):
    cfg = tmp_path / "reg.yaml"
    cfg.write_text("""\
data: {dataset: diabetes, val_split: 0.2, batch_size: 32}
model:
  layers:
    - linear: {out_features: 16}
    - relu
    - linear: {out_features: 1}
loss: mse
optimizer: {type: adam, lr: 0.01}
train: {epochs: 3}
""")
    tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "run", "--quiet", check=0)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_mse", "train_mae", "val_mse", "val_mae"} <= set(header) and "train_acc" not in header
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["task"] == "regression" and {"mse", "mae", "r2"} <= set(report["test"])
    assert report["test"]["mse"] > 0 and not (tmp_path / "run" / "confusion_matrix.png").exists()


BN_DIGITS = """\
name: bn_digits
data: {dataset: digits, val_split: 0.1, batch_size: 64}
model:
  layers:
    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
    - batchnorm2d
    - relu
    - flatten
    - linear: {out_features: 10}
optimizer: {type: sgd, lr: 0.05}
train: {epochs: 1}
"""


def test_batch_norm_run_completes_with_its_report(tmp_path):
    """Release blocker: num_batches_tracked (0-d) was saved as shape (1,) and the final report failed."""
    cfg = tmp_path / "bn.yaml"
    cfg.write_text(BN_DIGITS)
    tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "run", "--quiet", check=0)
    run = tmp_path / "run"
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert (run / "report.json").is_file() and (run / "curves.png").is_file()
    for which in ("best", "last"):
        assert weights(run, which)["1.num_batches_tracked"].shape == ()
    tk(tmp_path, "eval", run, check=0)
    tk(tmp_path, "train", "--resume", run, "--set", "train.epochs=2", "--quiet", check=0)
    assert weights(run, "last")["1.num_batches_tracked"].shape == ()
