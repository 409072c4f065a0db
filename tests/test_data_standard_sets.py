"""KMNIST, EMNIST, SVHN and STL-10 read from small files written in their real formats.

IDX files (plain, .gz, and .gz inside NIST's zip), SVHN's .mat written by
scipy (plain and compressed), STL-10's column-major binaries (folder and
tar.gz); downloads against a local HTTP server with checksums; the YAML names.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from trainkit.data import build
from trainkit.data.datasets import EMNIST, KMNIST, STL10, SVHN
from trainkit.data.datasets.emnist import CLASSES
from trainkit.errors import DataError

sio = pytest.importorskip("scipy.io")


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "default-root"))


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


# ----------------------------------------------------------------------------- KMNIST
def test_kmnist_reads_idx_and_names_its_classes(tmp_path):
    folder = tmp_path / "KMNIST" / "raw"
    folder.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 2], np.uint8)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images, 2051)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels, 2049)))
    ds = KMNIST(tmp_path, train=False)
    assert ds.classes == ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
    np.testing.assert_array_equal(ds.data.numpy(), images)
    assert ds.targets.tolist() == labels.tolist() and ds[1][1] == 9
    bundle = build({"dataset": "kmnist", "root": str(tmp_path), "download": False})
    assert bundle.num_classes == 10 and bundle.input_shape == (1, 28, 28) and len(bundle.test) == 6


def test_kmnist_missing_names_the_file_and_its_checksum(tmp_path):
    with pytest.raises(DataError, match="Kuzushiji-MNIST file train-images-idx3-ubyte.*bdb82020997e1d708af4cf47b453dcf7"):
        KMNIST(tmp_path)


# ----------------------------------------------------------------------------- EMNIST
def _emnist_blobs(split: str, n: int, seed: int = 0) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    lo = 1 if split == "letters" else 0
    labels = rng.integers(lo, len(CLASSES[split]), n).astype(np.uint8)
    out = {}
    for part in ("train", "test"):
        out[f"emnist-{split}-{part}-images-idx3-ubyte"] = _idx(images, 2051)
        out[f"emnist-{split}-{part}-labels-idx1-ubyte"] = _idx(labels, 2049)
    return out, images, labels


def _emnist_zip(path: Path, splits=("balanced", "letters")) -> dict:
    truth = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in splits:
            blobs, images, labels = _emnist_blobs(split, 7, seed=len(split))
            truth[split] = (images, labels)
            for name, blob in blobs.items():
                zf.writestr(f"gzip/{name}.gz", gzip.compress(blob))
    return truth


def test_emnist_reads_the_nist_zip_in_place_with_torchvision_classes(tmp_path):
    truth = _emnist_zip(tmp_path / "EMNIST" / "raw" / "gzip.zip")
    ds = EMNIST(tmp_path, split="balanced")
    images, labels = truth["balanced"]
    assert len(ds.classes) == 47 and ds.classes[:11] == list("0123456789A") and ds.classes[-1] == "t"
    np.testing.assert_array_equal(ds.data.numpy(), images)  # as stored (transposed), as torchvision gives it
    assert ds.targets.tolist() == labels.tolist() and ds.transposed
    letters = EMNIST(tmp_path, split="letters", train=False)
    assert letters.classes[0] == "N/A" and len(letters.classes) == 27 and min(letters.targets.tolist()) >= 1
    assert not (tmp_path / "EMNIST" / "raw" / "gzip").exists()  # nothing was extracted


def test_emnist_upright_transposes_and_extracted_files_are_found(tmp_path):
    blobs, images, _ = _emnist_blobs("digits", 4)
    folder = tmp_path / "EMNIST" / "raw"
    folder.mkdir(parents=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)  # extracted and gunzipped, as torchvision leaves them
    stored = EMNIST(tmp_path, "digits")
    upright = EMNIST(tmp_path, "digits", upright=True)
    np.testing.assert_array_equal(upright.input_array[:, 0], images.transpose(0, 2, 1))
    np.testing.assert_array_equal(stored.input_array[:, 0], images)
    assert not upright.transposed and upright.classes == list("0123456789")


def test_emnist_split_is_required_and_checked(tmp_path):
    with pytest.raises(ValueError, match="split must be one of byclass"):
        EMNIST(tmp_path)
    from trainkit.errors import ConfigError
    with pytest.raises(ConfigError, match="missing required key 'split'"):
        build({"dataset": "emnist", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown split 'bylass'; did you mean 'byclass'"):
        build({"dataset": "emnist", "root": str(tmp_path), "split": "bylass"})


def test_emnist_labels_beyond_the_split_and_bad_zip_members_are_refused(tmp_path):
    blobs, _, _ = _emnist_blobs("digits", 3)
    blobs["emnist-digits-train-labels-idx1-ubyte"] = _idx(np.array([0, 1, 12], np.uint8), 2049)
    path = tmp_path / "gzip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in blobs.items():
            zf.writestr(f"gzip/{name}.gz", gzip.compress(blob))
    with pytest.raises(DataError, match="label 12 out of range 0..9 of split 'digits'"):
        EMNIST(tmp_path, "digits")
    with pytest.raises(DataError, match="no member gzip/emnist-mnist-train-images-idx3-ubyte.gz"):
        EMNIST(tmp_path, "mnist")
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a valid zip archive"):
        EMNIST(tmp_path, "digits")


# ----------------------------------------------------------------------------- SVHN
def _svhn_mat(path: Path, n: int, seed: int = 0, compress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1..10, 10 is the digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {"X": x, "y": y}, do_compression=compress)
    return x, y


@pytest.mark.parametrize("compress", [False, True])
def test_svhn_reads_scipy_mat_files_as_torchvision_lays_them_out(tmp_path, compress):
    x, y = _svhn_mat(tmp_path / "train_32x32.mat", 12, compress=compress)
    _svhn_mat(tmp_path / "SVHN" / "test_32x32.mat", 5, seed=1)
    ds = SVHN(tmp_path, split="train")
    np.testing.assert_array_equal(ds.data, np.transpose(x, (3, 2, 0, 1)))
    assert ds.labels.tolist() == [int(v) % 10 for v in y.ravel()] and ds.labels[9] == 0 and ds.labels.dtype == np.int64
    assert ds[3][0].shape == (3, 32, 32) and ds[3][1] == 4
    bundle = build({"dataset": "svhn", "root": str(tmp_path), "download": False})
    assert len(bundle.train) == 12 and len(bundle.test) == 5 and bundle.class_names == [str(i) for i in range(10)]


def test_svhn_extra_joins_the_training_part(tmp_path):
    _svhn_mat(tmp_path / "train_32x32.mat", 4)
    _svhn_mat(tmp_path / "extra_32x32.mat", 6, seed=2)
    _svhn_mat(tmp_path / "test_32x32.mat", 2)
    bundle = build({"dataset": "svhn", "root": str(tmp_path), "download": False, "extra": True})
    assert len(bundle.train) == 10


def test_svhn_mat_problems_are_named(tmp_path, monkeypatch):
    sio.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.float32), "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=r"'X' is float32 \(32, 32, 3, 2\), expected uint8"):
        SVHN(tmp_path)
    sio.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[3], [11]])})
    with pytest.raises(DataError, match="labels must be integers 1-10"):
        SVHN(tmp_path)
    sio.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataError, match="no variable 'y'"):
        SVHN(tmp_path)
    sio.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1)),
                                                "meta": np.array([[1, 2]], dtype=object)})
    with pytest.raises(DataError, match="variable 'meta' is not a plain numeric matrix"):
        SVHN(tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"\x89HDF\r\n" + b"\x00" * 200)
    with pytest.raises(DataError, match="not a MATLAB level-5 .mat file"):
        SVHN(tmp_path)
    with pytest.raises(DataError, match=r"SVHN file test_32x32.mat not found.*eb5a983be6a315427106f1b164d9cef3"):
        SVHN(tmp_path, split="test")


def _patch_u32(buf: bytearray, offset: int, value: int) -> None:
    buf[offset:offset + 4] = struct.pack("<I", value)


def test_svhn_mat_claiming_more_data_than_it_may_hold_is_refused_before_loadmat(tmp_path, monkeypatch):
    # A variable whose dimensions claim 10 million images: refused from its header, scipy never reads it.
    _svhn_mat(tmp_path / "train_32x32.mat", 2)
    raw = bytearray((tmp_path / "train_32x32.mat").read_bytes())
    dims_at = raw.index(struct.pack("<iiii", 32, 32, 3, 2))
    raw[dims_at:dims_at + 16] = struct.pack("<iiii", 32, 32, 3, 10_000_000)
    (tmp_path / "train_32x32.mat").write_bytes(bytes(raw))
    import trainkit.data.matfile as matfile

    monkeypatch.setattr(matfile, "scipy_io", lambda: pytest.fail("loadmat must not run on this file"))
    with pytest.raises(DataError, match="need 30,720,000,000 bytes, the file claims 6,144"):
        SVHN(tmp_path)
    # The data byte count raised to match: now over the budget of an SVHN training file.
    _svhn_mat(tmp_path / "train_32x32.mat", 2)
    raw = bytearray((tmp_path / "train_32x32.mat").read_bytes())
    dims_at = raw.index(struct.pack("<iiii", 32, 32, 3, 2))
    raw[dims_at:dims_at + 16] = struct.pack("<iiii", 32, 32, 3, 1_000_000)
    _patch_u32(raw, raw.index(struct.pack("<II", 2, 6144)) + 4, 3072 * 1_000_000)
    (tmp_path / "train_32x32.mat").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="past the end of the|more than the"):
        SVHN(tmp_path)


def test_missing_scipy_is_a_clear_message(tmp_path, monkeypatch):
    import builtins

    _svhn_mat(tmp_path / "train_32x32.mat", 2)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("No module named 'scipy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(DataError, match=r"needs scipy.*pip install 'trainkit\[svhn\]'"):
        SVHN(tmp_path)


# ----------------------------------------------------------------------------- STL-10
def _stl_members(n_train: int = 6, n_test: int = 4, seed: int = 0) -> tuple[dict[str, bytes], dict]:
    rng = np.random.default_rng(seed)
    truth, members = {}, {}
    for part, n in (("train", n_train), ("test", n_test), ("unlabeled", 3)):
        # The file stores each image column-major: (N, 3, W, H) in C order.
        stored = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        members[f"{part}_X.bin"] = stored.tobytes()
        truth[part] = stored.transpose(0, 1, 3, 2)
        if part != "unlabeled":
            y = (np.arange(n) % 10 + 1).astype(np.uint8)
            members[f"{part}_y.bin"] = y.tobytes()
            truth[part + "_y"] = y.astype(np.int64) - 1
    members["class_names.txt"] = "\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey",
                                            "ship", "truck"]).encode() + b"\n"
    members["fold_indices.txt"] = b"\n".join(b"%d %d" % (i % n_train, (i + 1) % n_train) for i in range(10)) + b"\n"
    return members, truth


def test_stl10_binary_folder_splits_and_folds(tmp_path):
    members, truth = _stl_members()
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for name, blob in members.items():
        (folder / name).write_bytes(blob)
    train = STL10(tmp_path, split="train")
    np.testing.assert_array_equal(train.data, truth["train"])
    assert train.labels.tolist() == truth["train_y"].tolist() and train.classes[7] == "monkey"
    fold = STL10(tmp_path, split="train", folds=3)
    np.testing.assert_array_equal(fold.data, truth["train"][[3, 4]])
    both = STL10(folder, split="train+unlabeled")  # root may be the folder itself
    assert len(both) == 9 and both.labels[-3:].tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(both.data[-3:], truth["unlabeled"])
    bundle = build({"dataset": "stl10", "root": str(tmp_path), "download": False, "folds": 0})
    assert len(bundle.train) == 2 and len(bundle.test) == 4 and bundle.input_shape == (3, 96, 96)


def test_stl10_from_the_archive_copies_only_what_it_needs(tmp_path):
    members, truth = _stl_members()
    with tarfile.open(tmp_path / "stl10_binary.tar.gz", "w:gz") as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    test = STL10(tmp_path, split="test")
    np.testing.assert_array_equal(test.data, truth["test"])
    assert sorted(p.name for p in (tmp_path / "stl10_binary").iterdir()) == [
        "class_names.txt", "fold_indices.txt", "test_X.bin", "test_y.bin"]


def test_stl10_malformed_files_are_named(tmp_path):
    members, _ = _stl_members()
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for name, blob in members.items():
        (folder / name).write_bytes(blob)
    (folder / "test_X.bin").write_bytes(members["test_X.bin"][:-5])
    with pytest.raises(DataError, match="test_X.bin: .* not a whole number of 27,648-byte 96x96 images"):
        STL10(tmp_path, split="test")
    (folder / "test_X.bin").write_bytes(members["test_X.bin"])
    (folder / "test_y.bin").write_bytes(b"\x01\x02\x0b\x01")
    with pytest.raises(DataError, match="labels must be 1-10"):
        STL10(tmp_path, split="test")
    (folder / "test_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match="2 labels for 4 images"):
        STL10(tmp_path, split="test")
    (folder / "fold_indices.txt").write_bytes(b"0 1 99\n")
    with pytest.raises(DataError, match="indices must be in 0..5"):
        STL10(tmp_path, split="train", folds=0)


# ----------------------------------------------------------------------------- downloads
class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_downloads_are_checksummed_and_land_where_they_are_read(server, tmp_path, monkeypatch):
    zbuf = tmp_path / "src" / "gzip.zip"
    _emnist_zip(zbuf, splits=("mnist",))
    _svhn_mat(tmp_path / "src" / "test_32x32.mat", 3)
    members, _ = _stl_members()
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    _Files.files = {"gzip.zip": zbuf.read_bytes(), "test_32x32.mat": (tmp_path / "src" / "test_32x32.mat").read_bytes(),
                    "stl10_binary.tar.gz": tbuf.getvalue()}
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in _Files.files.items()}

    monkeypatch.setattr(EMNIST, "urls", (f"{server}/missing/gzip.zip", f"{server}/gzip.zip"))
    monkeypatch.setattr(EMNIST, "zip_md5", "0" * 32)
    with pytest.raises(DataError, match="MD5 .* does not match the published 0000"):
        EMNIST(tmp_path / "dl", "mnist", download=True)
    monkeypatch.setattr(EMNIST, "zip_md5", md5["gzip.zip"])
    assert len(EMNIST(tmp_path / "dl", "mnist", download=True)) == 7
    assert (tmp_path / "dl" / "EMNIST" / "raw" / "gzip.zip").is_file()

    monkeypatch.setattr(SVHN, "url_base", f"{server}/")
    monkeypatch.setattr(SVHN, "files", {**SVHN.files, "test": ("test_32x32.mat", md5["test_32x32.mat"], 26_032)})
    assert len(SVHN(tmp_path / "dl", split="test", download=True)) == 3
    assert (tmp_path / "dl" / "test_32x32.mat").is_file()

    monkeypatch.setattr(STL10, "url", f"{server}/stl10_binary.tar.gz")
    monkeypatch.setattr(STL10, "md5", md5["stl10_binary.tar.gz"])
    assert len(STL10(tmp_path / "dl", split="train", download=True)) == 6
