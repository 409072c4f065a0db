"""Data files that claim more than they hold, paths that are not files, data a model cannot train on.

Issue 12, items 7-9 (data side). Sizes a file claims (a pickled array's shape, a .npy/.npz
header, an IDX header, a zip member's size) must be checked against what the file holds before
anything of that size is allocated; a FIFO, directory, device or /proc file named as data is
refused by name, never read (a FIFO used to hang the run); a CSV with a single class, an empty
training split and a fractional class label are exit 2 with a message saying what to change.

Loads run in ``data_load_worker.py``, one long-lived process, so that its ``ru_maxrss`` and
tracemalloc peak measure the load alone (this process's peak is whatever earlier tests left);
the builders of hostile files and the worker's driver are in ``hostile_data.py``.
"""
from __future__ import annotations

import gzip
import os
import pickle
import signal
import struct
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clitools import tk
from hostile_data import (NDARRAY_CALL, NPZ_1E12, PEAK_BYTES, MiB, Reduce, array_state, assert_bounded,  # noqa: F401
                          assert_refused, batch, cifar_root, cifar_template, idx_bytes, npy_bytes, npz_bytes, worker,
                          with_memo_index)
from trainkit.data import build
from trainkit.data.datasets import CIFAR10, MNIST, CSVDataset, NPZDataset
from trainkit.data.readers import IDX_IMAGES, open_regular, read_idx, read_npy, read_npz
from trainkit.errors import ConfigError, DataError

try:
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.numeric import _frombuffer

# -- item 7: pickled CIFAR batches ------------------------------------------------------------------

def test_cifar_batch_calling_ndarray_is_refused_without_allocating(worker, cifar_template, tmp_path):
    assert len(NDARRAY_CALL) < 200
    answer = worker.load("cifar", cifar_root(cifar_template, tmp_path, NDARRAY_CALL))
    assert_refused(answer, "data_batch_1", "numpy.ndarray((300000, 3072), ...) called directly")


def test_cifar_batches_of_zero_images_made_by_ndarray_calls_are_refused(worker, cifar_template, tmp_path):
    # Data and labels both "allocated" by the pickle: numpy hands back zeroed pages, which used to
    # pass every check and train (the 2 M images at 6 GB RSS; 2,000 per batch here).
    n = 2000
    blob = batch(Reduce(np.ndarray, ((n, 3072), np.dtype("u1"))), Reduce(np.ndarray, ((n,), np.dtype("i8"))))
    root = cifar_root(cifar_template, tmp_path, blob)
    for f in (root / "cifar-10-batches-py").glob("*_batch*"):
        f.unlink()
        f.write_bytes(blob)
    assert_refused(worker.load("cifar", root), "numpy.ndarray((2000, 3072), ...) called directly")


def test_cifar_labels_list_expanded_through_shared_references_is_refused(worker, cifar_template, tmp_path):
    # 4,000 references to one 4,000-long list: 24 KB of pickle, 128 MB once np.asarray expands it.
    shared = [0] * 4000
    blob = batch(np.zeros((1, 3072), np.uint8), [shared] * 4000)
    answer = worker.load("cifar", cifar_root(cifar_template, tmp_path, blob))
    assert_refused(answer, "data_batch_1", "'labels' is not a flat list of integers")


def test_array_state_claiming_more_than_it_holds_names_claim_and_holding(worker, cifar_template, tmp_path):
    blob = batch(array_state((300000, 3072), np.dtype("u1"), b""), [0])
    detail = assert_refused(worker.load("cifar", cifar_root(cifar_template, tmp_path, blob)), "data_batch_1")
    assert "claims shape (300000, 3072) of uint8 (921,600,000 bytes) but the pickle holds 0 bytes" in detail


