"""report.html: written at the end of training, rebuilt by `trainkit report`, self-contained (nothing fetched),
user text escaped, small; and, where Chromium is installed, opened in it without console errors, with curves
on screen and hover working."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser import Browser, chromium_path, png_pixels
from clitools import digits_config, tk
from trainkit.train.html_report import build_html
from trainkit.train.rundir import MetricsLog, RunInfo
from trainkit.views.html import json_for_script

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    (tmp / "c.yaml").write_text(digits_config(3))
    tk(tmp, "train", tmp / "c.yaml", "--run-dir", tmp / "run", "--quiet", check=0)
    return tmp / "run"


def _references(page: str) -> list[str]:
    """Every URL the page could load: src/href attributes and CSS url(...)."""
    refs = re.findall(r"""(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", page)
    refs += re.findall(r"url\(([^)]*)\)", page)
    return refs


def test_written_at_the_end_of_training_self_contained_and_complete(run):
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # nothing outside the page: only data: URIs and in-page anchors
    assert all(ref.startswith(("data:", "#")) for ref in _references(page)), _references(page)
    assert "default-src 'none'" in page  # and the CSP forbids fetching anything anyway
    for section in ("warnings", "curves", "epochs", "test", "diagnostics", "model", "config"):
        assert f'<section id="{section}">' in page
    assert 'id="chart-loss"' in page and 'id="chart-acc"' in page
    assert "confusion matrix" in page and "per class" in page
    assert "No warnings" in page
    assert page.count('class="tk-heat"') >= 6  # gradient norm, weight norm, update ratio, mean, std, dead units
    model = page[page.index('<section id="model">'):page.index('<section id="config">')]
    if shutil.which("dot"):  # the layer graph, drawn by Graphviz...
        assert "<svg" in model and "<?xml" not in model and "DOCTYPE svg" not in model
    else:  # ... or as its DOT text
        assert "digraph" in model
    data = json.loads(re.search(r'<script type="application/json" id="tk-data">(.*?)</script>', page, re.S).group(1))
    assert [r["epoch"] for r in data["rows"]] == [1, 2, 3]
    assert data["heat"]["grad_norm"]["epochs"] == [1, 2, 3]
    assert data["heat"]["grad_norm"]["labels"] == ["1 (linear)", "4 (linear)"]
    assert len((run / "report.html").read_bytes()) < 2 * 1024 * 1024


def test_trainkit_report_rebuilds_it(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    old = (copy / "report.html").read_text()
    (copy / "report.html").unlink()
    (copy / "diagnostics.png").unlink()
    r = tk(tmp_path, "report", copy, check=0)
    assert "report.html" in r.stdout and (copy / "diagnostics.png").is_file()
    new = (copy / "report.html").read_text()
    strip = lambda s: re.sub(r"copy|run", "", s)  # noqa: E731  (the run directory's name appears in the page)
    assert strip(new) == strip(old)
    r = tk(tmp_path, "report", tmp_path / "nothing")
    assert r.returncode == 2 and "no such run directory" in r.stderr and "Traceback" not in r.stderr


def test_without_graphviz_the_graph_is_dot_text(run, monkeypatch):
    from trainkit.views import html
    monkeypatch.setattr(html.shutil, "which", lambda name: None)
    page = build_html(run, dot_text='digraph "m" { "a" -> "b"; }')
    model = page[page.index('<section id="model">'):]
    assert "<svg" not in model and "digraph &quot;m&quot;" in model and "apt install graphviz" in model


def _hostile_run(path: Path, epochs: int = 3, layers: int = 3, classes: int = 3) -> Path:
    path.mkdir()
    RunInfo.create(path, name=HOSTILE, seed=0, epochs_planned=epochs, command=["trainkit", HOSTILE],
                   config_file=HOSTILE, data={"dataset": HOSTILE, "task": "classification"})
    log = MetricsLog(path)
    for e in range(1, epochs + 1):
        log.append({"epoch": e, "train_loss": 1 / e, "train_acc": 0.5, "val_loss": 1.1 / e, "val_acc": 0.4,
                    "lr": 0.1, "seconds": 1.0, "images_per_s": 10.0})
    names = [f"{HOSTILE}{i}" for i in range(classes)]
    cm = np.random.default_rng(0).integers(0, 50, (classes, classes)).tolist()
    (path / "report.json").write_text(json.dumps({
        "run": HOSTILE, "task": "classification", "dataset": HOSTILE, "split": "test", "checkpoint": HOSTILE,
        "epoch": 1, "test": {"n": 10, "accuracy": 0.5, "loss": 1.0, "macro_f1": 0.4, "class_names": names,
                             "confusion_matrix": cm,
                             "per_class": [{"class": n, "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3}
                                           for n in names]}}))
    with open(path / "diagnostics.jsonl", "w") as f:
        for e in range(1, epochs + 1):
            f.write(json.dumps({"epoch": e, "step": e, "warnings": [
                {"kind": HOSTILE, "epoch": e, "step": None, "layer": HOSTILE, "message": HOSTILE}],
                "layers": [{"name": f"{HOSTILE}{i}", "type": "linear", "grad_norm": 0.1 * (i + 1), "weight_norm": 1.0,
                            "update_ratio": 1e-3, "act_mean": 0.0, "act_std": 1.0, "dead_fraction": 0.1,
                            "grad_nonfinite": 0.0, "weight_nonfinite": 0.0, "act_nonfinite": 0.0}
                           for i in range(layers)]}) + "\n")
    (path / "config.yaml").write_text(f"name: x\ndata: {{dataset: '{HOSTILE}'}}\n")
    return path


def test_user_text_is_escaped_everywhere(tmp_path):
    page = build_html(_hostile_run(tmp_path / "r"), dot_text=f'digraph "{HOSTILE}" {{}}')
    assert HOSTILE not in page  # every occurrence is escaped...
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page  # ... and still there to read
    assert page.count("<script") == 2  # the page's own data block and script, nothing else
    data = re.search(r'<script type="application/json" id="tk-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data)["heat"]["grad_norm"]["labels"][0] == f"{HOSTILE}0 (linear)"
    assert json.loads(json_for_script({"a": "</script><b>&"})) == {"a": "</script><b>&"}
    assert "<" not in json_for_script({"a": "</script>"})


def test_a_long_large_run_stays_under_two_megabytes(tmp_path):
    """200 epochs, 60 layers, 100 classes: heatmaps are one pixel per cell, so size grows with the data only."""
    page = build_html(_hostile_run(tmp_path / "r", epochs=200, layers=60, classes=100))
    assert len(page.encode()) < 2 * 1024 * 1024, len(page.encode())


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_opens_in_headless_chromium_without_errors_and_shows_curves(run, tmp_path):
    with Browser() as b:
        b.open((run / "report.html").resolve().as_uri())
        box = b.evaluate("(() => { const r = document.getElementById('chart-loss').getBoundingClientRect();"
                         " return [r.left, r.top, r.width, r.height]; })()")
        # hover the middle of the loss chart: the cursor and the epoch's values appear
        b.mouse_move(box[0] + box[2] * 0.55, box[1] + box[3] * 0.5)
        tip = b.evaluate("document.getElementById('tip').textContent")
        shown = b.evaluate("getComputedStyle(document.getElementById('tip')).display")
        assert shown == "block" and tip.startswith("epoch 2") and "train_loss: " in tip and "val_acc: " in tip
        b.mouse_move(1, 1)
        heat = b.evaluate("(() => { const img = document.querySelector('img.tk-heat'); img.scrollIntoView();"
                          " const r = img.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        b.mouse_move(heat[0] + heat[2] * 0.9, heat[1] + 2)
        assert b.evaluate("document.getElementById('tip').textContent").startswith("1 (linear)\nepoch 3\n")
        b.mouse_move(1, 1)
        b.evaluate("window.scrollTo(0, 0)")
        png = b.screenshot()
    assert b.errors == []
    (tmp_path / "report.png").write_bytes(png)
    img = png_pixels(png).astype(int)
    assert img.std() > 20  # not blank
    x0, y0, w, h = (int(round(v)) for v in box)
    chart = img[y0:y0 + h, x0:x0 + w]
    for color in ((0x25, 0x63, 0xEB), (0xEA, 0x58, 0x0C)):  # the train and val curves' colours
        near = (np.abs(chart - np.array(color)).sum(axis=2) < 40).sum()
        assert near > 100, (color, near)
