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
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clitools import DIGITS_MLP, assert_same_run, env_for, rows_without_timing, tk
from trainkit.train.checkpoint import load_checkpoint

def assert_refused(r, *names: str) -> str:
    """Exit 2, every name in the message, no traceback; returns the flattened message."""
    out = r.stdout + r.stderr
    flat = " ".join(out.split())
    assert r.returncode == 2, f"exit {r.returncode}\n{out}"
    assert "Traceback" not in out, out
    for name in names:
        assert name in flat.replace(" ", "") or name in flat, f"{name!r} not in:\n{out}"
    return flat


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
    before, config_before = status(run_copy), (run_copy / "config.yaml").read_bytes()
    if not (kind == "misfit" and name == "state.safetensors"):  # eval needs only the weights
        res = _cli(tmp_path, monkeypatch, "eval", run_copy)
        flat = _assert_result_refused(res, phrase)
        assert name in flat, flat
        assert not (run_copy / "eval-test-best.json").exists()
    res = _cli(tmp_path, monkeypatch, "train", "--resume", run_copy, "--set", "train.epochs=4")
    flat = _assert_result_refused(res, phrase, name)
    assert not marker.exists()
    # The refused resume changed nothing: no metrics row, same status and config (not epochs: 4).
    assert len(rows_without_timing(run_copy)) == 3
    assert status(run_copy) == before == "completed"
    assert (run_copy / "config.yaml").read_bytes() == config_before


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_pickled_checkpoint_runs_nothing_in_a_real_process(run_copy, tmp_path, command):
    marker = tmp_path / "pwned"
    for which in ("best", "last"):
        damage(run_copy / "checkpoints" / which, "model.safetensors", "pickle", marker)
    args = ["eval", run_copy] if command == "eval" else ["train", "--resume", run_copy, "--set", "train.epochs=4"]
    assert_refused(tk(tmp_path, *args), "model.safetensors", "pickle")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run


# ----------------------------------------------------------------------------- faults while writing
# A driver that runs the real CLI in a subprocess after arming one fault: the N-th checkpoint file
# write or metrics append fails with ENOSPC, or the process SIGKILLs itself in the middle of the N-th
# checkpoint file write or just before the N-th rename of a checkpoint folder.
DRIVER = textwrap.dedent("""\
    import errno, os, signal, sys
    import trainkit.utils.atomic as atomic
    import trainkit.train.checkpoint as ck

    mode, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    calls = [0]

    def nth():
        calls[0] += 1
        return calls[0] == n

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_write = ck._write_file

    def write_file(path, data):
        if nth():
            if mode == "enospc_checkpoint":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            if mode == "eacces_checkpoint":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            with open(path, "xb") as f:  # kill_write: half the file reaches the disk, then the kill
                f.write(data[: len(data) // 2])
                f.flush()
            die()
        real_write(path, data)

    class FullFile:
        \"\"\"A log file on a full disk: opening works, writing fails.\"\"\"
        def __init__(self, f): self.f = f
        def __enter__(self): return self
        def __exit__(self, *exc): self.f.close()
        def __getattr__(self, name): return getattr(self.f, name)
        def write(self, data): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def log_open(path, mode_, *a, **k):
        f = open(path, mode_, *a, **k)
        return FullFile(f) if mode_ == "ab" and nth() else f

    class OsWithDeadlyRename:
        def __getattr__(self, name): return getattr(os, name)
        def rename(self, a, b):
            if nth():
                die()
            os.rename(a, b)

    if mode in ("enospc_checkpoint", "eacces_checkpoint", "kill_write"):
        ck._write_file = write_file
    elif mode == "enospc_metrics":
        atomic.open = log_open  # append_line's open(); its own error handling stays in the path
    elif mode == "kill_rename":
        ck.os = OsWithDeadlyRename()
    else:
        raise SystemExit(f"unknown mode {mode}")
    sys.argv = ["trainkit", *args]
    from trainkit.cli import app
    app()
    """)


