"""The one table of metric names: every name that validates is computed, watched and can stop a run."""
from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from trainkit.config import ConfigError, load_config
from trainkit.registry import TASKS, find_metric, metric_names
from trainkit.assemble.prepare import prepare
from trainkit.train.session import train

#: A tiny run per task: ``{metric}`` is filled in per case.
CONFIGS = {
    "classification": """\
        data: {dataset: iris, val_split: 0.25, batch_size: 16}
        model: {layers: [{linear: {out_features: 8}}, relu, {linear: {out_features: 3}}]}
        optimizer: {type: sgd, lr: 0.05}
        train: {epochs: 4, early_stopping: {metric: METRIC, patience: 1, min_delta: 1.0e9}}
        """,
    "regression": """\
        data: {dataset: linear, n_samples: 60, n_features: 2, val_split: 0.25, batch_size: 16}
        model: {layers: [{linear: {out_features: 1}}]}
        optimizer: {type: sgd, lr: 0.05}
        train: {epochs: 4, early_stopping: {metric: METRIC, patience: 1, min_delta: 1.0e9}}
        """,
    "language_model": """\
        data: {dataset: tinyshakespeare, block_size: 16, batch_size: 8, steps_per_epoch: 4, eval_batch_size: 1024}
        model: {layers: [{embedding: {num_embeddings: 65, embedding_dim: 8}}, {linear: {out_features: 65}}]}
        optimizer: {type: adam, lr: 0.01}
        train: {epochs: 4, early_stopping: {metric: METRIC, patience: 1, min_delta: 1.0e9}}
        """,
}

CASES = [(task, name) for task in TASKS for name in metric_names(task)]


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("task,metric", CASES, ids=[f"{t}-{m}" for t, m in CASES])
def test_early_stopping_fires_for_every_metric_that_validates(tmp_path, task, metric):
    """With a min_delta nothing can meet, every watched metric stops the run after patience + 1 epochs."""
    path = _write(tmp_path, CONFIGS[task].replace("METRIC", metric))
    load_config(path)  # it validates
    out = io.StringIO()
    code = train(path, runs_dir=tmp_path / "runs", quiet=False, console=Console(file=out, width=150),
                 command=["test"])
    assert code == 0
    run = next((tmp_path / "runs").iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2, f"{metric}: ran {len(rows)} epochs"
    assert f"early stopping: {metric} has not improved for 1 epochs" in out.getvalue()


def test_the_table_is_what_the_meters_log_and_the_schema_accepts():
    assert metric_names("classification") == ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    assert set(metric_names()) >= {"train_r2", "val_rmse", "val_mse", "train_mae"}
    assert find_metric("val_accuracy", "regression") is None and find_metric("train_r2")[1].mode == "max"
    from trainkit.train.metrics import ClassificationMeter, RegressionMeter

    c, r = ClassificationMeter(3), RegressionMeter()
    c.update(1.0, np.eye(3)[[0, 1, 1]], np.array([0, 1, 2]))
    r.update(1.0, np.array([[1.0], [2.0], [4.0]]), np.array([[1.0], [3.0], [3.0]]))
    assert list(c.values("val")) == metric_names("classification")[2:]
    assert list(r.values("train")) == metric_names("regression")[:5]
    assert list(c.epoch_metrics("train")) == ["train_loss", "train_acc"]
    assert list(r.epoch_metrics("val")) == ["val_loss", "val_mse", "val_mae"]
    assert r.values("t")["t_rmse"] == pytest.approx(np.sqrt(2 / 3))


def test_a_metric_of_another_task_is_refused_in_the_first_pass(tmp_path):
    path = _write(tmp_path, CONFIGS["regression"].replace("METRIC", "val_accuracy"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:4:37: train.early_stopping.metric: unknown metric 'val_accuracy' (known for regression: "
        + ", ".join(metric_names("regression")) + ")")


def test_a_metric_the_data_rules_out_is_refused_before_the_run(tmp_path):
    """A CSV with task null: the schema accepts any table name, the loaded data's task decides, located."""
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(20)))
    path = _write(tmp_path, """\
        data: {dataset: csv, path: d.csv, target: y}
        model: {layers: [{linear: {out_features: 1}}]}
        loss: mse
        optimizer: {type: sgd, lr: 0.01}
        scheduler: {type: plateau, metric: train_accuracy}
        """)
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ConfigError) as info:
            prepare(path)
    finally:
        os.chdir(cwd)
    assert str(info.value).startswith(f"{path}:5:28: scheduler.metric: unknown metric 'train_accuracy' for this "
                                      "regression data (known for regression: train_loss,")