def test_object_array_with_a_short_list_is_refused_not_a_crash(worker, cifar_template, tmp_path):
    # numpy's own __setstate__ reads past the list: the process used to die with SIGSEGV.
    blob = batch(array_state((300000, 3072), np.dtype("O"), []), [0])
    assert_refused(worker.load("cifar", cifar_root(cifar_template, tmp_path, blob)), "object arrays")


def test_memo_index_bomb_is_refused_before_the_unpickler_grows_its_memo(worker, cifar_template, tmp_path):
    # 7 bytes more than a valid batch; the C unpickler would zero a 1 GiB memo table for it.
    blob = with_memo_index(pickle.dumps({b"labels": [0, 1], b"data": np.zeros((2, 3072), np.uint8)}, protocol=2),
                           1 << 26)
    assert_refused(worker.load("cifar", cifar_root(cifar_template, tmp_path, blob)), "memo index 67,108,864")


def test_every_numpy_pickle_protocol_still_loads(cifar_template, tmp_path):
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        root = cifar_root(cifar_template, tmp_path, batch(images, [3, 4], protocol))
        ds = CIFAR10(root)
        np.testing.assert_array_equal(ds.input_array[:2].reshape(2, 3072), images)
        assert ds.target_array[:2].tolist() == [3, 4]
    # Fortran order, a big-endian dtype and protocol 5's in-band buffers come back as numpy made them.
    from trainkit.data.readers import load_pickle
    a = np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4))
    for protocol in (2, 5):
        np.testing.assert_array_equal(load_pickle(pickle.dumps(a, protocol=protocol), "a"), a)


# -- item 7: .npy / .npz ------------------------------------------------------------------------------

def test_npz_whose_header_claims_1e12_items_is_refused_without_allocating(worker, tmp_path):
    path = tmp_path / "claims.npz"
    path.write_bytes(NPZ_1E12)
    assert len(NPZ_1E12) < 540
    assert_refused(worker.load("npz", path), "claims.npz:x.npy", "claims shape (1000000000000,) of float64",
                   "holds 16 bytes")


@pytest.mark.parametrize("blob, phrase", [
    (npy_bytes("|O", (2,), payload=bytes(16)), "object arrays are refused"),
    (npy_bytes(header="{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,)}", payload=bytes(4)),
     "structured dtype"),
    (npy_bytes("<f8", (2,), fortran=1, payload=bytes(16)), "fortran_order must be True or False"),
    (npy_bytes("<f8", (-1, 2), payload=bytes(16)), "not a tuple of non-negative integers"),
    (npy_bytes("<f8", (3,), payload=bytes(16)), "claims shape (3,) of float64 (24 bytes) but holds 16"),
    (npy_bytes("<f8", (1,), payload=bytes(16)), "but holds 16"),
    (npy_bytes(header="{'descr': '<f8', 'shape': (2,)}", payload=bytes(16)), "exactly descr, fortran_order"),
    (npy_bytes(header="{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}" + " " * 20_000), "header of"),
    (npy_bytes(header="__import__('os').system('true')"), "unreadable .npy header"),
    (npy_bytes("<M8[s]", (2,), payload=bytes(16)), "not supported"),
    (b"\x93NUMPY\x01\x00\xff", "truncated .npy header"),
    (b"PK\x03\x04 not an npy", "no \\x93NUMPY magic"),
])
def test_npy_header_checks(tmp_path, blob, phrase):
    path = tmp_path / "a.npy"
    path.write_bytes(blob)
    with pytest.raises(DataError, match="a.npy") as err:
        read_npy(path)
    assert phrase in str(err.value)


def test_npy_and_npz_load_what_numpy_wrote(tmp_path):
    arrays = {"x": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "y": np.array([0, 1, 2], dtype=">i2"),
              "z": np.zeros((0, 5), np.uint8)}
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)
        b = read_npy(tmp_path / f"{name}.npy")
        np.testing.assert_array_equal(b, a)
        assert b.dtype == a.dtype and b.flags.writeable
    for saver in (np.savez, np.savez_compressed):
        saver(tmp_path / "a.npz", **arrays)
        got = read_npz(tmp_path / "a.npz")
        assert sorted(got) == sorted(arrays)
        for name, a in arrays.items():
            np.testing.assert_array_equal(got[name], a)