def parallel(jobs: list[tuple[Path, list]]) -> list[subprocess.CompletedProcess]:
    """Run ``(cwd, argv)`` jobs at once (each in its own folder): the cases are independent and each
    is a ~1.5 s process, so running them side by side keeps this file fast."""
    procs = [(argv, subprocess.Popen([sys.executable, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env_for(cwd), cwd=cwd)) for cwd, argv in jobs]
    out = []
    for argv, p in procs:
        stdout, stderr = p.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(argv, p.returncode, stdout, stderr))
    return out


def faulty_runs(tmp: Path, cases: list[tuple[str, int]]) -> list[tuple[str, int, Path, subprocess.CompletedProcess]]:
    """Start the baseline config under each armed fault, all at once; one folder per case."""
    jobs, runs = [], []
    for mode, n in cases:
        case = tmp / f"{mode}-{n}"
        case.mkdir()
        (case / "driver.py").write_text(DRIVER)
        (case / "tiny_digits.yaml").write_text(DIGITS_MLP)
        runs.append(case / "run")
        jobs.append((case, [case / "driver.py", mode, n, "train", case / "tiny_digits.yaml", "--run-dir", case / "run",
                            "--quiet"]))
    return [(mode, n, run, r) for (mode, n), run, r in zip(cases, runs, parallel(jobs))]


def resume_all(runs: list[Path]) -> list[subprocess.CompletedProcess]:
    return parallel([(run.parent, ["-m", "trainkit", "train", "--resume", run, "--quiet"]) for run in runs])


def no_debris(run: Path) -> bool:
    return not [p.name for p in (run / "checkpoints").iterdir() if p.name not in ("last", "best")]


# Checkpoint file writes: 4 per save (model, state, state.json, manifest); epoch 1 saves best then
# last (writes 1-8). n=6 fails last's state.safetensors in epoch 1 (no last yet, only best);
# n=10 and n=14 fall in epoch 2's best and last saves. Metrics appends ("ab" opens): epoch 1 = jsonl, csv header,
# csv row (1-3); n=5 is epoch 2's csv row, after its jsonl row went in.
DISK_FULL = [("enospc_checkpoint", 6), ("enospc_checkpoint", 14), ("enospc_metrics", 5), ("eacces_checkpoint", 10)]
# (as root, a read-only folder does not stop writes, so permission denied is injected the same way)


def test_disk_full_or_permission_denied_fails_cleanly_and_resume_completes(baseline, tmp_path):
    resumable = []
    for mode, n, run, r in faulty_runs(tmp_path, DISK_FULL):
        case = f"{mode} at call {n}"
        reason, hint = (("Permission denied", "no permission to write there") if mode.startswith("eacces")
                        else ("No space left on device", "the disk is full"))
        flat = assert_refused(r, reason, hint)
        assert ("checkpoints/" in flat) if mode.endswith("_checkpoint") else ("metrics." in flat), case
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "failed" and reason in info["message"], case
        # No temporary debris, and the checkpoints that exist are complete and loadable.
        assert no_debris(run), case
        for which in ("last", "best"):
            if (run / "checkpoints" / which).exists():
                load_checkpoint(run / "checkpoints" / which)
        if not (run / "checkpoints" / "last").exists():
            # No epoch was ever recorded as done: --resume trains the run from the start (issue 12).
            assert (mode, n) == ("enospc_checkpoint", 6), case
            assert info["epochs_done"] == 0, case
        else:
            assert 1 <= load_checkpoint(run / "checkpoints" / "last")[2]["epoch"] < 3, case
        resumable.append((case, run))
    assert len(resumable) == len(DISK_FULL)
    for (case, run), r in zip(resumable, resume_all([run for _, run in resumable])):
        assert r.returncode == 0, f"{case}: {r.stdout}{r.stderr}"
        assert status(run) == "completed", case
        assert_same_run(run, baseline)


