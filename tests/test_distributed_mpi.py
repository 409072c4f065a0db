"""Data-parallel training on real MPI ranks (needs the mpi extra: ``pip install 'trainkit[mpi]'``; CI installs it).

Every case runs ``trainkit train`` under an MPI launcher (``--procs N``, or
``mpiexec`` itself) in a subprocess, and compares with a single process:
final weights within 1e-5 of the largest weight of each tensor, the same
metrics and test accuracy; then the faults: a rank killed with SIGKILL, a
rank that raises, Ctrl-C, bad input, and two ranks that talk over TCP as on
two machines.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (the mpi extra: pip install 'trainkit[mpi]')")

from trainkit.distributed.launch import find_mpiexec  # noqa: E402
from trainkit.train.checkpoint import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BN_CONFIG = str(ROOT / "configs" / "digits_mlp_bn.yaml")
EPOCHS = ["--set", "train.epochs=2"]
TIMEOUT = 180


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        env.pop(key, None)
    env.update(extra)
    return env


def trainkit(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "trainkit", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env or _env(), cwd=cwd)


def start(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "trainkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env or _env())


def weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last")[0]


def assert_same_weights(a: Path, b: Path, tol=1e-5):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wb:
        if wb[k].dtype.kind != "f":
            assert np.array_equal(wa[k], wb[k]), k
            continue
        err = np.abs(wa[k].astype(np.float64) - wb[k]).max() / np.abs(wb[k]).max()
        assert err <= tol, f"{k}: max|diff| = {err:.2e} x max|w|"


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_table(a: Path, b: Path):
    ra, rb = rows(a), rows(b)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        for key in ("epoch", "train_acc", "val_acc", "lr"):
            assert x[key] == y[key], (key, x, y)
        for key in ("train_loss", "val_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-5), (key, x, y)


def run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def wait_for(predicate, seconds=TIMEOUT, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rank_pids(run: Path) -> list[int]:
    wait_for(lambda: (run / "run.json").exists() and "distributed" in run_json(run), what="the ranks to start")
    return run_json(run)["distributed"]["pids"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of no one we wait for counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The batch-norm config (sync_batchnorm) for 2 epochs on 2 ranks and in one process."""
    base = tmp_path_factory.mktemp("reference")
    two = trainkit("train", BN_CONFIG, *EPOCHS, "--procs", "2", "--run-dir", base / "two")
    assert two.returncode == 0, two.stdout + two.stderr
    one = trainkit("train", BN_CONFIG, *EPOCHS, "--run-dir", base / "one")
    assert one.returncode == 0, one.stdout + one.stderr
    return base / "two", base / "one", two.stdout


