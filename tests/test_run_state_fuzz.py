"""Fuzzing the run directory's JSON through the CLI: forged fields get exit 2, never a traceback (issue 12).

A copied run directory is untrusted input, and the manifest's hashes prove integrity, not authorship:
whoever edits ``state.json`` can rehash it. Hypothesis edits one field of ``state.json`` (then makes
``manifest.json`` vouch for it), of ``manifest.json`` or of ``run.json`` - any key at any depth, replaced by
any JSON value (nulls, booleans, huge and negative integers, NaN and infinities, strings with markup and
control characters, lists, mappings), deleted, or joined by an extra key - in a completed run and in a run
interrupted in the middle of an epoch. Then ``trainkit train --resume``, ``trainkit eval`` or ``trainkit
runs`` runs on it in a real process (tests/fork_runner.py). The only outcomes allowed: the command works
(exit 0: an edit the run can live with, such as another host name, or a consistent state that resumes),
or it refuses with exit 2 and a message; never a traceback, and the process's peak memory stays within
256 MiB of the server it was forked from.

(The ``.npy``/``.npz``/pickle/IDX headers are fuzzed the same way in test_data_limits.py.)
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clitools import env_for
from fork_runner import ForkRunner

IRIS = """\
name: fuzz
seed: 1
data: {dataset: iris, batch_size: 16, val_split: 0.2}
model:
  layers:
    - linear: {out_features: 8}
    - relu
    - dropout: {p: 0.1}
    - linear: {out_features: 3}
optimizer: {type: adam, lr: 0.01}
scheduler: {type: step, step_size: 1, gamma: 0.9}
train: {epochs: 2}
"""

MAX_GROWTH_KB = 256 * 1024

#: The fields the loop, the listing and the loader read back, drawn more often than the rest.
KEY_FIELDS = {
    "state.json": {("epoch",), ("step",), ("best",), ("best", "value"), ("best", "epoch"), ("best", "name"),
                   ("in_epoch",), ("in_epoch", "meter"), ("in_epoch", "seconds"), ("in_epoch", "meter", "n"),
                   ("in_epoch", "meter", "confusion"), ("in_epoch", "meter", "loss_sum"), ("early_stopping",),
                   ("early_stopping", "wait"), ("early_stopping", "best"), ("scheduler",),
                   ("scheduler", "last_epoch"), ("scheduler", "step_size"), ("scheduler", "_last_lr"),
                   ("optimizer",), ("optimizer", "state"), ("optimizer", "param_groups"), ("rng",),
                   ("rng", "train_loader"), ("rng", "train_loader", "batches_done"), ("rng", "global"),
                   ("config_hash",), ("format",)},
    "manifest.json": {("created_ns",), ("version",), ("format",), ("files",), ("files", "state.json"),
                      ("files", "model.safetensors", "size"), ("files", "state.json", "sha256")},
    "run.json": {("status",), ("epochs_done",), ("epochs_planned",), ("duration_s",), ("resumes",),
                 ("best_metric",), ("best_metric", "value"), ("code",), ("pid",), ("host",), ("name",),
                 ("start_time",), ("command",)},
}

scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.integers(-3, 300)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(alphabet=st.sampled_from(list("ab01[]/x\x1b\x00 .-")), max_size=12)
           | st.sampled_from(["[bold]", "[/x]", "running", "completed", "PCG64", "cos", "step", "x" * 10_000]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["meter", "seconds", "value", "epoch", "name", "x", "loss_sum", "n", "confusion"]), inner,
    max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    """A fork server and two template runs: completed, and interrupted in the middle of epoch 2."""
    tmp = tmp_path_factory.mktemp("fuzz")
    runner = ForkRunner(env_for(tmp))
    env = {k: v for k, v in env_for(tmp).items() if k.startswith("TRAINKIT")}
    (tmp / "iris.yaml").write_text(IRIS)
    r = runner.run(["train", tmp / "iris.yaml", "--run-dir", tmp / "done", "-q"], tmp, env=env, log_events=True)
    assert r["rc"] == 0, r["stderr"]
    batches = [i + 1 for i, e in enumerate(r["events"]) if e == "batch"]
    # Ctrl-C after the 3rd training batch of epoch 2 (8 training and 2 evaluation batches per epoch).
    r = runner.run(["train", tmp / "iris.yaml", "--run-dir", tmp / "mid", "-q"], tmp, env=env, fault="sigint",
                   at=batches[12])
    assert r["rc"] == 130, r["stdout"] + r["stderr"]
    mid = json.loads((tmp / "mid" / "checkpoints" / "last" / "state.json").read_text())
    assert mid["in_epoch"] is not None and mid["epoch"] == 1
    yield runner, tmp, env
    runner.close()


def _paths(node, prefix=()):
    """Every key path in a JSON document (containers and leaves)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:8]):
            yield from _paths(v, prefix + (i,))


