"""Per-layer diagnostics: the statistics, the advice rules, and real runs — each deliberately bad setup
triggers its warning, the shipped digits configs trigger none, and diagnostics change no result (on/off,
interrupt and resume)."""
from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import trainkit
import trainkit.nn as nn
from clitools import assert_same_weights, digits_config, env_for, rows_without_timing, tk, weights
from trainkit.config import load_config
from trainkit.config.resolved import DiagnosticsSpec
from trainkit.config.schema import DIAGNOSTICS
from trainkit.registry import Checker
from trainkit.errors import ConfigError
from trainkit.train.diagnostics import activation_stats, read_rows, tracked_layers
from trainkit.train.diagnostics.advice import Advisor

ROOT = Path(__file__).resolve().parent.parent


def spec(**kw):
    """The default ``train.diagnostics`` settings (the schema's), with ``kw`` changed."""
    return DiagnosticsSpec(**{**DIAGNOSTICS.check(None, (), Checker()), **kw})


def load_config_text(text: str, tmp: Path | None = None):
    import tempfile
    d = Path(tmp or tempfile.mkdtemp())
    (d / "c.yaml").write_text(text)
    return load_config(d / "c.yaml")


# ---------------------------------------------------------------------- statistics
def test_activation_stats_dead_units_nonfinite_mean_std():
    a = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 3.0, 0.0, 0.0]], dtype=np.float32)
    s = activation_stats(trainkit.tensor(a), relu_like=True)
    assert s["dead_fraction"] == 0.5  # units 0 and 2 never fire; unit 3 fires once
    assert s["act_mean"] == pytest.approx(a.mean()) and s["act_std"] == pytest.approx(a.std())
    assert s["act_nonfinite"] == 0.0
    # a conv-shaped output: a unit is a channel at one position
    b = np.zeros((3, 2, 2, 2), dtype=np.float32)
    b[1, 0, 1, 1] = 1.0
    assert activation_stats(trainkit.tensor(b), relu_like=True)["dead_fraction"] == 7 / 8
    c = np.array([[1.0, np.nan], [np.inf, 3.0]], dtype=np.float32)
    s = activation_stats(trainkit.tensor(c))
    assert s["act_nonfinite"] == 0.5 and s["act_mean"] == 2.0 and "dead_fraction" not in s
    assert activation_stats(trainkit.tensor(np.array([1, 2]))) == {}  # integer outputs have no statistics


def test_tracked_layers_are_parameter_layers_and_activations_with_yaml_names():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 2), nn.Sigmoid())
    model[4].bias.requires_grad_(False)
    layers = tracked_layers(model)
    assert [(L.name, L.type, L.relu_like, len(L.params)) for L in layers] == [
        ("1", "linear", False, 2), ("2", "relu", True, 0), ("4", "linear", False, 1), ("5", "sigmoid", False, 0)]
    assert layers[0].label == "1 (linear)"


def test_heatmap_matrix_log_scale_zeros_and_gaps():
    from trainkit.train.diagnostics.plot import panel_matrix
    rows = [{"epoch": 1, "layers": [{"name": "0", "type": "linear", "grad_norm": 0.0},
                                    {"name": "1", "type": "relu"},
                                    {"name": "2", "type": "linear", "grad_norm": 1e-17}]},
            {"epoch": 2, "layers": [{"name": "0", "type": "linear", "grad_norm": 1e-3},
                                    {"name": "2", "type": "linear", "grad_norm": None}]}]
    labels, epochs, m = panel_matrix(rows, "grad_norm", log=True)
    assert labels == ["0 (linear)", "2 (linear)"] and epochs == [1, 2]
    # a zero sits a decade below the smallest value (not clipped onto it); a missing value stays a gap
    np.testing.assert_allclose(m, [[-18.0, -3.0], [-17.0, np.nan]])


# ---------------------------------------------------------------------- rules
class _L:
    def __init__(self, name, typ="linear", params=True):
        self.name, self.type, self.params = name, typ, [object()] if params else []
        self.label = f"{name} ({typ})"


