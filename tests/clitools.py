"""Helpers for tests that run the ``trainkit`` CLI in subprocesses on a tiny embedded-data config."""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from trainkit.train.checkpoint import load_checkpoint

#: A 3-epoch MLP on the embedded digits: a few seconds per run, with dropout and a scheduler so
#: that resume must restore every RNG and state to reproduce it.
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

#: Wall-clock columns: the only ones allowed to differ between identical runs.
TIMING = ("seconds", "images_per_s")


def digits_config(epochs: int = 3) -> str:
    return DIGITS_MLP.replace("  epochs: 3\n", f"  epochs: {epochs}\n")


def env_for(tmp: Path) -> dict:
    """The environment of a CLI subprocess: its own data cache and runs folder."""
    return dict(os.environ, TRAINKIT_DATA=str(tmp / "data-cache"), TRAINKIT_RUNS=str(tmp / "runs"), COLUMNS="200",
                TRAINKIT_HOME=str(tmp / "trainkit-home"))  # the key that signs custom-code records


_runners = threading.local()  # one fork server per thread that runs commands (a server runs one at a time)


def _runner():
    from fork_runner import ForkRunner

    runner = getattr(_runners, "runner", None)
    if runner is None or runner.proc.poll() is not None:
        # COLUMNS as env_for sets it: rich reads it when trainkit's console is created, at import.
        runner = _runners.runner = ForkRunner(dict(os.environ, COLUMNS="200"))
        atexit.register(runner.close)
    return runner


def tk(tmp: Path, *args, check: int | None = None, timeout: int = 120, env: dict | None = None,
       fresh: bool = False) -> subprocess.CompletedProcess:
    """``python -m trainkit ARGS`` in its own process, with ``tmp`` as its folder (``check``: the exit code
    it must return; ``env``: variables to set on top of ``env_for(tmp)``).

    The process is a fork of a server that has imported trainkit already (tests/fork_runner.py): the real
    CLI in a real process, without ~0.5 s of imports each time. ``fresh=True`` (or
    ``TRAINKIT_TEST_FRESH=1`` in the environment, for every call) starts ``python -m trainkit`` instead.
    A forked command's result has ``maxrss_kb``, its peak resident memory in KiB (a process started by
    exec from a large pytest worker would report the worker's peak instead: Linux keeps the peak of the
    memory an exec replaces).
    """
    argv = [str(a) for a in args]
    environ = {**env_for(tmp), **(env or {})}
    if fresh or os.environ.get("TRAINKIT_TEST_FRESH") == "1":
        r = subprocess.run([sys.executable, "-m", "trainkit", *argv], capture_output=True, text=True,
                           env=environ, cwd=tmp, timeout=timeout)
    else:
        reply = _runner().run(argv, tmp, env=environ, cwd_on_path=True, timeout=timeout)
        r = subprocess.CompletedProcess([sys.executable, "-m", "trainkit", *argv], reply["rc"], reply["stdout"],
                                        reply["stderr"])
        r.maxrss_kb = reply["maxrss_kb"]  # the command's peak resident memory (the server's pages included)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def rows_without_timing(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def csv_without_timing(run: Path) -> list[list[str]]:
    lines = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    keep = [i for i, c in enumerate(lines[0]) if c not in TIMING]
    return [[row[i] for i in keep] for row in lines]


def weights(run: Path, which: str = "last") -> dict:
    return load_checkpoint(run / "checkpoints" / which)[0]


def assert_same_weights(a: dict, b: dict, label: str = "") -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{label}{k}")


def assert_same_run(run: Path, baseline: Path) -> None:
    """Same metrics (both logs, timing columns aside), bit-identical last and best weights, same report."""
    assert rows_without_timing(run) == rows_without_timing(baseline)
    assert csv_without_timing(run) == csv_without_timing(baseline)
    for which in ("last", "best"):
        assert_same_weights(weights(run, which), weights(baseline, which), f"{which}/")
    assert json.loads((run / "report.json").read_text())["test"] == json.loads(
        (baseline / "report.json").read_text())["test"]