def test_two_ranks_train_as_one_process(reference):
    two, one, out = reference
    assert_same_weights(two, one)
    assert_same_table(two, one)
    report = [json.loads((r / "report.json").read_text()) for r in (two, one)]
    assert report[0]["test"]["accuracy"] == report[1]["test"]["accuracy"]
    assert report[0]["test"]["confusion_matrix"] == report[1]["test"]["confusion_matrix"]
    log = (two / "train.log").read_text()
    assert "data parallel: 2 ranks on 1 machine" in log and "global batch 32 = 16 per rank" in log
    assert "batch norm: synchronised over the ranks" in log
    info = run_json(two)["distributed"]
    steps = 2 * -(-run_json(two)["data"]["train"] // 32)  # 2 epochs of global batches of 32
    assert info["ranks"] == 2 and info["sync_batchnorm"] and info["allreduce_calls"] == steps
    assert info["floats_per_call"] == sum(w.size for k, w in weights(two).items() if "running" not in k
                                          and "num_batches" not in k)
    assert "--procs" in run_json(two)["command"]


def test_a_killed_rank_ends_the_job_and_the_run_resumes_with_any_number_of_ranks(reference, tmp_path):
    two = reference[0]
    run = tmp_path / "killed"
    job = start("train", BN_CONFIG, *EPOCHS, "--procs", "2", "--run-dir", run, "-q")
    pids = rank_pids(run)
    wait_for(lambda: (run / "checkpoints" / "last").exists(), what="the first checkpoint")
    os.kill(pids[1], signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: not any(alive(p) for p in pids), seconds=10, what="every rank to end (10 s)")
    gone = time.monotonic() - t0
    out, _ = job.communicate(timeout=30)
    assert job.returncode not in (0, 2, 130), out
    info = run_json(run)
    assert info["status"] == "failed" and "ended abnormally" in info["message"], info
    assert info["epochs_done"] < 2
    assert f"Resume with:  trainkit train --resume {run}" in out
    print(f"all ranks gone {gone:.2f} s after the SIGKILL")
    again = tmp_path / "killed-single"
    shutil.copytree(run, again)
    res = trainkit("train", "--resume", run, "--procs", "2", "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_weights(run, two)
    assert_same_table(run, two)
    res = trainkit("train", "--resume", again, "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_weights(again, two)


def test_ctrl_c_interrupts_every_rank_after_the_same_step_and_resumes(reference, tmp_path):
    two = reference[0]
    run = tmp_path / "stopped"
    job = start("train", BN_CONFIG, *EPOCHS, "--procs", "2", "--run-dir", run, "-q")
    pids = rank_pids(run)
    wait_for(lambda: (run / "checkpoints" / "last").exists(), what="the first checkpoint")
    job.send_signal(signal.SIGINT)
    out, _ = job.communicate(timeout=60)
    assert job.returncode == 130, out
    assert not any(alive(p) for p in pids)
    info = run_json(run)
    assert info["status"] == "interrupted", info
    state = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    res = trainkit("train", "--resume", run, "--procs", "2", "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_weights(run, two)
    assert_same_table(run, two)
    assert state["epoch"] < 2


FAILING_LAYER = '''
import os, time
from trainkit.nn import Module

class FailOnRank(Module):
    """Identity that raises on one rank after some training steps, noting when."""
    def __init__(self, rank: int = 1, after: int = 5, note: str = ""):
        super().__init__()
        self.rank, self.after, self.note, self.calls = rank, after, note, 0

    def forward(self, x):
        if self.training and x.shape[0] > 1 and os.environ.get("PMI_RANK") == str(self.rank):
            self.calls += 1
            if self.calls > self.after:
                open(self.note, "w").write(repr(time.time()))
                raise RuntimeError("injected failure")
        return x
'''


def test_a_rank_that_raises_ends_the_job_and_rank_0_marks_the_run_failed(tmp_path):
    (tmp_path / "failing.py").write_text(FAILING_LAYER)
    note = tmp_path / "failed-at"
    (tmp_path / "fail.yaml").write_text(f"""
name: failing
seed: 0
data: {{dataset: iris, batch_size: 16}}
model:
  layers:
    - linear: {{out_features: 8}}
    - ./failing.py:FailOnRank: {{rank: 1, after: 10, note: "{note}"}}
    - relu
    - linear: {{out_features: 3}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 40}}
""")
    run = tmp_path / "run"
    res = trainkit("train", tmp_path / "fail.yaml", "--procs", "2", "--run-dir", run, "-q")
    ended = time.time()
    assert res.returncode == 1, res.stdout + res.stderr
    info = run_json(run)
    said = f"{info}\nstdout: {res.stdout}\nstderr: {res.stderr}"  # the whole story when a line fails
    assert ended - float(note.read_text()) < 10, said
    assert info["status"] == "failed", said
    assert info["message"].startswith("rank 1 (on ") and "RuntimeError: injected failure" in info["message"], said
    assert "error: rank 1" in res.stderr and "Traceback" in res.stderr, said  # the rank's own traceback, and why


def test_bad_input_is_refused_before_training_with_one_message(tmp_path):
    res = trainkit("train", BN_CONFIG, "--set", "optimizer.lr=fast", "--procs", "2", "--runs-dir", tmp_path / "r")
    assert res.returncode == 2
    assert (res.stdout + res.stderr).count("error:") == 1 and "optimizer.lr" in res.stderr
    assert not (tmp_path / "r").exists()


def test_three_ranks_with_a_rank_left_without_rows_train_as_one_process(tmp_path):
    """digits: 1295 training images in batches of 431 leave a last batch of 2: the third rank computes on
    placeholder rows with weight zero and joins the sync batch-norm reductions with nothing; dropout masks
    are the single process's."""
    (tmp_path / "bn.yaml").write_text("""
name: digits_bn
seed: 0
data: {dataset: digits, val_split: 0.1, batch_size: 431}
model:
  layers:
    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
    - batchnorm2d
    - gelu
    - flatten
    - dropout: {p: 0.2}
    - linear: {out_features: 10}
loss: cross_entropy
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: 3, sync_batchnorm: true}
""")
    three = trainkit("train", tmp_path / "bn.yaml", "--procs", "3", "--run-dir", tmp_path / "three", "-q")
    assert three.returncode == 0, three.stdout + three.stderr
    assert run_json(tmp_path / "three")["data"]["train"] % 431 == 2
    one = trainkit("train", tmp_path / "bn.yaml", "--run-dir", tmp_path / "one", "-q")
    assert one.returncode == 0, one.stdout + one.stderr
    assert_same_weights(tmp_path / "three", tmp_path / "one")
    assert_same_table(tmp_path / "three", tmp_path / "one")


def _loopback_bytes() -> int:
    for line in Path("/proc/net/dev").read_text().splitlines():
        if line.strip().startswith("lo:"):
            return int(line.split(":", 1)[1].split()[0])
    return -1


@pytest.mark.skipif(not Path("/proc/net/dev").exists(), reason="needs Linux's /proc/net/dev")
def test_two_ranks_over_tcp_as_on_two_machines(tmp_path):
    """A hostfile of two names for this machine, each rank on its own 'host' (no shared memory between them),
    the TCP transport a cluster without a fast interconnect uses: the gradients cross the loopback network."""
    (tmp_path / "hosts").write_text("127.0.0.1:1\n127.0.0.2:1\n")
    env = _env(MPICH_CH4_NETMOD="ofi", FI_PROVIDER="tcp", OMP_NUM_THREADS="1")
    try:
        mpiexec = find_mpiexec()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no mpiexec: {exc}")
    if "HYDRA" not in subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout:
        pytest.skip("the hostfile and -launcher options here are MPICH's (hydra)")
    before = _loopback_bytes()
    res = subprocess.run([mpiexec, "-launcher", "fork", "-f", str(tmp_path / "hosts"), "-n", "2", sys.executable,
                          "-m", "trainkit", "train", BN_CONFIG, "--set", "train.epochs=1", "--run-dir",
                          str(tmp_path / "tcp"), "-q"], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    moved = _loopback_bytes() - before
    assert res.returncode == 0, res.stdout + res.stderr
    info = run_json(tmp_path / "tcp")["distributed"]
    assert info["machines"] == 2 and info["threads"] == [1, 1]
    assert moved >= info["allreduce_calls"] * info["floats_per_call"] * 4  # every step's gradients went over TCP
    one = trainkit("train", BN_CONFIG, "--set", "train.epochs=1", "--run-dir", tmp_path / "one", "-q")
    assert one.returncode == 0
    assert_same_weights(tmp_path / "tcp", tmp_path / "one")


@pytest.mark.parametrize("ranks", [2, 3])
def test_collectives_sync_batchnorm_and_gradients_against_the_whole_batch(ranks):
    res = subprocess.run([find_mpiexec(), "-n", str(ranks), sys.executable, str(ROOT / "tests" / "mpi_checks.py")],
                         capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("ok ") == 5, res.stdout


@pytest.mark.parametrize("note,status,expected", [({"exit": 1}, 9, 1), ({"exit": 3}, 137, 3), ({}, 9, 9),
                                                   ({"exit": 130}, 0, 0)])
def test_the_launcher_returns_the_code_rank_0_ended_the_job_with(tmp_path, monkeypatch, note, status, expected):
    """MPICH's mpiexec reports the status of whichever rank it saw end first: after rank 0's MPI_Abort(1) that
    was sometimes 9, the SIGKILL of the other rank. The launcher returns the code rank 0 noted in the launch
    file, and mpiexec's own status when there is none (or when the job ended well)."""
    from trainkit.distributed import launch as launcher
    fake = tmp_path / "mpiexec"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"open(os.environ['TRAINKIT_LAUNCH_INFO'], 'w').write({json.dumps(json.dumps(note))})\n"
                    f"sys.exit({status if status < 128 else 1})\n" if status < 128 else
                    f"#!{sys.executable}\nimport json, os, signal\n"
                    f"open(os.environ['TRAINKIT_LAUNCH_INFO'], 'w').write({json.dumps(json.dumps(note))})\n"
                    f"os.kill(os.getpid(), {status - 128})\n")
    fake.chmod(0o755)
    monkeypatch.setattr(launcher, "find_mpiexec", lambda: str(fake))
    assert launcher.launch(2, config="c.yaml", run_dir=str(tmp_path / "run")) == expected