def test_update_ratio_needs_a_sustained_ratio_or_one_huge_step():
    layers = [_L("0"), _L("1")]
    adv = Advisor(spec(), lr=lambda: 0.5)
    # Adam's first step moves every weight by lr: 0.5 of the norm is not yet a verdict...
    assert adv.check_step(1, 1, layers, [1.0, 1.0], [0, 0], [None, None], [0.5, 0.01]) == []
    assert adv.check_step(1, 11, layers, [1.0, 1.0], [0, 0], [1.0, 1.0], [0.05, 0.01]) == []
    # ... two later steps above the threshold are
    out = adv.check_step(1, 21, layers, [1.0, 1.0], [0, 0], [1.0, 1.0], [0.3, 0.01])
    assert [a.kind for a in out] == ["update_ratio"] and out[0].layer == "0" and out[0].step == 21
    assert "0 (linear)" in out[0].message and "optimizer.lr is 0.5" in out[0].message
    # once per run
    assert adv.check_step(1, 31, layers, [1.0, 1.0], [0, 0], [1.0, 1.0], [0.9, 0.9]) == []
    fresh = Advisor(spec())
    out = fresh.check_step(1, 1, layers, [1.0, 1.0], [0, 0], [None, None], [0.02, 1.6])  # weights changed by 160%
    assert [(a.kind, a.layer, a.step) for a in out] == [("update_ratio", "1", 1)]


def test_exploding_and_nonfinite_gradients():
    layers = [_L("0"), _L("1")]
    adv = Advisor(spec(exploding=100.0))
    assert adv.check_step(1, 1, layers, [0.1, 1.0], [0, 0], [None, None], [None, None]) == []
    out = adv.check_step(1, 11, layers, [20.0, 2.0], [0, 0], [0.1, 1.0], [None, None])
    assert [(a.kind, a.layer) for a in out] == [("exploding", "0")] and "200x" in out[0].message
    out = adv.check_step(1, 21, layers, [20.0, None], [0, 0.25], [0.1, 1.0], [None, None])
    assert [(a.kind, a.layer) for a in out] == [("exploding", "1")] and "non-finite" in out[0].message


def test_vanishing_names_the_layers_but_not_those_behind_dead_units():
    layers = [_L(str(i)) for i in range(4)]
    recs = [{"grad_norm": 1e-9}, {"grad_norm": 1e-6}, {"grad_norm": 1e-2}, {"grad_norm": 0.5}]
    out = Advisor(spec()).check_epoch(2, 80, layers, recs, 1.0, 1.0, 10)
    assert [(a.kind, a.layer) for a in out] == [("vanishing", "0")]
    assert "layers 0 (linear), 1 (linear)" in out[0].message and "sigmoid" in out[0].message
    # exactly zero gradients below a dead ReLU: the dead-units warning explains them
    layers = [_L("0"), _L("1", "relu", params=False), _L("2")]
    recs = [{"grad_norm": 0.0}, {"dead_fraction": 1.0}, {"grad_norm": 0.3}]
    out = Advisor(spec()).check_epoch(1, 40, layers, recs, 2.3, 2.3, 10)
    assert [(a.kind, a.layer) for a in out] == [("dead_units", "1")]
    assert "100% dead units after layer 1 (relu)" in out[0].message and "leaky_relu" in out[0].message
    assert "bias) of layer 0 (linear)" in out[0].message


def test_loss_stuck_at_ln_classes_needs_consecutive_epochs():
    adv = Advisor(spec(stuck_epochs=2))
    layers = [_L("0")]
    assert adv.check_epoch(1, 10, layers, [{}], math.log(10) * 1.01, None, 10) == []
    out = adv.check_epoch(2, 20, layers, [{}], math.log(10) * 0.995, None, 10)
    assert [a.kind for a in out] == ["loss_stuck"] and "ln(10) = 2.303" in out[0].message
    healthy = Advisor(spec(stuck_epochs=2))
    for e, loss in enumerate([2.29, 1.8, 1.2], 1):
        assert healthy.check_epoch(e, e * 10, layers, [{}], loss, None, 10) == []
    assert Advisor(spec(stuck_epochs=1)).check_epoch(1, 1, layers, [{}], 2.3, None, None) == []  # regression


