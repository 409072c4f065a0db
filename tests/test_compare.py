"""`trainkit compare`: config differences, final metrics, overlaid curves; refusals of bad input."""
from __future__ import annotations

import json
import shutil

import pytest

from clitools import digits_config, tk
from trainkit.train.compare import config_differences, final_metrics, load_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    (tmp / "c.yaml").write_text(digits_config(3))
    tk(tmp, "train", tmp / "c.yaml", "--run-dir", tmp / "a", "--quiet", check=0)
    tk(tmp, "train", tmp / "c.yaml", "--run-dir", tmp / "b", "--quiet", "--set", "optimizer.lr=0.05",
       "--set", "train.epochs=2", "--set", "model.layers.1.linear.out_features=16", check=0)
    return tmp, tmp / "a", tmp / "b"


def test_differences_and_final_metrics(runs):
    _, a, b = runs
    ra, rb = load_runs([a, b])
    diffs = dict(config_differences([ra, rb]))
    assert diffs == {"model.layers.1.linear.out_features": [32, 16], "optimizer.lr": [0.1, 0.05],
                     "train.epochs": [3, 2]}
    m = final_metrics(ra)
    rows = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((a / "report.json").read_text())
    assert m["epochs"] == 3 and m["train_loss"] == rows[-1]["train_loss"] and m["val_acc"] == rows[-1]["val_acc"]
    assert m["test"] == {"split": "test", "loss": report["test"]["loss"], "acc": report["test"]["accuracy"]}
    assert m["best"]["name"] == "val_acc" and m["status"] == "completed"


def test_different_layer_lists_are_one_row(runs):
    _, a, b = runs
    ra, rb = load_runs([a, b])
    rb.config = json.loads(json.dumps(rb.config))
    rb.config["model"]["layers"].insert(1, "relu")
    diffs = dict(config_differences([ra, rb]))
    assert diffs["model.layers"][1].startswith("flatten -> relu -> linear(out_features=16) -> relu")
    assert not any(k.startswith("model.layers.") for k in diffs)


def test_cli_tables_json_and_picture(runs, tmp_path):
    tmp, a, b = runs
    r = tk(tmp_path, "compare", a, b, "-o", tmp_path / "cmp.png", check=0)
    out = " ".join(r.stdout.split())
    assert "config differences" in out and "optimizer.lr │ 0.1 │ 0.05" in out
    assert "final metrics" in out and "completed" in out and "seed" not in out  # identical keys are left out
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = tk(tmp_path, "compare", a, b, "--json", check=0)
    data = json.loads(r.stdout)
    assert [x["label"] for x in data["runs"]] == ["a", "b"] and data["runs"][1]["epochs"] == 2
    assert data["config_differences"]["optimizer.lr"] == [0.1, 0.05]
    r = tk(tmp_path, "compare", a, b, "-o", tmp_path / "cmp.svg", check=0)
    assert (tmp_path / "cmp.svg").read_text().lstrip().startswith("<?xml")


def test_bad_input_is_refused_with_exit_2(runs, tmp_path):
    tmp, a, b = runs
    for args, expect in (([a], "at least two run directories"),
                         ([a, tmp_path / "missing"], "no such run directory"),
                         ([a, tmp_path], "not a trainkit run directory"),
                         ([a, a], "given twice"),
                         ([a, b, "-o", tmp_path / "x.txt"], "must be a .png, .svg or .pdf")):
        r = tk(tmp_path, "compare", *args)
        assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr
    broken = tmp_path / "broken"
    shutil.copytree(b, broken)
    (broken / "metrics.jsonl").write_text("{not json\n")
    r = tk(tmp_path, "compare", a, broken)
    assert r.returncode == 2 and "metrics.jsonl:1: not valid JSON" in r.stderr


def test_user_text_is_printed_literally(runs, tmp_path):
    """Config values are the user's text: rich markup in them is shown, not interpreted."""
    _, a, b = runs
    c = tmp_path / "c"
    shutil.copytree(b, c)
    text = (c / "config.yaml").read_text().replace("name: tiny_digits", "name: tiny_digits\n# x")
    (c / "config.yaml").write_text(text.replace("dataset: digits", "dataset: '[bold red]digits[/]'"))
    r = tk(tmp_path, "compare", a, c, check=0)
    assert "[bold red]digits[/]" in r.stdout