# SIGKILL just before the n-th rename of a checkpoint folder, or halfway through the n-th checkpoint
# file write. Renames: epoch 1 tmp->best (1), tmp->last (2); epoch 2 (val acc improves in the
# baseline) best->old (3), tmp->best (4), last->old (5), tmp->last (6). So n=2 leaves only a complete
# last.tmp-*, n=5 dies before the swap, n=6 between the two renames (no last, only last.old-* and
# last.tmp-*). Writes: 4 per save, epoch 2's best is 9-12 and last 13-16.
KILLS = [("kill_rename", 2), ("kill_rename", 5), ("kill_rename", 6), ("kill_write", 11), ("kill_write", 14)]


def test_sigkill_during_checkpoint_writes_then_resume_equals_uninterrupted(baseline, tmp_path):
    killed = faulty_runs(tmp_path, KILLS)
    for mode, n, run, r in killed:
        assert r.returncode == -9, f"{mode} {n} was not killed: {r.stdout}{r.stderr}"
        assert status(run) == "running"  # killed: nobody could record anything
        if (mode, n) == ("kill_rename", 6):  # the worst instant: between the two renames of the swap
            names = sorted(p.name.split("-")[0] for p in (run / "checkpoints").iterdir())
            assert names == ["best", "last.old", "last.tmp"], names
    resumed = resume_all([run for _, _, run, _ in killed])
    for (mode, n, run, _), r in zip(killed, resumed):
        case = f"{mode} at call {n}"
        assert r.returncode == 0, f"{case}: {r.stdout}{r.stderr}"
        assert status(run) == "completed", case
        assert_same_run(run, baseline)
        assert no_debris(run), case


def test_divergence_later_in_a_run_keeps_the_last_good_checkpoint(tmp_path):
    # lr 0.1 for epoch 1, then the step scheduler multiplies it by 1e12: the loss blows up in epoch 2.
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DIGITS_MLP.replace("step_size: 2, gamma: 0.5", "step_size: 1, gamma: 1.0e+12"))
    r = tk(tmp_path, "train", cfg, "--run-dir", tmp_path / "run")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 3, out
    assert "epoch 2" in out and "lower learning rate" in out and "Traceback" not in out
    run = tmp_path / "run"
    assert status(run) == "diverged"
    _, _, meta = load_checkpoint(run / "checkpoints" / "last")
    assert meta["epoch"] == 1
    assert [row["epoch"] for row in rows_without_timing(run)] == [1]


# ----------------------------------------------------------------------------- hostile data through the CLI
def train_on(tmp: Path, data_yaml: str) -> subprocess.CompletedProcess:
    """``trainkit train`` of a one-layer model on the given ``data:`` section."""
    cfg = tmp / "cfg.yaml"
    cfg.write_text("name: hostile\nseed: 0\ndata:\n" + textwrap.indent(data_yaml, "  ")
                   + "model:\n  layers: [flatten, {linear: {out_features: 10}}]\n"
                   + "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 1}\n")
    return tk(tmp, "train", cfg, "--quiet")


def no_runs(tmp: Path) -> bool:
    runs = tmp / "runs"
    return not runs.exists() or not any(runs.iterdir())


def cifar_archive(tmp: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]] = (), first=()) -> Path:
    """``tmp/data/cifar-10-python.tar.gz``: valid tiny batches plus hostile members (before or after them)."""
    from fakedata import write_cifar10
    src = write_cifar10(tmp / "src", per_batch=4, test=10)
    root = tmp / "data"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tf:
        for info, data in first:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
        for path in sorted((src / "cifar-10-batches-py").iterdir()):
            tf.add(path, arcname=f"cifar-10-batches-py/{path.name}")
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    shutil.rmtree(src)
    return root


@pytest.mark.parametrize("kind", ["traversal", "symlink"])
def test_hostile_tar_member_refused_by_the_cli(tmp_path, kind):
    info = tarfile.TarInfo("../../escaped" if kind == "traversal" else "cifar-10-batches-py/link")
    data = b"boom"
    info.size = len(data)
    if kind == "symlink":
        info.type, info.linkname, info.size, data = tarfile.SYMTYPE, "/etc/passwd", 0, None
    root = cifar_archive(tmp_path, extra=[(info, data)])
    r = train_on(tmp_path, f"dataset: cifar10\nroot: {root}\ndownload: false\n")
    assert_refused(r, "cifar-10-python.tar.gz", "refused member")
    for base in (tmp_path, root, tmp_path / "data-cache"):  # relative to the cwd, the root, the cache
        assert not (base / "../../escaped").exists()
    assert no_runs(tmp_path)
    # Nothing was unpacked beside the archive (a decoded cache may only go under $TRAINKIT_DATA).
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]