def test_overfitting_needs_rising_val_falling_train_and_a_real_rise():
    layers = [_L("0")]
    adv = Advisor(spec(overfit_epochs=3))
    losses = [(1.0, 0.50), (0.8, 0.40), (0.6, 0.42), (0.5, 0.45), (0.4, 0.47)]
    kinds = [[a.kind for a in adv.check_epoch(e, e, layers, [{}], t, v, None)] for e, (t, v) in enumerate(losses, 1)]
    assert kinds == [[], [], [], [], ["overfitting"]]
    noisy = Advisor(spec(overfit_epochs=3))  # rising three times, but by 1% of the best: noise
    for e, (t, v) in enumerate([(1.0, 0.400), (0.9, 0.401), (0.8, 0.402), (0.7, 0.404)], 1):
        assert noisy.check_epoch(e, e, layers, [{}], t, v, None) == []


def test_advisor_state_round_trips():
    adv = Advisor(spec())
    adv.check_epoch(1, 1, [_L("0")], [{"grad_norm": 0.0}, ], 2.302, 2.4, 10)
    adv.check_step(1, 11, [_L("0")], [1.0], [0], [1.0], [0.2])
    again = Advisor(spec())
    again.load_state_dict(json.loads(json.dumps(adv.state_dict())))
    assert again.state_dict() == adv.state_dict()


# ---------------------------------------------------------------------- the config key
def test_diagnostics_key_is_declared_and_validated(tmp_path):
    base = "data: {dataset: iris}\nmodel: {layers: [{linear: {out_features: 3}}]}\noptimizer: {type: sgd}\n"
    assert load_config_text(base + "train: {diagnostics: false}\n", tmp_path).resolved.train.diagnostics.enabled is False
    d = load_config_text(base + "train: {diagnostics: {every: 5, dead_units: 0.5}}\n", tmp_path).resolved.train
    assert (d.diagnostics.enabled, d.diagnostics.every, d.diagnostics.dead_units) == (True, 5, 0.5)
    for bad, expect in (("{every: 0}", "train.diagnostics.every: must be >= 1"),
                        ("{dead_unit: 0.5}", "did you mean 'dead_units'"),
                        ("3", "expected true, false or a diagnostics mapping"),
                        ("{update_ratio: -1}", "train.diagnostics.update_ratio: must be > 0")):
        with pytest.raises(ConfigError) as info:
            load_config_text(base + f"train: {{diagnostics: {bad}}}\n", tmp_path)
        assert expect in str(info.value)


# ---------------------------------------------------------------------- runs
def _mlp(layers: str, optimizer: str, epochs: int = 3) -> str:
    return (f"name: bad\nseed: 0\ndata: {{dataset: digits, val_split: 0.1, batch_size: 32}}\n"
            f"model:\n  layers:\n{layers}optimizer: {optimizer}\ntrain: {{epochs: {epochs}}}\n")


BIASED_LINEAR = '''\
import trainkit.nn as nn
import trainkit.nn.functional as F
from trainkit.nn import init


class BiasedLinear(nn.Module):
    """An affine layer whose bias starts at the constant ``bias_value`` (weights initialised as nn.Linear)."""

    def __init__(self, in_features: int, out_features: int, bias_value: float = 0.0):
        super().__init__()
        inner = nn.Linear(in_features, out_features)
        self.weight, self.bias = inner.weight, inner.bias
        init.constant_(self.bias, bias_value)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)
'''

