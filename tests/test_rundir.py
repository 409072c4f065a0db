"""Run directories, run.json, metrics logs, and the atomic writers under them."""
from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from trainkit.errors import RunDirError, TrainkitError
from trainkit.utils import atomic
from trainkit.utils.atomic import (
    StorageError,
    append_line,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_lines,
)
from trainkit.train.rundir import (
    MetricsLog,
    RunInfo,
    create_run_dir,
    is_run_dir,
    list_runs,
    open_run,
)

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "run.json"
    atomic_write_json(p, {"a": 1, "é": [1.5, None]})
    assert json.loads(p.read_text(encoding="utf-8")) == {"a": 1, "é": [1.5, None]}
    atomic_write_json(p, {"acc": np.float32(0.25), "cm": np.eye(2, dtype=np.int64)})
    assert json.loads(p.read_text()) == {"acc": 0.25, "cm": [[1, 0], [0, 1]]}
    with pytest.raises(TypeError):
        atomic_write_json(p, {"x": object()})
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert os.listdir(tmp_path) == ["run.json"]


def test_atomic_write_failure_midway_keeps_old_content(tmp_path, monkeypatch):
    p = tmp_path / "report.json"
    p.write_text("old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)  # fails after the data was written
    with pytest.raises(StorageError) as err:
        atomic_write_bytes(p, b"new content")
    assert isinstance(err.value, TrainkitError)
    assert str(p) in str(err.value) and "disk is full" in str(err.value)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value.__cause__, OSError)
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]  # temp file removed


def test_atomic_write_bug_keeps_old_content_and_its_traceback(tmp_path, monkeypatch):
    p = tmp_path / "x"
    p.write_text("old")
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["x"]


