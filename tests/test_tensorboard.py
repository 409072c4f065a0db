"""TensorBoard event files of a run (``train.tensorboard``): what they hold, resume without repeated steps,
the message without tensorboardX, and TensorBoard itself serving a run over HTTP (localhost only)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from clitools import DIGITS_MLP, env_for, tk
from fork_runner import ForkRunner

pytest.importorskip("tensorboardX", reason="the [tensorboard] extra (tensorboardX) is not installed")
ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="the [tensorboard] extra (tensorboard) is not installed")

SMALL = DIGITS_MLP.replace("  batch_size: 32\n", "  batch_size: 32\n  limit: 256\n").replace(
    "train:\n  epochs: 3\n", "train:\n  epochs: 3\n  tensorboard: true\n  log_every: 2\n")
COLUMN = {"train_loss": "train_loss", "train_accuracy": "train_acc", "val_loss": "val_loss",
          "val_accuracy": "val_acc", "lr": "lr", "images_per_s": "images_per_s"}


def _accumulator(folder: Path):
    acc = ea_mod.EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_events_match_metrics(run: Path, epochs: int) -> object:
    acc = _accumulator(run / "tensorboard")
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    tags = acc.Tags()["scalars"]
    for tag in tags:  # no step shown twice, whatever the resumes wrote
        steps = [e.step for e in acc.Scalars(tag)]
        assert len(steps) == len(set(steps)), (tag, steps)
    epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")}
    assert sorted(epoch_at.values()) == list(range(1, epochs + 1))
    for tag, column in COLUMN.items():
        got = {epoch_at[e.step]: e.value for e in acc.Scalars(tag)}
        want = {r["epoch"]: np.float32(r[column]) for r in rows}
        assert got == want, (tag, got, want)  # float32: what the event files store
    return acc


def test_events_equal_metrics_per_epoch_with_histograms_config_and_hparams(tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL.replace("  log_every: 2\n", "  log_every: 2\n  tensorboard_histograms: true\n"))
    run = tmp_path / "run"
    tk(tmp_path, "train", "c.yaml", "--run-dir", run, "-q", check=0)
    acc = _assert_events_match_metrics(run, 3)
    steps_per_epoch = max(e.step for e in acc.Scalars("epoch")) // 3
    loss_steps = [e.step for e in acc.Scalars("train_loss_step")]
    assert loss_steps == list(range(2, 3 * steps_per_epoch + 1, 2))  # every log_every steps
    hist = acc.Tags()["histograms"]
    assert {"weights/1.weight", "grads/1.weight", "weights/4.bias", "grads/4.bias"} <= set(hist)
    h = acc.Histograms("weights/1.weight")
    assert [x.step for x in h] == [e.step for e in acc.Scalars("epoch")]
    assert h[0].histogram_value.num == 64 * 32  # every weight of the first linear layer
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "out_features: 32" in text and "tensorboard: true" in text
    hp = _accumulator(run / "tensorboard" / "hparams")
    best = json.loads((run / "run.json").read_text())["best_metric"]
    assert hp.Scalars("hparam/best_val_acc")[0].value == np.float32(best["value"])
    assert hp.Scalars("hparam/val_loss")[0].value == np.float32(_rows(run)[-1]["val_loss"])


def test_without_the_option_no_event_files_and_cli_flag_turns_it_on(tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL.replace("  tensorboard: true\n", "").replace("epochs: 3", "epochs: 1"))
    tk(tmp_path, "train", "c.yaml", "--run-dir", tmp_path / "off", "-q", check=0)
    assert not (tmp_path / "off" / "tensorboard").exists()
    tk(tmp_path, "train", "c.yaml", "--run-dir", tmp_path / "on", "-q", "--tensorboard", check=0)
    assert list((tmp_path / "on" / "tensorboard").glob("events.out.tfevents*"))
    r = tk(tmp_path, "runs", tmp_path, check=0)
    assert f"tensorboard --logdir {tmp_path}" in r.stdout.replace("\n", "")


def test_kill_9_then_resume_shows_no_step_twice(tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL)
    runner = ForkRunner()
    try:
        env = {k: v for k, v in env_for(tmp_path).items() if k.startswith("TRAINKIT")}
        probe = runner.run(["train", tmp_path / "c.yaml", "--run-dir", tmp_path / "probe", "-q"], tmp_path, env=env,
                           fault="kill", at=10 ** 6, log_events=True)
        events = probe["events"]
        # the 2nd epoch's checkpoint: its events are flushed, the checkpoint covering them is not written
        second_row = [i for i, e in enumerate(events) if e == "append:metrics.jsonl"][1]
        at = next(i + 1 for i, e in enumerate(events) if i > second_row and e.startswith("ckpt_write"))
        run = tmp_path / "run"
        r = runner.run(["train", tmp_path / "c.yaml", "--run-dir", run, "-q"], tmp_path, env=env, fault="kill", at=at)
        assert r["rc"] == -9
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        killed = [ev for f in sorted((run / "tensorboard").glob("events*")) for ev in EventFileLoader(str(f)).Load()]
        assert any(v.tag == "epoch" and list(v.tensor.float_val) == [2.0] for ev in killed for v in ev.summary.value), \
            (at, events[at - 3:at], [(e.step, [(v.tag, v.tensor.float_val) for v in e.summary.value]) for e in killed])
        r = runner.run(["train", "--resume", run, "-q"], tmp_path, env=env)
        assert r["rc"] == 0, r["stderr"][-2000:]
    finally:
        runner.close()
    raw = {}
    for f in (run / "tensorboard").glob("events*"):
        for ev in EventFileLoader(str(f)).Load():
            for v in ev.summary.value:
                raw.setdefault(v.tag, []).append(ev.step)
    assert len(raw["epoch"]) > len(set(raw["epoch"]))  # the files hold epoch 2 twice: the purge must hide one
    _assert_events_match_metrics(run, 3)
    uninterrupted = _accumulator(tmp_path / "probe" / "tensorboard")
    resumed = _accumulator(run / "tensorboard")
    for tag in ("train_loss", "val_accuracy", "train_loss_step"):
        assert [(e.step, e.value) for e in resumed.Scalars(tag)] == \
            [(e.step, e.value) for e in uninterrupted.Scalars(tag)], tag


def test_missing_tensorboardx_exits_2_naming_the_extra_and_writes_nothing(tmp_path):
    fake = tmp_path / "fake"
    (fake / "tensorboardX").mkdir(parents=True)
    (fake / "tensorboardX" / "__init__.py").write_text("raise ImportError('No module named tensorboardX')\n")
    (tmp_path / "c.yaml").write_text(SMALL)
    env = env_for(tmp_path)
    env["PYTHONPATH"] = f"{fake}:{env.get('PYTHONPATH', '')}"
    r = subprocess.run([sys.executable, "-m", "trainkit", "train", "c.yaml", "--run-dir", "run"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "trainkit[tensorboard]" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_serves_the_runs_over_http(tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL.replace("epochs: 3", "epochs: 1"))
    tk(tmp_path, "train", "c.yaml", "--run-dir", tmp_path / "runs" / "r1", "-q", check=0)
    port = _free_port()
    exe = [sys.executable, "-m", "tensorboard.main"]
    proc = subprocess.Popen([*exe, "--logdir", str(tmp_path / "runs"), "--host", "127.0.0.1", "--port", str(port),
                             "--load_fast", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tags = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as resp:
                    tags = json.loads(resp.read())
                if "r1/tensorboard" in tags and tags["r1/tensorboard"]:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert tags is not None and "val_accuracy" in tags.get("r1/tensorboard", {}), tags
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as resp:
            assert "r1/tensorboard" in json.loads(resp.read())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_event_files_are_written_without_importing_torch(tmp_path):
    """tensorboardX tries ``import torch`` on import (about 1 s where torch is installed); trainkit's
    import keeps it out, and torch still imports normally afterwards."""
    pytest.importorskip("torch")
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from trainkit.train.tensorboard import EventFile\n"
            f"f = EventFile(Path({str(tmp_path / 'tb')!r}))\n"
            "from tensorboardX import summary\n"
            "f.add(summary.scalar('loss', 1.5), 1)\n"
            "f.close()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "import torch\n"
            "print(torch.ones(2).sum().item())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2.0"
    assert [p.stat().st_size > 0 for p in (tmp_path / "tb").glob("events.out.tfevents.*")] == [True]