BAD_SETUPS = {
    # SGD at learning rate 10: the first step moves the weights by more than their own size
    "lr_10": (_mlp("    - flatten\n    - linear: {out_features: 64}\n    - relu\n    - linear: {out_features: 10}\n",
                   "{type: sgd, lr: 10}"), "update_ratio", "update/weight ratio"),
    # 20 linear+sigmoid layers: the gradient shrinks ~4x per layer on its way to the input
    "sigmoid_20": (_mlp("    - flatten\n" + "    - linear: {out_features: 32}\n    - sigmoid\n" * 20
                        + "    - linear: {out_features: 10}\n", "{type: sgd, lr: 0.05}"),
                   "vanishing", "vanishing gradients in layers 1 (linear)"),
    # a bias of -10 before a ReLU: no digit (pixels in [0, 1]) brings a unit above 0
    "negative_bias": (_mlp("    - flatten\n    - ./biased.py:BiasedLinear: {out_features: 64, bias_value: -10.0}\n"
                           "    - relu\n    - linear: {out_features: 10}\n", "{type: adam, lr: 0.001}"),
                      "dead_units", "100% dead units after layer 2 (relu)"),
}


@pytest.mark.parametrize("name", list(BAD_SETUPS))
def test_a_bad_setup_triggers_its_warning(tmp_path, name):
    text, kind, phrase = BAD_SETUPS[name]
    (tmp_path / "biased.py").write_text(BIASED_LINEAR)
    (tmp_path / "c.yaml").write_text(text)
    r = tk(tmp_path, "train", tmp_path / "c.yaml", "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    rows = read_rows(tmp_path / "run")
    warnings = [w for row in rows for w in row["warnings"]]
    assert kind in [w["kind"] for w in warnings], warnings
    log = (tmp_path / "run" / "train.log").read_text()
    console = " ".join(r.stdout.split())  # rich wraps long lines on the console
    assert phrase in " ".join(log.split()) and phrase in console
    # each warning once in the log, with its epoch
    for w in warnings:
        assert log.count(w["message"][:60]) == 1
        assert f"warning (epoch {w['epoch']}" in log
    assert (tmp_path / "run" / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("config, epochs", [("digits_mlp.yaml", 20), ("digits_cnn.yaml", 3)])
def test_the_healthy_digits_runs_trigger_no_warning(tmp_path, config, epochs):
    # the MLP as shipped; the CNN's 10 epochs (a minute under a loaded CI) cut to 3
    tk(tmp_path, "train", ROOT / "configs" / config, "--run-dir", tmp_path / "run", "--quiet",
       "--set", f"train.epochs={epochs}", check=0)
    rows = read_rows(tmp_path / "run")
    assert len(rows) == json.loads((tmp_path / "run" / "run.json").read_text())["epochs_done"]
    assert [w for row in rows for w in row["warnings"]] == []
    assert "warning" not in (tmp_path / "run" / "train.log").read_text()
    # the numbers are there and plausible
    first = rows[0]["layers"]
    assert [layer["type"] for layer in first if layer["type"] != "relu"][-1] == "linear"
    for layer in first:
        if layer["type"] in ("linear", "conv2d"):
            assert 0 < layer["grad_norm"] < 100 and layer["weight_norm"] > 0 and 0 < layer["update_ratio"] < 0.1
            assert layer["grad_nonfinite"] == layer["weight_nonfinite"] == layer["act_nonfinite"] == 0
        else:
            assert 0 <= layer["dead_fraction"] < 0.9 and layer["act_mean"] >= 0


def _write(tmp: Path, extra: str = "") -> Path:
    p = tmp / "tiny_digits.yaml"
    p.write_text(digits_config(3) + extra)
    return p


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag-baseline")
    tk(tmp, "train", _write(tmp), "--run-dir", tmp / "run", "--quiet", check=0)
    return tmp / "run"


def test_diagnostics_change_no_result(baseline, tmp_path):
    """Dropout draws from the global RNG every step: a probe batch that drew too would shift every later epoch."""
    tk(tmp_path, "train", _write(tmp_path), "--run-dir", tmp_path / "off", "--quiet",
       "--set", "train.diagnostics=false", check=0)
    assert rows_without_timing(tmp_path / "off") == rows_without_timing(baseline)
    assert_same_weights(weights(tmp_path / "off"), weights(baseline))
    assert not (tmp_path / "off" / "diagnostics.jsonl").exists() and not (tmp_path / "off" / "diagnostics.png").exists()
    assert (tmp_path / "off" / "report.html").is_file()
    every = tmp_path / "every"
    tk(tmp_path, "train", _write(tmp_path), "--run-dir", every, "--quiet", "--set", "train.diagnostics.every=1", check=0)
    assert rows_without_timing(every) == rows_without_timing(baseline)
    assert [r["layers"][0]["grad_norm"] for r in read_rows(every)] != [r["layers"][0]["grad_norm"]
                                                                       for r in read_rows(baseline)]


def test_interrupt_and_resume_write_the_same_diagnostics(baseline, tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(_write(tmp_path)), "--run-dir", str(run)],
                         env=env_for(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "diagnostics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    tk(tmp_path, "train", "--resume", run, "--quiet", check=0)
    assert read_rows(run) == read_rows(baseline)  # mid-epoch accumulators came back from the checkpoint
    assert rows_without_timing(run) == rows_without_timing(baseline)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """The baseline's config stopped after 2 epochs (to be extended to 3 by --resume)."""
    tmp = tmp_path_factory.mktemp("diag-two")
    tk(tmp, "train", _write(tmp), "--run-dir", tmp / "run", "--quiet", "--set", "train.epochs=2", check=0)
    return tmp / "run"


def test_resume_drops_rows_a_killed_process_wrote_after_its_checkpoint(baseline, two_epochs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_epochs, run)
    stale = dict(read_rows(run)[-1], epoch=3, step=999)
    with open(run / "diagnostics.jsonl", "a") as f:  # as if killed after the row, before the checkpoint
        f.write(json.dumps(stale) + "\n" + '{"epoch": 4, "lay')  # and a torn line
    tk(tmp_path, "train", "--resume", run, "--set", "train.epochs=3", "--quiet", check=0)
    assert [r["epoch"] for r in read_rows(run)] == [1, 2, 3]
    assert read_rows(run) == read_rows(baseline)


def test_a_row_lost_in_a_power_cut_comes_back_from_the_checkpoint(baseline, two_epochs, tmp_path):
    """Rows are fsynced in the background; the checkpoint after a row keeps a copy of it."""
    run = tmp_path / "run"
    shutil.copytree(two_epochs, run)
    lines = (run / "diagnostics.jsonl").read_text().splitlines(keepends=True)
    (run / "diagnostics.jsonl").write_text(lines[0])  # epoch 2's row never reached the disk
    tk(tmp_path, "train", "--resume", run, "--set", "train.epochs=3", "--quiet", check=0)
    assert read_rows(run) == read_rows(baseline)


def test_a_sink_gets_each_epochs_row_and_arrays(tmp_path):
    """The hook point a TensorBoard writer uses for histograms."""
    from rich.console import Console

    from trainkit.train.run import Run
    from trainkit.train.session import prepare
    from trainkit.train.trainer import Trainer

    prep = prepare(_write(tmp_path), ["train.epochs=2"])
    run = Run.create(None, "x", exact=tmp_path / "run")
    run.open_log(Console(file=open(tmp_path / "out.txt", "w")), quiet=True)
    run.start("", name="x", seed=3, epochs=2, command=[], config_file="c.yaml", data={})
    trainer = Trainer(prep, run)
    diag = next(cb for cb in trainer.callbacks if cb.name == "diagnostics")
    seen = []
    diag.add_sink(lambda epoch, row, arrays: seen.append((epoch, row["epoch"], {k: sorted(v) for k, v in arrays.items()})))
    trainer.fit()
    run.close()
    assert [s[:2] for s in seen] == [(1, 1), (2, 2)]
    assert seen[0][2] == {"weights": ["1.0", "1.1", "4.0", "4.1"], "grads": ["1.0", "1.1", "4.0", "4.1"],
                          "activations": ["1", "2", "4"]}