def test_member_larger_than_its_format_refused_before_reading(tmp_path):
    # The header claims a 1 GiB data_batch_1 (the format allows 100 MiB); no data follows.
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 1 << 30
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)))
    r = train_on(tmp_path, f"dataset: cifar10\nroot: {root}\ndownload: false\n")
    assert_refused(r, "cifar-10-python.tar.gz", "its format allows")
    assert no_runs(tmp_path)


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def mnist_folder(tmp: Path, n: int = 20) -> Path:
    folder = tmp / "data" / "MNIST"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images, 2051)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels, 2049)))
    return folder


def test_gzip_bomb_refused_by_the_cli_without_inflating_it(tmp_path):
    # A valid header for 20 images followed by 4 GiB of zeros, as 256 concatenated gzip members of
    # 16 MiB each (4 MB on disk). The reader must stop right after the 20 images (15 KiB) the header
    # announces: the child's peak memory shows it never inflated the rest.
    folder = mnist_folder(tmp_path)
    zeros = gzip.compress(bytes(16 << 20), compresslevel=9)
    bomb = gzip.compress(struct.pack(">IIII", 2051, 20, 28, 28)) + zeros * 256
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    # In a fork of the test's pre-imported trainkit server: a process exec'd from this pytest worker
    # would report the worker's own peak (Linux keeps the peak of the memory an exec replaces), which
    # passed 1 GiB when earlier tests on the same worker had used that much.
    r = tk(tmp_path, "train", _mnist_cfg(tmp_path), "--quiet")
    assert_refused(r, "train-images-idx3-ubyte.gz", "longer")
    assert r.maxrss_kb < 1024 * 1024, f"peak memory {r.maxrss_kb} KiB"  # Linux: KiB
    assert no_runs(tmp_path)


def _mnist_cfg(tmp: Path) -> Path:
    cfg = tmp / "mnist.yaml"
    cfg.write_text(f"name: m\nseed: 0\ndata: {{dataset: mnist, root: {tmp / 'data'}, download: false, val_split: 0}}\n"
                   "model:\n  layers: [flatten, {linear: {out_features: 10}}]\n"
                   "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 1}\n")
    return cfg


def test_idx_header_not_matching_the_data_refused_by_the_cli(tmp_path):
    folder = mnist_folder(tmp_path)
    blob = _idx(np.zeros((20, 28, 28), np.uint8), 2051)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob[:-100]))
    r = tk(tmp_path, "train", _mnist_cfg(tmp_path), "--quiet")
    assert_refused(r, "t10k-images-idx3-ubyte.gz", "shorter")
    assert no_runs(tmp_path)


@pytest.mark.parametrize("text, expect", [("a,b,y\n1,2,0\n3,4\n", "line 3 has 2 cells"),
                                          ("a,b,y\n1,2,0\n1,nan,1\n", "line 3, column 'b'"),
                                          ("a,b,y\n1,inf,0\n", "line 2, column 'b'")])
def test_broken_csv_refused_by_the_cli(tmp_path, text, expect):
    (tmp_path / "d.csv").write_text(text)
    r = train_on(tmp_path, f"dataset: csv\npath: {tmp_path / 'd.csv'}\ntarget: y\n")
    assert_refused(r, "d.csv", expect)
    assert no_runs(tmp_path)


# ----------------------------------------------------------------------------- broadcasting gradients
from hypothesis import HealthCheck, assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

import trainkit  # noqa: E402
from trainkit.autograd.gradcheck import gradcheck  # noqa: E402