def _edit(doc, path, action, value):
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent["extra_key"] = value
    else:
        parent.append(value)
    return doc


def _rehash(ckpt: Path) -> None:
    manifest = json.loads((ckpt / "manifest.json").read_text())
    data = (ckpt / "state.json").read_bytes()
    manifest["files"]["state.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


@settings(max_examples=45, deadline=None, derandomize=False, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_forged_run_json_state_json_and_manifest_give_exit_2_not_a_traceback(fuzz_env, tmp_path_factory, data):
    runner, tmp, env = fuzz_env
    template = data.draw(st.sampled_from(["done", "mid"]), label="template")
    target = data.draw(st.sampled_from(["state.json", "manifest.json", "run.json"]), label="file")
    work = tmp_path_factory.mktemp("case")
    run = work / "run"
    shutil.copytree(tmp / template, run)
    file = run / target if target == "run.json" else run / "checkpoints" / "last" / target
    doc = json.loads(file.read_text())
    paths = list(_paths(doc))
    # Mostly the fields that are read back (KEY_FIELDS), then shallow ones, sometimes anything at all.
    key = [p for p in paths if p in KEY_FIELDS[target]]
    shallow = [p for p in paths if len(p) <= 3 and "rng" not in p[:1]]
    path = data.draw(st.sampled_from(key) | st.sampled_from(key) | st.sampled_from(shallow) | st.sampled_from(paths),
                     label="path")
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]) if path else st.just("replace"),
                       label="action")
    if action in ("delete",) and not path:
        action = "replace"
    value = data.draw(values | st.integers(-6, 12) | st.floats(-2.0, 2.0), label="value")
    doc = _edit(doc, path, action, value)
    file.write_text(json.dumps(doc))
    if target == "state.json":
        _rehash(file.parent)
    command = data.draw(st.sampled_from(["resume", "eval", "runs"] if target == "run.json" else ["resume", "eval"]),
                        label="command")
    argv = {"resume": ["train", "--resume", run, "-q"], "eval": ["eval", run, "--checkpoint", "last"],
            "runs": ["runs", work]}[command]
    before_rows = [json.loads(line) for line in (tmp / template / "metrics.jsonl").read_text().splitlines()]
    r = runner.run(argv, work, env=env)
    out = r["stdout"] + r["stderr"]
    case = f"{template}/{target} {action} {path!r} = {value!r} -> {command}"
    assert r["rc"] in (0, 2), f"{case}: exit {r['rc']}\n{out[-3000:]}"
    assert "Traceback" not in out, f"{case}\n{out[-3000:]}"
    if r["rc"] == 2:
        assert out.startswith("error:") or "\nerror:" in out, f"{case}\n{out[-2000:]}"
    if command == "runs":
        assert r["rc"] == 0 and "run" in r["stdout"], f"{case}\n{out}"
    if command == "resume" and r["rc"] == 0:  # an edit the run could live with: it completed as planned,
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in rows] == [1, 2], case  # and kept the rows its checkpoint covers
        assert rows[0] == before_rows[0], case
        assert json.loads((run / "run.json").read_text())["status"] == "completed", case
    assert r["maxrss_kb"] - r["base_rss_kb"] < MAX_GROWTH_KB, case
    shutil.rmtree(work, ignore_errors=True)
