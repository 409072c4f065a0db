"""Issue 12 through the real CLI: code from copied run directories, one writer per run, no run stuck as
``running``, no NaN checkpoint called good, extending a run's scheduler, user text never parsed as markup,
memory budgets, the traceback list, misleading messages, and links in a run directory.

Most commands run in a fork of one long-lived process (tests/fork_runner.py: the real ``trainkit`` app in
a real process that a fault can kill at a chosen event) so that each costs its work, not 1.5 s of imports;
the ones about processes and ``sys.path`` (two writers, a module shadowing another) run ``python -m
trainkit``. docs/robustness.md maps each case of issue 12 to its test.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clitools import DIGITS_MLP, assert_same_run, env_for, rows_without_timing
from fork_runner import ForkRunner
from trainkit.train.checkpoint import load_checkpoint

#: The tiny digits MLP on 256 samples per part: about 0.3 s of training, 1 s with its report and plots.
SMALL = DIGITS_MLP.replace("  batch_size: 32\n", "  batch_size: 32\n  limit: 256\n")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = ForkRunner(env_for(tmp_path_factory.mktemp("fork-home")))
    yield r
    r.close()


def cli(runner: ForkRunner, tmp: Path, *args, **kw) -> dict:
    """``trainkit ARGS`` in a fork, with the tests' environment for ``tmp``; returns rc, stdout, stderr."""
    return runner.run(list(args), tmp, env={k: v for k, v in env_for(tmp).items() if k.startswith(("TRAINKIT",
                                                                                                     "COLUMNS"))},
                      **kw)


def text(r) -> str:
    out = r["stdout"] + r["stderr"] if isinstance(r, dict) else r.stdout + r.stderr
    return " ".join(out.split())


def refused(r, *phrases: str) -> str:
    """Exit 2, no traceback, each phrase in the message."""
    rc = r["rc"] if isinstance(r, dict) else r.returncode
    flat = text(r)
    assert rc == 2, f"exit {rc}: {flat}"
    assert "Traceback" not in flat, flat
    for p in phrases:
        assert p in flat, f"{p!r} not in: {flat}"
    return flat


def status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


@pytest.fixture(scope="module")
def baseline_and_events(runner, tmp_path_factory) -> tuple[Path, list[str]]:
    """One uninterrupted run of SMALL, to compare finished runs with, and the events of its process."""
    tmp = tmp_path_factory.mktemp("rel-baseline")
    (tmp / "small.yaml").write_text(SMALL)
    r = cli(runner, tmp, "train", tmp / "small.yaml", "--run-dir", tmp / "run", "-q", log_events=True)
    assert r["rc"] == 0, text(r)
    return tmp / "run", r["events"]


@pytest.fixture(scope="module")
def baseline(baseline_and_events) -> Path:
    return baseline_and_events[0]