# Each op's input arrays are shaped so that they broadcast; `prepare` moves values away from the
# points where the op is not differentiable (zero divisors, negative bases, ties of max/min).
BINARY = {
    "add": (lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, lambda a, b: (a, np.sign(b) * (np.abs(b) + 0.5))),
    "pow": (lambda a, b: a ** b, lambda a, b: (np.abs(a) + 0.5, b)),
    "maximum": (trainkit.maximum, None),
    "minimum": (trainkit.minimum, None),
    "where": (lambda a, b: trainkit.where(a > b, a * 2.0, b), None),
    "add_then_sum": (lambda a, b: trainkit.sum((a + b) * b, dim=-1, keepdim=True), None),
}


def _grad_tensors(*arrays):
    return tuple(trainkit.tensor(a, requires_grad=True) for a in arrays)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(sorted(BINARY)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       seed=st.integers(0, 2**32 - 1))
def test_broadcasting_binary_ops_match_finite_differences(op, shapes, seed):
    fn, prepare = BINARY[op]
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    if prepare is not None:
        a, b = prepare(a, b)
    # Central differences straddle a kink when two values nearly tie: keep them apart.
    assume(np.min(np.abs(np.subtract(a, b)), initial=np.inf) > 1e-3)
    ta, tb = _grad_tensors(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = fn(ta, tb)
    if op != "add_then_sum":
        assert out.shape == shapes.result_shape
    assert gradcheck(fn, (ta, tb))


@st.composite
def _matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    left, right = batch.input_shapes
    a = (k,) if draw(st.booleans()) and not left else (*left, n, k)  # 1-d operands too, like torch
    b = (k,) if draw(st.booleans()) and not right else (*right, k, m)
    return a, b


@settings(max_examples=25, deadline=None)
@given(shapes=_matmul_shapes(), seed=st.integers(0, 2**32 - 1))
@example(shapes=((3,), (3,)), seed=0)  # vector @ vector: its backward once failed on the 0-d gradient
@example(shapes=((2, 1, 3), (3,)), seed=1)
@example(shapes=((3,), (4, 3, 2)), seed=2)
def test_broadcasting_matmul_matches_finite_differences(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in shapes)
    ta, tb = _grad_tensors(a, b)
    expected = np.matmul(a, b)
    np.testing.assert_allclose(trainkit.matmul(ta, tb).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(trainkit.matmul, (ta, tb))


# ----------------------------------------------------------------------------- hostile run directories
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_run_directory_with_a_hostile_config_yaml_runs_nothing(run_copy, tmp_path, monkeypatch, command):
    # A run directory copied from elsewhere is as untrusted as a downloaded checkpoint.
    marker = tmp_path / "pwned"
    text = (run_copy / "config.yaml").read_text()
    (run_copy / "config.yaml").write_text(text + f"\nextra: !!python/object/apply:os.system ['touch {marker}']\n")
    args = ["eval", run_copy] if command == "eval" else ["train", "--resume", run_copy, "--set", "train.epochs=4"]
    _assert_result_refused(_cli(tmp_path, monkeypatch, *args), "config.yaml", "python/object/apply")
    assert not marker.exists()
    assert len(rows_without_timing(run_copy)) == 3


def test_run_json_that_is_not_json_is_refused(run_copy, tmp_path, monkeypatch):
    (run_copy / "run.json").write_bytes(b"\x80\x04\x95garbage")
    for args in (["eval", run_copy], ["train", "--resume", run_copy], ["runs", tmp_path]):
        res = _cli(tmp_path, monkeypatch, *args)
        if args[0] == "runs":  # the listing survives one damaged run and shows it
            assert res.exit_code == 0, res.output
            continue
        _assert_result_refused(res, "run.json")


def test_refused_resume_of_a_completed_run_leaves_it_completed(run_copy, tmp_path, monkeypatch):
    config_before = (run_copy / "config.yaml").read_bytes()
    _assert_result_refused(_cli(tmp_path, monkeypatch, "train", "--resume", run_copy), "already completed 3 of 3")
    assert status(run_copy) == "completed"  # was marked "failed" before the fix
    assert (run_copy / "config.yaml").read_bytes() == config_before
