"""Hostile and broken data files through the CLI: exit code 2, a message naming the file, nothing run or written."""
from __future__ import annotations

import os
import pickle
import subprocess
import textwrap
from pathlib import Path

from clitools import tk


def _train(tmp_path: Path, data_yaml: str) -> subprocess.CompletedProcess:
    config = tmp_path / "cfg.yaml"
    config.write_text(textwrap.dedent("""\
        name: hostile
        seed: 0
        data:
        {data}
        model:
          layers:
            - flatten
            - linear: {{out_features: 10}}
        optimizer: {{type: sgd, lr: 0.1}}
        train: {{epochs: 1}}
        """).format(data=textwrap.indent(data_yaml, "  ")))
    return tk(tmp_path, "train", config, "--runs-dir", tmp_path / "runs", "-q",
              env={"TRAINKIT_DATA": str(tmp_path / "cache"), "TRAINKIT_RUNS": str(tmp_path / "runs")})


def _no_runs(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(p.is_dir() and not p.name.startswith(".") for p in runs.iterdir())


def test_hostile_cifar_pickle_refused_by_the_cli(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2))
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    result = _train(tmp_path, f"dataset: cifar10\nroot: {tmp_path / 'data'}\ndownload: false\n")
    assert result.returncode == 2, result.stderr
    assert "data_batch_1" in result.stderr + result.stdout and "Traceback" not in result.stderr
    assert not marker.exists()
    assert _no_runs(tmp_path)


def test_broken_csv_refused_by_the_cli_with_line_and_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n")
    result = _train(tmp_path, f"dataset: csv\npath: {tmp_path / 'd.csv'}\ntarget: y\n")
    out = result.stderr + result.stdout
    assert result.returncode == 2 and "line 3, column 'b'" in out and "Traceback" not in out
    assert _no_runs(tmp_path)


def test_missing_cifar_offline_tells_where_to_put_it(tmp_path):
    result = _train(tmp_path, f"dataset: cifar10\nroot: {tmp_path / 'empty'}\ndownload: false\n")
    out = " ".join((result.stderr + result.stdout).split())
    assert result.returncode == 2 and "cifar-10-python.tar.gz" in out
    assert not (tmp_path / "empty").exists()  # nothing created when download is off