def test_npz_member_sizes_are_checked_against_the_zip(tmp_path):
    good = npy_bytes("<f8", (2,), payload=bytes(16))
    # A stored member's size, as the zip claims it, must be its stored size; a deflated one can
    # inflate at most 1032 times.
    blob = bytearray(npz_bytes({"x.npy": good}))
    central = blob.rindex(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, 10 ** 9)  # uncompressed size in the central directory
    (tmp_path / "lie.npz").write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"lie.npz:x.npy: claims 1,000,000,000 bytes but holds 144 compressed"):
        read_npz(tmp_path / "lie.npz")
    blob = bytearray(npz_bytes({"x.npy": good}, deflate=True))
    central = blob.rindex(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, 10 ** 9)
    (tmp_path / "bomb.npz").write_bytes(bytes(blob))
    with pytest.raises(DataError, match="cannot inflate to that"):
        read_npz(tmp_path / "bomb.npz")
    (tmp_path / "other.npz").write_bytes(npz_bytes({"x.npy": good, "notes.txt": b"hi"}))
    with pytest.raises(DataError, match="only .npy members"):
        read_npz(tmp_path / "other.npz")


def test_decoded_cifar_copy_claiming_more_than_it_holds_is_rebuilt(tmp_path, monkeypatch, cifar_template):
    from trainkit.data.datasets import cifar

    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(cifar, "_DECODED_MIN_BYTES", 0)  # a decoded copy even of this tiny archive
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(cifar_template, arcname="cifar-10-batches-py")
    first = CIFAR10(tmp_path)
    (copy,) = (tmp_path / "cache" / ".decoded").iterdir()
    (copy / "train_x.npy").write_bytes(npy_bytes("|u1", (10 ** 5, 3, 32, 32), payload=bytes(3072)))
    cifar._CACHE.clear()
    tracemalloc.start()
    try:
        again = CIFAR10(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(again.input_array, first.input_array) and peak < PEAK_BYTES
    assert np.array_equal(read_npy(copy / "train_x.npy"), first.input_array)  # rewritten from the archive


def test_cifar_folder_batch_larger_than_its_format_is_refused_before_reading(tmp_path, cifar_template):
    root = cifar_root(cifar_template, tmp_path, b"")
    os.truncate(root / "cifar-10-batches-py" / "data_batch_1", 101 << 20)  # sparse: nothing to read
    with pytest.raises(DataError, match=r"data_batch_1: 105,906,176 bytes, more than the 104,857,600 a CIFAR-10 "
                                        r"batch can have"):
        CIFAR10(root)


# -- item 7: IDX ----------------------------------------------------------------------------------

def test_idx_header_claims_are_checked_against_the_file_size(tmp_path):
    # Any item shape (the general reader): dimensions whose product is 2.5e14 bytes, 16 bytes held.
    plain = tmp_path / "huge-idx3-ubyte"
    plain.write_bytes(idx_bytes((60000, 65535, 65535), bytes(16)))
    with pytest.raises(DataError, match=r"huge-idx3-ubyte: header says .* but the file is shorter: it holds 16 bytes"):
        read_idx(plain, IDX_IMAGES, 60_000)
    gz = tmp_path / "huge-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes((60000, 28, 28), bytes(16))))
    with pytest.raises(DataError, match="compressed bytes inflate to at most"):
        read_idx(gz, IDX_IMAGES, 60_000, (28, 28))


# -- item 8: paths that are not regular files --------------------------------------------------------

class _Hang(Exception):
    pass


def _no_hang(fn, seconds: float = 10.0):
    """Run ``fn``; a read that blocks (a FIFO without a writer) raises _Hang instead of hanging the suite."""
    def alarm(*_):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("kind", ["fifo", "directory", "char_device", "proc"])
def test_data_paths_that_are_not_regular_files_are_refused_by_name(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "d.csv"
        os.mkfifo(path)
        expect = "is a FIFO (named pipe), not a regular file"
    elif kind == "directory":
        path = tmp_path / "d.csv"
        path.mkdir()
        expect = "is a directory, not a regular file"
    elif kind == "char_device":
        path, expect = Path("/dev/zero"), "is a character device, not a regular file"
    else:
        path, expect = Path("/proc/self/status"), "is a kernel pseudo-file"
    for load in (lambda: CSVDataset(path, target="y"), lambda: NPZDataset(path), lambda: read_npy(path),
                 lambda: read_idx(path, IDX_IMAGES, 10)):
        with pytest.raises(DataError) as err:
            _no_hang(load)
        assert str(err.value).startswith(f"{path}: {expect}")


def test_fifo_in_place_of_cifar_and_mnist_files_is_named(tmp_path, cifar_template):
    root = cifar_root(cifar_template, tmp_path, b"")
    (root / "cifar-10-batches-py" / "data_batch_1").unlink()
    os.mkfifo(root / "cifar-10-batches-py" / "data_batch_1")
    with pytest.raises(DataError, match="data_batch_1: is a FIFO"):
        _no_hang(lambda: CIFAR10(root))
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        os.mkfifo(mnist / name)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: is a FIFO"):
        _no_hang(lambda: MNIST(mnist))


def test_symlink_to_a_regular_file_is_fine(tmp_path):
    (tmp_path / "real.csv").write_text("a,y\n1,0\n2,1\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert len(CSVDataset(tmp_path / "link.csv", target="y")) == 2
    with open_regular(tmp_path / "link.csv") as f:
        assert f.read() == b"a,y\n1,0\n2,1\n"


# -- item 7/8: CSV ------------------------------------------------------------------------------------

def test_csv_memory_stays_proportional_to_the_file(tmp_path):
    rows = 40_000
    path = tmp_path / "big.csv"
    path.write_text("a,b,y\n" + "".join(f"{i % 97}.5,{i % 13},{i % 3}\n" for i in range(rows)))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        ds = CSVDataset(path, target="y")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ds) == rows and ds.data.shape == (rows, 2)
    # About 32 bytes per row here (two float32 features, a float64 value, a line and a label id);
    # a list of cell strings per row took over 10 times the file.
    assert peak < 4 * size, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.1f} MiB file"


@pytest.mark.parametrize("text, phrase", [
    ("a,y\n1e39,0\n2,1\n", "line 2, column 'a': '1e39' is beyond the float32 range"),
    ("a,y\n1,0.5\n2,3.5e39\n", "line 3, column 'y': '3.5e39' is beyond the float32 range"),
    ("a,y\n1,0\n2,0.5\n", "line 3, column 'y': label '0.5' is not an integer"),
    ("a,y\n1,0\n2,-1\n", "line 3, column 'y': label '-1' out of range"),
])
def test_csv_value_messages(tmp_path, text, phrase):
    path = tmp_path / "d.csv"
    path.write_text(text)
    task = "classification" if "label" in phrase else None
    with pytest.raises(DataError) as err:
        CSVDataset(path, target="y", task=task)
    assert phrase in str(err.value)


# -- item 8: data a model cannot train on, through build() ---------------------------------------------

def test_empty_training_or_validation_part_names_the_key_and_sizes(tmp_path):
    with pytest.raises(ConfigError, match=r"data.val_split: 0.99 of the 120 training samples holds out 120 for "
                                          r"validation and leaves 0 to train on"):
        build({"dataset": "iris", "val_split": 0.99})
    with pytest.raises(ConfigError, match=r"data.test_split: 0.99 holds out all 150 samples for the test set"):
        build({"dataset": "iris", "test_split": 0.99})
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n3,0\n4,1\n")
    with pytest.raises(ConfigError, match="holds out 0 for validation and leaves 4 to train on.*larger val_split"):
        build({"dataset": "csv", "path": str(tmp_path / "d.csv"), "target": "y", "val_split": 0.1})


def test_single_class_is_refused_and_one_regression_row_trains(tmp_path):
    (tmp_path / "one.csv").write_text("a,y\n1,0\n")
    with pytest.raises(DataError, match=r"one.csv: the training data hold a single class \('0'\)"):
        build({"dataset": "csv", "path": str(tmp_path / "one.csv"), "target": "y"})
    np.savez(tmp_path / "one.npz", x=np.ones((3, 2)), y=np.array([0, 0, 0]))
    with pytest.raises(DataError, match="single class"):
        build({"dataset": "npz", "path": str(tmp_path / "one.npz")})
    # As in Keras, a regression on one sample trains (and a file of labels 1, 1 has classes 0 and 1).
    (tmp_path / "reg.csv").write_text("a,y\n1,0.5\n")
    assert len(build({"dataset": "csv", "path": str(tmp_path / "reg.csv"), "target": "y"}).train) == 1
    (tmp_path / "ones.csv").write_text("a,y\n1,1\n2,1\n")
    assert build({"dataset": "csv", "path": str(tmp_path / "ones.csv"), "target": "y"}).num_classes == 2


# -- through the CLI ------------------------------------------------------------------------------------

def _config(tmp: Path, data: str, out: int = 3) -> Path:
    cfg = tmp / "cfg.yaml"
    cfg.write_text(f"name: limits\nseed: 0\ndata: {data}\n"
                   f"model:\n  layers: [flatten, {{linear: {{out_features: {out}}}}}]\n"
                   "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 1}\n")
    return cfg


def _env(tmp: Path) -> dict:
    return dict(os.environ, TRAINKIT_DATA=str(tmp / "cache"), TRAINKIT_RUNS=str(tmp / "runs"), COLUMNS="200")


def _no_runs(tmp: Path) -> bool:
    runs = tmp / "runs"
    return not runs.exists() or not any(p.is_dir() and not p.name.startswith(".") for p in runs.iterdir())


def _assert_exit_2(code: int, out: str, *phrases: str) -> None:
    flat = " ".join(out.split())
    assert code == 2, f"exit {code}\n{out}"
    assert "Traceback" not in out, out
    for phrase in phrases:
        assert phrase in flat, f"{phrase!r} not in {flat!r}"


@pytest.mark.parametrize("case", ["npz_1e12", "object_array_pickle", "fifo_csv"])
def test_cli_refuses_hostile_data_files_in_a_real_process(tmp_path, cifar_template, case):
    if case == "npz_1e12":  # used to end in a MemoryError traceback
        (tmp_path / "claims.npz").write_bytes(NPZ_1E12)
        cfg, phrases = _config(tmp_path, f"{{dataset: npz, path: {tmp_path / 'claims.npz'}}}"), (
            "claims.npz:x.npy", "claims shape (1000000000000,)")
    elif case == "object_array_pickle":  # used to crash the process (SIGSEGV)
        root = cifar_root(cifar_template, tmp_path, batch(array_state((300000, 3072), np.dtype("O"), []), [0]))
        cfg, phrases = _config(tmp_path, f"{{dataset: cifar10, root: {root}}}", 10), ("data_batch_1", "object arrays")
    else:  # used to hang
        os.mkfifo(tmp_path / "d.csv")
        cfg, phrases = _config(tmp_path, f"{{dataset: csv, path: {tmp_path / 'd.csv'}, target: y}}"), (
            "d.csv: is a FIFO (named pipe)",)
    r = tk(tmp_path, "train", cfg, "--quiet", env=_env(tmp_path), timeout=60)
    _assert_exit_2(r.returncode, r.stdout + r.stderr, *phrases)
    assert _no_runs(tmp_path)


@pytest.mark.parametrize("case", ["val_split", "single_class", "half_label", "proc_file"])
def test_cli_refuses_data_that_cannot_train(tmp_path, monkeypatch, case):
    from trainkit.cli import app

    if case == "val_split":  # used to train on nothing and say completed
        cfg, phrases = _config(tmp_path, "{dataset: iris, val_split: 0.99}"), (
            "data.val_split", "holds out 120 for validation and leaves 0 to train on")
    elif case == "single_class":  # used to crash in the metrics after training
        (tmp_path / "d.csv").write_text("a,y\n1,0\n")
        cfg, phrases = _config(tmp_path, f"{{dataset: csv, path: {tmp_path / 'd.csv'}, target: y}}", 1), (
            "d.csv: the training data hold a single class", "data.task: regression")
    elif case == "half_label":  # used to say "out of range"
        (tmp_path / "d.csv").write_text("a,y\n1,0\n2,0.5\n")
        cfg = _config(tmp_path, f"{{dataset: csv, path: {tmp_path / 'd.csv'}, target: y, task: classification}}")
        phrases = ("line 3, column 'y': label '0.5' is not an integer",)
    else:  # used to be parsed as a CSV
        cfg, phrases = _config(tmp_path, "{dataset: csv, path: /proc/self/status, target: y}"), (
            "/proc/self/status: is a kernel pseudo-file",)
    for k, v in _env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", str(cfg), "--quiet"])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    _assert_exit_2(result.exit_code, result.output, *phrases)
    assert _no_runs(tmp_path)


# -- the fuzz test: headers of .npy, .npz, pickled CIFAR batches and IDX ------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

big_ints = st.one_of(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(1 << 16, 1 << 64), st.integers(-3, -1))
shapes = st.lists(big_ints, max_size=4).map(tuple)
descrs = st.sampled_from(["<f8", "<f4", "|u1", ">i4", "|b1", "<c16", "|O", "<U3", "|S2", "<M8[s]", "|V8", "<f", "xx"])
payload_lens = st.one_of(st.just(-1), st.integers(0, 600))  # -1: exactly what the header claims, when small


def _payload(shape, descr, n: int) -> bytes:
    if n >= 0:
        return bytes(n)
    try:
        need = int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize
    except (TypeError, ValueError):
        need = 8
    return bytes(need if 0 <= need <= 4096 else 8)


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for pos, val in edits:
        out[pos % len(out)] = val
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 1 << 12), st.integers(0, 255)), min_size=1, max_size=6)