@pytest.fixture
def run_copy(baseline, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    return run


# ----------------------------------------------------------------------------- 1. code from a copied run dir
LAYERS = """\
import os
from pathlib import Path
from trainkit import nn

Path(os.environ.get("MARKER_DIR", ".")).joinpath("imported-" + __name__.split("_")[-1]).touch()


class Scale(nn.Module):
    def __init__(self, in_features):
        super().__init__()
        self.lin = nn.Linear(in_features, in_features)

    def forward(self, x):
        return self.lin(x)
"""

CUSTOM = """\
name: custom
seed: 0
data: {dataset: iris, batch_size: 16}
model:
  layers:
    - LAYER
    - linear: {out_features: 3}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
"""


def test_code_named_by_a_run_dir_must_be_the_code_it_trained_with(runner, tmp_path):
    (tmp_path / "layers.py").write_text(LAYERS)
    (tmp_path / "c.yaml").write_text(CUSTOM.replace("LAYER", "./layers.py:Scale"))
    run = tmp_path / "run"
    assert cli(runner, tmp_path, "train", tmp_path / "c.yaml", "--run-dir", run, "-q")["rc"] == 0
    record = json.loads((run / "run.json").read_text())["code"]
    assert record["modules"][0]["path"] == str((tmp_path / "layers.py").resolve())
    assert record["modules"][0]["sha256"] == hashlib.sha256((tmp_path / "layers.py").read_bytes()).hexdigest()
    assert cli(runner, tmp_path, "eval", run)["rc"] == 0  # the very file: trusted

    # The file changed after training: eval and resume refuse before importing it.
    (tmp_path / "layers.py").write_text(LAYERS + "\n# edited\n")
    for marker in tmp_path.glob("imported-*"):
        marker.unlink()
    (tmp_path / "rows.csv").write_text("a,b,c,d\n1,2,3,4\n")
    for args in (["eval", run], ["train", "--resume", run, "--set", "train.epochs=2"],
                 ["predict", run, tmp_path / "rows.csv"], ["generate", run]):
        refused(cli(runner, tmp_path, *args), "layers.py", "has changed since the run trained with it",
                "--trust-code")
    assert not list(tmp_path.glob("imported-*"))
    assert status(run) == "completed"
    r = cli(runner, tmp_path, "eval", run, "--trust-code")
    assert r["rc"] == 0 and list(tmp_path.glob("imported-*")), text(r)

    # A copied run dir whose config.yaml now names other code (a file shipped inside the run dir) and whose
    # run.json records that file's hash: the record's signature does not verify, nothing is imported.
    for marker in tmp_path.glob("imported-*"):
        marker.unlink()
    evil = run / "evil.py"
    evil.write_text(LAYERS)
    cfg = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(cfg.replace(str((tmp_path / "layers.py").resolve()), str(evil)))
    info = json.loads((run / "run.json").read_text())
    info["code"] = {"modules": [{"type": f"{evil}:Scale", "path": str(evil),
                                 "sha256": hashlib.sha256(evil.read_bytes()).hexdigest()}], "signature": "0" * 64}
    (run / "run.json").write_text(json.dumps(info))
    refused(cli(runner, tmp_path, "eval", run), "evil.py", "was not written by trainkit for this user")
    info["code"] = None  # no record at all
    (run / "run.json").write_text(json.dumps(info))
    refused(cli(runner, tmp_path, "train", "--resume", run), "records none")
    assert not list(tmp_path.glob("imported-*")) and not list(run.glob("imported-*"))


def test_a_module_name_resolving_elsewhere_is_refused(runner, tmp_path):
    # ``mylayers:Scale`` found through sys.path, which starts with the current folder under ``python -m
    # trainkit``: trained from A, evaluated from B, where another mylayers.py shadows it.
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "mylayers.py").write_text(LAYERS)
    (b / "mylayers.py").write_text(LAYERS.replace("imported-", "shadow-"))
    (a / "c.yaml").write_text(CUSTOM.replace("LAYER", "mylayers:Scale"))
    run = tmp_path / "run"
    env = dict({k: v for k, v in env_for(tmp_path).items() if k.startswith("TRAINKIT")}, MARKER_DIR=str(tmp_path))
    r = runner.run(["train", "c.yaml", "--run-dir", run, "-q"], a, env=env, cwd_on_path=True)
    assert r["rc"] == 0, text(r)
    assert json.loads((run / "run.json").read_text())["code"]["modules"][0]["path"] == str(
        (a / "mylayers.py").resolve())
    r = runner.run(["eval", run], b, env=env, cwd_on_path=True)
    refused(r, "resolves to", str((b / "mylayers.py").resolve()), str((a / "mylayers.py").resolve()))
    assert not list(tmp_path.glob("shadow-*"))
    assert runner.run(["eval", run], a, env=env, cwd_on_path=True)["rc"] == 0