def test_permission_denied_is_clear(tmp_path, monkeypatch):
    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(StorageError, match=r"cannot write .*x\.json: Permission denied \(no permission"):
        atomic_write_json(tmp_path / "x.json", {})


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_read_only_folder_is_clear(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(StorageError, match="permission"):
            atomic_write_json(tmp_path / "x.json", {"a": 1})
        with pytest.raises(StorageError, match="permission"):
            append_line(tmp_path / "log.jsonl", "{}")
    finally:
        os.chmod(tmp_path, 0o755)
    assert (tmp_path / "x.json").read_text() == "{}"


def test_append_line_and_torn_tail(tmp_path):
    p = tmp_path / "m.jsonl"
    assert read_lines(p) == []
    append_line(p, "one")
    append_line(p, "two")
    with open(p, "ab") as f:  # what a kill in the middle of a write leaves behind
        f.write(b'{"epoch": 3, "lo')
    assert read_lines(p) == ["one", "two"]
    append_line(p, "three")  # the torn part is cut off, not glued to this line
    assert p.read_bytes() == b"one\ntwo\nthree\n"
    with pytest.raises(ValueError):
        append_line(p, "a\nb")


def test_append_line_torn_only_line(tmp_path):
    p = tmp_path / "m"
    p.write_bytes(b"x" * 70000)  # no newline at all, longer than one scan block
    assert read_lines(p) == []
    append_line(p, "first")
    assert p.read_bytes() == b"first\n"


def test_append_line_disk_full(tmp_path, monkeypatch):
    p = tmp_path / "m"
    append_line(p, "a")
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(StorageError, match="cannot append to"):
        append_line(p, "b")


# ----------------------------------------------------------------------------- create_run_dir
NOW = datetime(2026, 11, 27, 3, 4, 5)


def test_create_run_dir_naming_and_roots(tmp_path, monkeypatch):
    p = create_run_dir(tmp_path / "r", "cifar cnn/v2", now=NOW)
    assert p == tmp_path / "r" / "20261127-030405-cifar-cnn-v2" and p.is_dir()
    assert create_run_dir(tmp_path / "r", "cifar cnn/v2", now=NOW).name == "20261127-030405-cifar-cnn-v2-2"
    assert create_run_dir(tmp_path / "r", "cifar cnn/v2", now=NOW).name == "20261127-030405-cifar-cnn-v2-3"
    monkeypatch.setenv("TRAINKIT_RUNS", str(tmp_path / "env"))
    assert create_run_dir(None, "m").parent == tmp_path / "env"
    monkeypatch.delenv("TRAINKIT_RUNS")
    monkeypatch.chdir(tmp_path)
    q = create_run_dir(None, "m")
    assert q.parent == Path("runs") and re.fullmatch(r"\d{8}-\d{6}-m", q.name)


def test_concurrent_create_run_dir_same_second_threads(tmp_path):
    out, barrier = [], threading.Barrier(8)

    def work():
        barrier.wait()
        out.append(create_run_dir(tmp_path, "same", now=NOW))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 8 and all(p.is_dir() and not any(p.iterdir()) for p in out)


def test_concurrent_create_run_dir_same_second_processes(tmp_path):
    code = (
        "import sys; from datetime import datetime; from trainkit.train.rundir import create_run_dir; "
        "print(create_run_dir(sys.argv[1], 'same', now=datetime(2026, 1, 2, 3, 4, 5)))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    paths = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(paths)) == 3
    assert sorted(os.listdir(tmp_path)) == ["20260102-030405-same", "20260102-030405-same-2", "20260102-030405-same-3"]


def test_exact_run_dir(tmp_path):
    assert create_run_dir(exact=tmp_path / "new" / "run") == tmp_path / "new" / "run"
    (tmp_path / "empty").mkdir()
    assert create_run_dir(exact=tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "run.json").write_text("{}")
    with pytest.raises(RunDirError, match="not empty.*--resume"):
        create_run_dir(exact=tmp_path / "used")
    assert (tmp_path / "used" / "run.json").read_text() == "{}"
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="not a directory"):
        create_run_dir(exact=tmp_path / "file")


def test_create_run_dir_permission_denied(tmp_path, monkeypatch):
    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(RunDirError, match="cannot create run directory .*Permission denied"):
        create_run_dir(tmp_path, "x", now=NOW)


# ----------------------------------------------------------------------------- run.json
def test_run_info_lifecycle(tmp_path):
    run = create_run_dir(tmp_path, "digits", now=NOW)
    assert not is_run_dir(run)
    info = RunInfo.create(run, name="digits", seed=7, epochs_planned=5, command=["trainkit", "train", "c.yaml"])
    assert is_run_dir(run)
    data = json.loads((run / "run.json").read_text())
    assert data["status"] == "running" and data["seed"] == 7 and data["epochs_planned"] == 5
    assert data["command"] == ["trainkit", "train", "c.yaml"] and data["id"] == run.name
    assert set(data["versions"]) == {"trainkit", "numpy", "python"} and data["versions"]["numpy"] == np.__version__
    info.update(epochs_done=2, best_metric={"name": "val_acc", "value": 0.9, "epoch": 2})
    with pytest.raises(ValueError):
        info.update(status="exploded")
    info.finish("interrupted", message="stopped by SIGTERM")
    again = open_run(run)
    assert again.status == "interrupted" and again.data["epochs_done"] == 2
    assert again.data["end_time"] and again.data["duration_s"] >= 0
    again.resume(command=["trainkit", "train", "--resume", str(run)], epochs_planned=8)
    assert open_run(run).data["status"] == "running" and open_run(run).data["resumes"] == 1
    assert open_run(run).data["end_time"] is None and open_run(run).data["epochs_planned"] == 8
    again.finish("completed", epochs_done=8)
    assert open_run(run).status == "completed"
    with pytest.raises(ValueError):
        again.finish("running")


def test_open_run_refuses_non_runs(tmp_path):
    with pytest.raises(RunDirError, match="no such run directory"):
        open_run(tmp_path / "missing")
    with pytest.raises(RunDirError, match="not a trainkit run directory"):
        open_run(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(RunDirError, match="not a directory"):
        open_run(tmp_path / "f")
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(RunDirError, match="run.json"):
        open_run(tmp_path)


# ----------------------------------------------------------------------------- metrics
def _row(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": np.float32(0.1 * epoch),
            "val_loss": None if epoch == 2 else 0.5 / epoch, "val_acc": 0.3, "lr": 0.1, "note": "a,b"}


def test_metrics_log_writes_both_files(tmp_path):
    log = MetricsLog(tmp_path)
    for e in (1, 2):
        log.append(_row(e))
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_acc,val_loss,val_acc,lr,note"
    assert lines[2] == f'2,0.5,{float(np.float32(0.2))!r},,0.3,0.1,"a,b"'
    rows = log.rows()
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["val_loss"] is None
    assert rows[1]["train_acc"] == float(np.float32(0.2))
    # Reopening (resume) appends without a second header.
    MetricsLog(tmp_path).append(_row(3))
    assert (tmp_path / "metrics.csv").read_text().count("epoch,") == 1
    with pytest.raises(ValueError, match="not in the CSV columns"):
        log.append({"epoch": 4, "surprise": 1})


def test_metrics_resume_trimming_matches_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "a", tmp_path / "b"
    straight.mkdir(), killed.mkdir()
    log = MetricsLog(straight)
    for e in range(1, 6):
        log.append(_row(e))
    # Interrupted run: checkpoint after epoch 2; epoch 3's rows were written, then
    # kill -9 tore the CSV line of epoch 4 mid-write.
    log = MetricsLog(killed)
    for e in range(1, 4):
        log.append(_row(e))
    append_line(killed / "metrics.jsonl", json.dumps(_row(4), default=float))
    with open(killed / "metrics.csv", "ab") as f:
        f.write(b"4,0.25,0.4")
    resumed = MetricsLog(killed)
    kept = resumed.truncate_after(2)
    assert [r["epoch"] for r in kept] == [1, 2]
    for e in range(3, 6):
        resumed.append(_row(e))
    for name in ("metrics.csv", "metrics.jsonl"):
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name


def test_truncate_after_on_fresh_and_corrupt_logs(tmp_path):
    assert MetricsLog(tmp_path).truncate_after(3) == []
    assert not (tmp_path / "metrics.csv").exists()
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(RunDirError, match=r"metrics.jsonl:2"):
        MetricsLog(tmp_path).rows()


# ----------------------------------------------------------------------------- list_runs
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_list_runs_newest_first_with_summaries(tmp_path):
    old = create_run_dir(tmp_path, "a", now=datetime(2026, 1, 1))
    RunInfo.create(old, name="a", epochs_planned=3, start_time="2026-01-01T00:00:00+00:00").finish(
        "completed", epochs_done=3, best_metric={"name": "val_acc", "value": 0.8, "epoch": 2})
    (old / "report.json").write_text(json.dumps({"test": {"accuracy": 0.79}, "checkpoint": "best"}))
    new = create_run_dir(tmp_path, "b", now=datetime(2026, 2, 1))
    RunInfo.create(new, name="b", epochs_planned=10, start_time="2026-02-01T00:00:00+00:00", pid=_dead_pid())
    bad = create_run_dir(tmp_path, "c", now=datetime(2025, 1, 1))
    (bad / "run.json").write_text("not json")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("")
    runs = list_runs(tmp_path)
    assert [r.id for r in runs] == [new.name, old.name, bad.name]
    b, a, c = runs
    assert (a.name, a.status, a.epochs_done, a.epochs_planned) == ("a", "completed", 3, 3)
    assert (a.best_metric, a.best_value, a.test_accuracy) == ("val_acc", 0.8, 0.79)
    assert a.duration_s is not None and not a.stale
    assert b.status == "crashed" and b.stale and b.test_accuracy is None and b.epochs_done == 0
    assert c.status == "unreadable"
    with pytest.raises(RunDirError, match="no such runs directory"):
        list_runs(tmp_path / "nope")