@st.composite
def npy_files(draw, rows=None) -> bytes:
    """A .npy file: half the time a valid (rows, k) numeric array, else any header; maybe mutated."""
    if draw(st.booleans()):
        descr = draw(st.sampled_from(["<f8", "<f4", "|u1", ">i4", "<i8"]))
        shape = (draw(st.integers(0, 3)) if rows is None else rows, draw(st.integers(1, 3)))
        payload_len = -1
    else:
        descr, shape, payload_len = draw(descrs), draw(shapes), draw(payload_lens)
    fortran = draw(st.sampled_from([False, True, 0, "no"]))
    blob = npy_bytes(descr, shape, fortran, _payload(shape, descr, payload_len), draw(st.sampled_from([1, 2, 3])))
    return _mutate(blob, draw(edits)) if draw(st.integers(0, 2)) == 0 else blob


@FUZZ
@given(npy_files())
@example(npy_bytes("<f8", (10 ** 12,), payload=bytes(16)))
def test_fuzz_npy_headers(worker, tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("npy") / "a.npy"
    path.write_bytes(blob)
    event(assert_bounded(worker.load("npy", path)))


@st.composite
def npz_files(draw) -> bytes:
    n = draw(st.integers(1, 3))
    y = npy_bytes("<i8", (n,), payload=np.arange(n, dtype="<i8").tobytes())
    blob = npz_bytes({"x.npy": draw(npy_files(rows=n)), "y.npy": y}, draw(st.booleans()))
    return _mutate(blob, draw(edits)) if draw(st.integers(0, 2)) == 0 else blob


@FUZZ
@given(npz_files())
@example(NPZ_1E12)
def test_fuzz_npz_members(worker, tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("npz") / "a.npz"
    path.write_bytes(blob)
    event(assert_bounded(worker.load("npz", path)))


@st.composite
def hostile_batches(draw) -> bytes:
    """A batch whose data is any array state, dtype state, protocol-5 buffer or ndarray call."""
    dtype_name = draw(st.sampled_from(["u1", "i8", "O", "f8", "V8", "U3", "M8", "garbage"]))
    state = draw(st.sampled_from([None, (3, "|", None, None, None, -1, -1, 0),
                                  (3, "<", None, None, None, 10 ** 9, 1, 0),
                                  (3, "|", (np.dtype("u1"), (3072,)), None, None, -1, -1, 0), (9,)]))
    dtype = Reduce(np.dtype, (dtype_name, False, True), state)
    shape = draw(st.one_of(shapes, st.tuples(big_ints, st.just(3072))))
    raw = draw(st.one_of(st.binary(max_size=64), st.lists(st.integers(0, 3), max_size=4),
                         st.builds(lambda k: bytes(3072 * k), st.integers(0, 2))))
    data = draw(st.sampled_from([
        array_state(shape, dtype, raw, draw(st.sampled_from([False, True, 2]))),
        Reduce(_frombuffer, (raw if isinstance(raw, bytes) else b"", dtype, shape, draw(st.sampled_from("CFX")))),
        Reduce(np.ndarray, (shape, np.dtype("u1"))),
    ]))
    labels = draw(st.one_of(st.lists(st.integers(-1, 12), max_size=3), st.just([[0] * 50] * 50), st.just(data)))
    return batch(data, labels, draw(st.sampled_from([2, 4, 5])))


@st.composite
def valid_batches(draw) -> bytes:
    k = draw(st.integers(0, 3))
    labels = draw(st.lists(st.integers(0, 9), min_size=k, max_size=k))
    return batch(np.full((k, 3072), 7, np.uint8), labels, draw(st.sampled_from([2, 3, 4, 5])))


@st.composite
def cifar_batches(draw) -> bytes:
    """Valid or hostile batches, maybe with a memo index bomb (protocol 2) or mutated bytes."""
    blob = draw(st.one_of(valid_batches(), hostile_batches()))
    if blob[1] == 2 and draw(st.integers(0, 3)) == 0:
        blob = with_memo_index(blob, draw(st.sampled_from([0, 1, 5, 1 << 20, 1 << 31])))
    return _mutate(blob, draw(edits)) if draw(st.integers(0, 3)) == 0 else blob


@FUZZ
@given(cifar_batches())
@example(NDARRAY_CALL)
@example(batch(array_state((300000, 3072), np.dtype("O"), []), [0]))
def test_fuzz_cifar_batch_pickles(worker, cifar_template, tmp_path_factory, blob):
    root = cifar_root(cifar_template, tmp_path_factory.mktemp("cifar"), blob)
    event(assert_bounded(worker.load("cifar", root)))


@FUZZ
@given(st.sampled_from([IDX_IMAGES, 2049, 0x0D03, 0]), st.tuples(big_ints, big_ints, big_ints), payload_lens,
       st.booleans())
@example(IDX_IMAGES, (60000, 65535, 65535), 16, False)
def test_fuzz_idx_headers(worker, tmp_path_factory, magic, dims, n, gz):
    dims = tuple(d % (1 << 32) for d in dims)
    blob = idx_bytes(dims, _payload(dims, "|u1", n), magic)
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    event(assert_bounded(worker.load("idx", path)))
