"""Hostile YAML configs through the real CLI: exit code 2, a clear message, no traceback,
no code run and no run directory created (issue 8)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

MIN = ("data: {dataset: iris}\n"
       "model: {layers: [{linear: {out_features: 3}}]}\n"
       "optimizer: {type: sgd, lr: 0.1}\n")


def _bomb() -> str:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return MIN + "\n".join(levels) + "\n"


@pytest.mark.parametrize("kind", ["python_tag", "alias_bomb", "huge", "not_utf8"])
def test_hostile_config_is_refused_by_train(tmp_path, kind):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "c.yaml"
    if kind == "python_tag":
        cfg.write_text(MIN + f"name: !!python/object/apply:os.system ['touch {marker}']\n")
        expect = "YAML tag '!!python/object/apply:os.system' is not allowed"
    elif kind == "alias_bomb":
        cfg.write_text(_bomb())
        expect = "YAML aliases expand to more than"
    elif kind == "huge":
        with open(cfg, "wb") as f:
            f.truncate(50 * 1024 * 1024)
        expect = "configs are limited to 1048576 bytes"
    else:
        cfg.write_bytes(MIN.encode() + b"name: \xff\xfe\n")
        expect = "not valid UTF-8 (byte 0xff"
    runs = tmp_path / "runs"
    env = dict(os.environ, COLUMNS="400", TRAINKIT_DATA=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-m", "trainkit.cli", "train", str(cfg), "--runs-dir", str(runs)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert expect in " ".join(out.split()), out
    assert "Traceback" not in out
    assert not marker.exists()
    assert not runs.exists() or not any(runs.iterdir())
