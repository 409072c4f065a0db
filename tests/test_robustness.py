"""Issue 8 through the real CLI: hostile files, faults while writing, kills during checkpoint writes,
and broadcasting gradients under random shapes.

The library-level cases live with their areas (test_checkpoint, test_rundir, test_data_formats,
test_data_fuzz, test_config_errors, test_config_fuzz, test_train_e2e); this file covers what only
the command line shows: exit code 2, a message naming the file, no traceback, no code run, nothing
written outside the intended folder, and a run directory that stays resumable. docs/robustness.md
maps every case of issue 8 to its test.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainkit.train.checkpoint import load_checkpoint

DIGITS_MLP = """\
name: tiny_digits
seed: 3
data:
  dataset: digits
  val_split: 0.1
  batch_size: 32
model:
  layers:
    - flatten
    - linear: {out_features: 32}
    - relu
    - dropout: {p: 0.1}
    - linear: {out_features: 10}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
scheduler: {type: step, step_size: 2, gamma: 0.5}
train:
  epochs: 3
"""

TIMING = ("seconds", "images_per_s")


# ----------------------------------------------------------------------------- helpers
def env_for(tmp: Path) -> dict:
    return dict(os.environ, TRAINKIT_DATA=str(tmp / "data-cache"), TRAINKIT_RUNS=str(tmp / "runs"), COLUMNS="200")


def tk(tmp: Path, *args, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m trainkit ARGS`` in a subprocess with its own data cache and runs folder."""
    return subprocess.run([sys.executable, "-m", "trainkit", *map(str, args)], capture_output=True, text=True,
                          env=env_for(tmp), cwd=tmp, timeout=timeout)


def assert_refused(r, *names: str) -> str:
    """Exit 2, every name in the message, no traceback; returns the flattened message."""
    out = r.stdout + r.stderr
    flat = " ".join(out.split())
    assert r.returncode == 2, f"exit {r.returncode}\n{out}"
    assert "Traceback" not in out, out
    for name in names:
        assert name in flat.replace(" ", "") or name in flat, f"{name!r} not in:\n{out}"
    return flat


def rows_without_timing(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def csv_without_timing(run: Path) -> list[list[str]]:
    lines = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    keep = [i for i, c in enumerate(lines[0]) if c not in TIMING]
    return [[row[i] for i in keep] for row in lines]


def assert_same_run(run: Path, baseline: Path) -> None:
    """Same metrics (both logs, timing columns aside) and bit-identical last and best weights."""
    assert rows_without_timing(run) == rows_without_timing(baseline)
    assert csv_without_timing(run) == csv_without_timing(baseline)
    for which in ("last", "best"):
        a, b = load_checkpoint(run / "checkpoints" / which)[0], load_checkpoint(baseline / "checkpoints" / which)[0]
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{which}/{k}")
    assert json.loads((run / "report.json").read_text())["test"] == json.loads(
        (baseline / "report.json").read_text())["test"]


def status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """One uninterrupted 3-epoch run: what every fault test must reproduce after resuming."""
    tmp = tmp_path_factory.mktemp("robust-baseline")
    (tmp / "tiny_digits.yaml").write_text(DIGITS_MLP)
    r = tk(tmp, "train", tmp / "tiny_digits.yaml", "--run-dir", tmp / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    return tmp / "run"


@pytest.fixture
def run_copy(baseline, tmp_path) -> Path:
    """A private copy of the baseline run, to damage."""
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    return run


# ----------------------------------------------------------------------------- hostile checkpoints
class _Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _rewrite_manifest(ckpt: Path, name: str) -> None:
    """Make manifest.json vouch for a replaced file, so the content checks behind the hash are reached."""
    manifest = json.loads((ckpt / "manifest.json").read_text())
    data = (ckpt / name).read_bytes()
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def damage(ckpt: Path, name: str, kind: str, marker: Path) -> str:
    """Replace ``ckpt/name`` with a hostile or broken file; returns a phrase the refusal must contain."""
    path = ckpt / name
    good = path.read_bytes()
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil(marker)))
        return "pickle"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        path.write_bytes(good[: len(good) * 2 // 3])
    elif kind == "offsets_past_end":
        path.write_bytes(_safetensors({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 16))
        return "past the end"
    elif kind == "header_100mb":
        # The length field announces 100 MB and the file really is that long (sparse, so cheap).
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", 100 * 1024 * 1024) + b"{")
            f.truncate(100 * 1024 * 1024 + 8)
        return "exceeds"
    elif kind == "misfit":
        # A well-formed file, vouched for by the manifest, whose names and shapes are not the model's.
        import safetensors.numpy
        arrays = safetensors.numpy.load(good)
        key = sorted(arrays)[0]
        arrays[key] = np.zeros((7, 7), arrays[key].dtype)
        arrays["extra.weight"] = np.zeros(3, np.float32)
        path.write_bytes(safetensors.numpy.save(arrays))
        _rewrite_manifest(ckpt, name)
        return "do not fit" if name == "model.safetensors" else "optimizer state"
    return "not a valid safetensors file"


KINDS = ["pickle", "random", "truncated", "offsets_past_end", "header_100mb", "misfit"]


def _cli(tmp: Path, monkeypatch, *args):
    """The CLI in this process (fast, for the many damage cases): returns the click Result."""
    from trainkit.cli import app
    for k, v in env_for(tmp).items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp)
    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_result_refused(result, *names: str) -> str:
    # A Typer exit is a SystemExit; any other exception escaping is a bug with a traceback.
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    flat = " ".join(result.output.split())
    for name in names:
        assert name in flat, f"{name!r} not in {result.output}"
    return flat


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_damaged_checkpoint_refused_by_eval_and_resume(run_copy, tmp_path, monkeypatch, kind, name):
    marker = tmp_path / "pwned"
    for which in ("best", "last"):
        phrase = damage(run_copy / "checkpoints" / which, name, kind, marker)
    before = status(run_copy)
    if not (kind == "misfit" and name == "state.safetensors"):  # eval needs only the weights
        res = _cli(tmp_path, monkeypatch, "eval", run_copy)
        flat = _assert_result_refused(res, phrase)
        assert name in flat, flat
        assert not (run_copy / "eval-test-best.json").exists()
    res = _cli(tmp_path, monkeypatch, "train", "--resume", run_copy, "--set", "train.epochs=4")
    flat = _assert_result_refused(res, phrase, name)
    assert not marker.exists()
    # The refused resume trained nothing: no metrics row, and the checkpoint it refused is still there.
    assert len(rows_without_timing(run_copy)) == 3
    assert status(run_copy) in (before, "failed")


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_pickled_checkpoint_runs_nothing_in_a_real_process(run_copy, tmp_path, command):
    marker = tmp_path / "pwned"
    for which in ("best", "last"):
        damage(run_copy / "checkpoints" / which, "model.safetensors", "pickle", marker)
    args = ["eval", run_copy] if command == "eval" else ["train", "--resume", run_copy, "--set", "train.epochs=4"]
    assert_refused(tk(tmp_path, *args), "model.safetensors", "pickle")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run