# ----------------------------------------------------------------------------- 2. + 3. one writer; crashed runs
def test_second_writer_is_refused_while_eval_works_and_a_dead_writer_shows_crashed(runner, tmp_path):
    cfg = tmp_path / "long.yaml"
    cfg.write_text(SMALL.replace("limit: 256", "limit: 64").replace("epochs: 3", "epochs: 400"))
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(cfg), "--run-dir", str(run), "-q"],
                         env=env_for(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not (run / "checkpoints" / "best").exists() and time.time() < deadline:
            time.sleep(0.05)
        r = cli(runner, tmp_path, "train", "--resume", run, "--set", "train.epochs=500")
        refused(r, f"PID {p.pid}", "being written by")
        r = cli(runner, tmp_path, "eval", run, "--checkpoint", "last", "--json")
        assert r["rc"] == 0, text(r)
        assert json.loads(r["stdout"])["checkpoint"] == "last"
        assert "running" in cli(runner, tmp_path, "runs", tmp_path)["stdout"]
    finally:
        p.kill()
        p.wait()
    assert status(run) == "running"
    listing = cli(runner, tmp_path, "runs", tmp_path)["stdout"]
    assert "crashed" in listing and "running" not in listing and "stale" not in listing
    rows = len(rows_without_timing(run))
    r = cli(runner, tmp_path, "train", "--resume", run, "-q", "--set", f"train.epochs={rows + 1}")
    assert r["rc"] == 0, text(r)
    assert status(run) == "completed" and len(rows_without_timing(run)) == rows + 1


@pytest.mark.parametrize("fault,event", [("kill", "report:build"), ("sigint", "plots:png"),
                                         ("sigterm", "report:write")])
def test_resume_finishes_a_run_whose_epochs_are_done(runner, baseline_and_events, tmp_path, fault, event):
    baseline, events = baseline_and_events
    (tmp_path / "small.yaml").write_text(SMALL)
    run = tmp_path / "run"
    at = events.index(event) + 1
    r = cli(runner, tmp_path, "train", tmp_path / "small.yaml", "--run-dir", run, "-q", fault=fault, at=at)
    if fault == "kill":
        assert r["rc"] == -9
        assert status(run) == "running"
        assert "crashed" in cli(runner, tmp_path, "runs", tmp_path)["stdout"]
    else:  # Ctrl-C or SIGTERM while the report or plots are written: 130, the resume hint, status interrupted
        assert r["rc"] == 130, text(r)
        assert f"trainkit train --resume {run}" in text(r) and "Traceback" not in text(r)
        assert status(run) == "interrupted"
    r = cli(runner, tmp_path, "train", "--resume", run, "-q")
    assert r["rc"] == 0, text(r)
    assert "all 3 epochs are done" in (run / "train.log").read_text()
    assert status(run) == "completed"
    assert (run / "curves.png").is_file() and (run / "confusion_matrix.png").is_file()
    assert_same_run(run, baseline)
    refused(cli(runner, tmp_path, "train", "--resume", run), "already completed 3 of 3")


# ----------------------------------------------------------------------------- 4. no NaN checkpoint called good
ONE_STEP = """\
name: one_step
seed: 0
data: {dataset: linear, n_samples: 40, batch_size: 64}
model:
  layers:
    - linear: {out_features: 8}
    - relu
    - linear: {out_features: 1}
loss: mse
optimizer: {type: sgd, lr: LR}
SCHED
train: {epochs: 3}
"""


def _finite(ckpt: Path) -> bool:
    model, state, _ = load_checkpoint(ckpt)
    return all(np.isfinite(v).all() for v in [*model.values(), *state.values()] if v.dtype.kind == "f")


def test_weights_that_became_nan_are_never_checkpointed_nor_called_good(runner, tmp_path):
    # One step per epoch with lr 1e300: the loss of that step is finite, the weights after it are not.
    (tmp_path / "a.yaml").write_text(ONE_STEP.replace("LR", "1.0e+300").replace("SCHED\n", ""))
    r = cli(runner, tmp_path, "train", tmp_path / "a.yaml", "--run-dir", tmp_path / "a")
    assert r["rc"] == 3, text(r)
    assert "no good checkpoint was written" in text(r) and "NaN or infinite" in text(r)
    assert "last good checkpoint" not in text(r)
    assert not (tmp_path / "a" / "checkpoints" / "last").exists()
    assert not (tmp_path / "a" / "checkpoints" / "best").exists()
    assert not (tmp_path / "a" / "metrics.jsonl").exists()  # no metrics row for the diverged epoch
    # Diverging in epoch 2 (the lr jumps by 1e300): epoch 1's checkpoint is the good one, and it is finite.
    (tmp_path / "b.yaml").write_text(ONE_STEP.replace("LR", "0.01").replace(
        "SCHED", "scheduler: {type: step, step_size: 1, gamma: 1.0e+300}"))
    r = cli(runner, tmp_path, "train", tmp_path / "b.yaml", "--run-dir", tmp_path / "b")
    assert r["rc"] == 3, text(r)
    assert "the last good checkpoint (epoch 1)" in text(r) and "epoch 2" in text(r)
    for which in ("last", "best"):
        assert _finite(tmp_path / "b" / "checkpoints" / which)
        assert load_checkpoint(tmp_path / "b" / "checkpoints" / which)[2]["epoch"] == 1
    assert status(tmp_path / "b") == "diverged"


# ----------------------------------------------------------------------------- 5. extending a run's scheduler
ONECYCLE = SMALL.replace("scheduler: {type: step, step_size: 2, gamma: 0.5}",
                         "scheduler: {type: onecycle, max_lr: 0.2}").replace("epochs: 3", "epochs: 2")


def test_onecycle_total_steps_shorter_than_the_run_is_refused_at_validation(runner, tmp_path):
    (tmp_path / "c.yaml").write_text(ONECYCLE.replace("max_lr: 0.2}", "max_lr: 0.2, total_steps: 1}"))
    refused(cli(runner, tmp_path, "train", tmp_path / "c.yaml"), "scheduler.total_steps", "at least 16",
            "(2 epochs x 8 steps)",
            "cannot step past its cycle")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_extending_a_onecycle_run_is_refused_and_the_run_stays_completed(runner, tmp_path):
    (tmp_path / "c.yaml").write_text(ONECYCLE)
    run = tmp_path / "run"
    assert cli(runner, tmp_path, "train", tmp_path / "c.yaml", "--run-dir", run, "-q")["rc"] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    refused(cli(runner, tmp_path, "train", "--resume", run, "--set", "train.epochs=4"),
            "--set train.epochs=4", "onecycle", "cannot be extended", "start a new run")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before
    assert status(run) == "completed"


def test_a_failed_extension_leaves_the_completed_run_as_it_was(runner, run_copy, tmp_path):
    # The extension is accepted, trains epoch 4, then cannot write its checkpoint (a read-only folder):
    # exit 2, and the run is still the completed 3-epoch run (it used to be marked failed).
    before = {name: (run_copy / name).read_bytes() for name in ("config.yaml", "metrics.jsonl", "metrics.csv")}
    r = cli(runner, tmp_path, "train", "--resume", run_copy, "--set", "train.epochs=4", "-q",
            read_only=str(run_copy / "checkpoints"))
    refused(r, "cannot save checkpoint", "Read-only file system")
    info = json.loads((run_copy / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_planned"] == 3 and info["epochs_done"] == 3
    assert {name: (run_copy / name).read_bytes() for name in before} == before


# ----------------------------------------------------------------------------- 6. user text is not markup
LABELS = ["[/x]", "[bold]big[/bold]", "e\x1b[31msc", "n\x00ul"]


def _no_raw_controls(s: str) -> None:
    assert "\x1b[31m" not in s and "\x00" not in s, repr(s[:2000])


def test_user_text_is_printed_literally_never_as_markup(runner, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{i % 4 + rng.random():.3f},{rng.random():.3f},{LABELS[i % 4]}" for i in range(80)]
    (tmp_path / "t.csv").write_bytes(("\n".join(rows) + "\n").encode())
    cfg = tmp_path / "[bold]cfg.yaml"
    cfg.write_text("data: {dataset: csv, path: t.csv, target: label, batch_size: 16}\n"
                   "model: {layers: [{linear: {out_features: 4}}]}\noptimizer: {type: sgd, lr: 0.1}\n"
                   "train: {epochs: 1}\n")
    run = tmp_path / "r[bold]\x1b[31m"  # a path component cannot hold the '/' of [/x]
    outputs = []
    r = cli(runner, tmp_path, "train", cfg, "--run-dir", run)
    assert r["rc"] == 0, text(r)
    outputs.append(r)
    r = cli(runner, tmp_path, "eval", run)
    assert r["rc"] == 0, text(r)
    outputs.append(r)
    r = cli(runner, tmp_path, "runs", tmp_path)
    assert r["rc"] == 0 and "r[bold]\\x1b[31m" in r["stdout"], text(r)
    outputs.append(r)
    for r in outputs[:2]:  # class names in the per-class table and the confusion matrix, the run path
        for label in ("[/x]", "[bold]big[/bold]", "e\\x1b[31msc", "n\\x00ul"):
            assert label in r["stdout"], (label, r["stdout"])
    for r in outputs:
        _no_raw_controls(r["stdout"] + r["stderr"])
    log = (run / "train.log").read_text()
    assert "r[bold]\\x1b[31m" in log and "[bold]big[/bold]" in log
    _no_raw_controls(log)
    # Refusals quote keys, values and paths literally.
    r = cli(runner, tmp_path, "train", cfg, "--set", "[/x]\x1b[31m.k=1")
    refused(r, "[/x]\\x1b[31m.k")
    _no_raw_controls(r["stderr"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("type: sgd", 'type: "[bold]sgd[/x]\\e[31m"'))
    r = cli(runner, tmp_path, "train", bad)
    refused(r, "[bold]sgd[/x]\\x1b[31m")
    _no_raw_controls(r["stderr"])
    r = cli(runner, tmp_path, "eval", tmp_path / "[/x]missing\x1b[31m")
    refused(r, "[/x]missing\\x1b[31m")
    _no_raw_controls(r["stderr"])


# ----------------------------------------------------------------------------- 7. memory budget (config side)
HUGE = """\
name: huge
data: {dataset: DATA, batch_size: 16}
model:
  layers:
LAYERS
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
"""


@pytest.mark.parametrize("data,layers,key", [
    ("linear", "    - linear: {out_features: 1000000000}\n    - linear: {out_features: 1}",
     "model.layers.0.linear.out_features"),
    ("digits", "    - conv2d: {out_channels: 1000000000, kernel_size: 3}\n    - flatten\n"
               "    - linear: {out_features: 10}", "model.layers.0.conv2d.out_channels"),
    ("linear, n_samples: 1000000000000", "    - linear: {out_features: 1}", "data.n_samples"),
])
def test_configs_beyond_the_memory_budget_are_refused_before_allocating(runner, tmp_path, data, layers, key):
    (tmp_path / "c.yaml").write_text(HUGE.replace("DATA", data).replace("LAYERS", layers))
    r = cli(runner, tmp_path, "train", tmp_path / "c.yaml")
    refused(r, key, "more than the budget", "train.max_memory")
    assert r["maxrss_kb"] - r["base_rss_kb"] < 200 * 1024  # nothing of that size was allocated
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_max_memory_is_the_budget(runner, tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL)
    refused(cli(runner, tmp_path, "train", tmp_path / "c.yaml", "--set", "train.max_memory=50KB"),
            "model.layers.1.linear.out_features", "train.max_memory 48.8 KiB")
    refused(cli(runner, tmp_path, "train", tmp_path / "c.yaml", "--set", "train.max_memory=lots"),
            "train.max_memory", "expected a size in bytes")
    r = cli(runner, tmp_path, "train", tmp_path / "c.yaml", "--set", "train.max_memory=1GiB", "--set",
            "train.epochs=1", "-q")
    assert r["rc"] == 0, text(r)


# ----------------------------------------------------------------------------- 8. tracebacks that became exit 2
def test_base_symlink_loop_directory_and_device_are_named(runner, tmp_path):
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    (tmp_path / "folder").mkdir()
    for base, phrase in (("loop1.yaml", "loop of symbolic links"), ("folder", "is a directory"),
                         ("/dev/zero", "is not a regular file")):
        (tmp_path / "c.yaml").write_text(f"base: {base}\n" + SMALL)
        flat = refused(cli(runner, tmp_path, "train", tmp_path / "c.yaml"), "base", phrase)
        assert "not found" not in flat


def test_huge_seed_is_refused_before_a_run_dir_exists(runner, tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL.replace("seed: 3", "seed: 99999999999999999999999999"))
    refused(cli(runner, tmp_path, "train", tmp_path / "c.yaml"), "seed", "18446744073709551615")
    assert not (tmp_path / "runs").exists()


def _forge(ckpt: Path, change) -> None:
    """Edit state.json and make manifest.json vouch for it (sizes and hashes), as a forger would."""
    state = json.loads((ckpt / "state.json").read_text())
    change(state)
    data = json.dumps(state).encode()
    (ckpt / "state.json").write_bytes(data)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["state.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("field,change", [
    ("in_epoch", lambda s: s.update(in_epoch={})),
    ("best", lambda s: s["best"].update(value="x")),
    ("epoch", lambda s: s.update(epoch=-5)),
    ("step", lambda s: s.update(step=s["step"] + 1)),
    ("scheduler", lambda s: s["scheduler"].update(optimizer=None)),
    ("optimizer.param_groups", lambda s: s["optimizer"]["param_groups"][0].update(lr="x")),
])
def test_forged_state_json_with_a_valid_manifest_is_refused(runner, run_copy, tmp_path, field, change):
    for which in ("last", "best"):
        _forge(run_copy / "checkpoints" / which, change)
    before = (run_copy / "metrics.jsonl").read_bytes()
    refused(cli(runner, tmp_path, "train", "--resume", run_copy, "--set", "train.epochs=4"),
            "state.json", field)
    assert (run_copy / "metrics.jsonl").read_bytes() == before and status(run_copy) == "completed"


def test_malformed_leftover_checkpoint_folders_are_skipped(runner, run_copy, baseline, tmp_path):
    ck = run_copy / "checkpoints"
    shutil.copytree(ck / "last", ck / "last.tmp-0bad")
    manifest = json.loads((ck / "last.tmp-0bad" / "manifest.json").read_text())
    manifest["created_ns"] = "x"
    (ck / "last.tmp-0bad" / "manifest.json").write_text(json.dumps(manifest))
    (ck / "last").rename(ck / "last.old-0good")
    info = json.loads((run_copy / "run.json").read_text())
    info["status"] = "running"
    (run_copy / "run.json").write_text(json.dumps(info))
    r = cli(runner, tmp_path, "train", "--resume", run_copy, "-q")
    assert r["rc"] == 0, text(r)
    assert_same_run(run_copy, baseline)
    assert sorted(p.name for p in ck.iterdir()) == ["best", "last"]


def test_runs_lists_every_run_around_a_malformed_run_json(runner, run_copy, tmp_path):
    for name, data in (("forged", {"status": ["x"], "duration_s": "x", "best_metric": {"value": "x", "name": 3},
                                   "epochs_done": "many", "start_time": 5, "name": {"a": 1}, "pid": "x"}),
                       ("list", [1, 2]), ("huge", None)):
        d = tmp_path / name
        d.mkdir()
        if data is None:
            with open(d / "run.json", "wb") as f:
                f.truncate(50 * 1024 * 1024)  # 50 MB of zeros (sparse)
        else:
            (d / "run.json").write_text(json.dumps(data))
    r = cli(runner, tmp_path, "runs", tmp_path)
    assert r["rc"] == 0, text(r)
    for name in ("run", "forged", "list", "huge"):
        assert name in r["stdout"]
    assert "completed" in r["stdout"] and "unreadable" in r["stdout"]
    assert r["maxrss_kb"] - r["base_rss_kb"] < 100 * 1024
    refused(cli(runner, tmp_path, "train", "--resume", tmp_path / "forged"), "run.json", "status")


def test_resume_on_a_read_only_run_dir_is_refused(runner, run_copy, tmp_path):
    before = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    r = cli(runner, tmp_path, "train", "--resume", run_copy, "--set", "train.epochs=4", read_only=str(run_copy))
    refused(r, str(run_copy), "Read-only file system")
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before


def test_eval_refuses_a_run_whose_config_was_edited(runner, run_copy, tmp_path):
    cfg = (run_copy / "config.yaml").read_text()
    assert "val_split: 0.1" in cfg
    (run_copy / "config.yaml").write_text(cfg.replace("val_split: 0.1", "val_split: 0.5"))
    refused(cli(runner, tmp_path, "eval", run_copy, "--split", "val"), "config.yaml", "edited after training")
    (run_copy / "config.yaml").write_text(cfg.replace("epochs: 3", "epochs: 9"))  # train.* does not matter to eval
    assert cli(runner, tmp_path, "eval", run_copy)["rc"] == 0


def test_sigterm_while_loading_data_exits_130_like_sigint(runner, tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL)
    for fault in ("sigterm", "sigint"):
        r = cli(runner, tmp_path, "train", tmp_path / "c.yaml", fault=fault, at=1)  # event 1: the data load
        assert r["rc"] == 130, text(r)
        assert "interrupted" in text(r) and "Traceback" not in text(r)


# ----------------------------------------------------------------------------- 9. misleading messages
def test_config_file_names_with_spaces_and_plus_get_a_valid_run_name(runner, tmp_path):
    cfg = tmp_path / "my model+aug v2.yaml"
    cfg.write_text(SMALL.replace("name: tiny_digits\n", "").replace("epochs: 3", "epochs: 1"))
    r = cli(runner, tmp_path, "train", cfg, "-q")
    assert r["rc"] == 0, text(r)
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-my_model_aug_v2") and json.loads((run / "run.json").read_text())["name"] == \
        "my_model_aug_v2"


def test_empty_checkpoint_option_is_named(runner, run_copy, tmp_path):
    refused(cli(runner, tmp_path, "eval", run_copy, "--checkpoint", ""), "--checkpoint is empty")


# ----------------------------------------------------------------------------- 10. links in a run directory
@pytest.mark.parametrize("name", ["train.log", "metrics.jsonl", "metrics.csv"])
def test_files_a_run_appends_to_are_never_written_through_links(runner, run_copy, tmp_path, name):
    target = tmp_path / "outside.txt"
    target.write_text("precious\n")
    (run_copy / name).unlink()
    (run_copy / name).symlink_to(target)
    info = json.loads((run_copy / "run.json").read_text())
    info["status"] = "interrupted"  # a run to be finished, so the resume would write
    (run_copy / "run.json").write_text(json.dumps(info))
    refused(cli(runner, tmp_path, "train", "--resume", run_copy, "--set", "train.epochs=4"), name,
            "symbolic link")
    assert target.read_text() == "precious\n"
