"""Real file formats (CIFAR python/binary, IDX, gzip) and hostile files, all generated tiny in the test."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from trainkit.data.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST
from trainkit.data.readers import load_pickle
from trainkit.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    # Nothing in these tests may touch the user's ~/.cache.
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "default-root"))


# -- builders of tiny files in the real formats ------------------------------------------

def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _py2_style_batch(data: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> bytes:
    # The official batches are Python 2 pickles with byte-string keys; protocol 2
    # with bytes keys is what Python 3 reads back from them.
    return pickle.dumps({b"batch_label": b"x", label_key: labels, b"data": data}, protocol=2)


def _cifar10_members(n_per_batch: int = 4) -> dict[str, bytes]:
    members = {}
    for i in range(1, 6):
        labels = [(i + j) % 10 for j in range(n_per_batch)]
        members[f"cifar-10-batches-py/data_batch_{i}"] = _py2_style_batch(_images(n_per_batch, i), labels)
    members["cifar-10-batches-py/test_batch"] = _py2_style_batch(_images(3, 99), [7, 8, 9])
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}, protocol=2)
    return members


def _write_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", extra=None) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info, data in (extra or []):
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _write_folder(root: Path, members: dict[str, bytes]) -> None:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


# -- CIFAR ------------------------------------------------------------------------------

@pytest.fixture(params=["isal", "zlib"])
def gzip_backend(request, monkeypatch):
    """Archives are read through ISA-L's igzip when it is installed, else stdlib zlib: test both."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        import sys
        monkeypatch.setitem(sys.modules, "isal", None)  # makes `from isal import igzip` fail
    return request.param


def test_cifar10_python_archive_read_in_place(tmp_path, gzip_backend):
    members = _cifar10_members()
    _write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    train = CIFAR10(tmp_path, train=True)
    test = CIFAR10(tmp_path, train=False)
    assert len(train) == 20 and len(test) == 3
    assert train.input_array.dtype == np.uint8 and train.input_array.shape == (20, 3, 32, 32)
    assert train.classes == CIFAR10_NAMES
    # Rows are CHW planes: the first 1024 bytes of a row are the red plane.
    assert np.array_equal(train.input_array[0].reshape(-1), _images(4, 1)[0])
    assert train.target_array.dtype == np.int64 and list(test.target_array) == [7, 8, 9]
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing extracted to disk
    assert np.array_equal(CIFAR10(tmp_path / "cifar-10-python.tar.gz").input_array, train.input_array)  # root = the archive


def test_cifar10_python_folder_and_root_pointing_at_it(tmp_path):
    _write_folder(tmp_path, _cifar10_members())
    a = CIFAR10(tmp_path, train=True)
    b = CIFAR10(tmp_path / "cifar-10-batches-py", train=True)
    assert np.array_equal(a.input_array, b.input_array) and len(a) == 20


def test_cifar10_binary_archive_and_folder(tmp_path):
    members = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        labels = np.array([i % 10, (i + 3) % 10], dtype=np.uint8)
        rows = np.concatenate([labels[:, None], _images(2, i)], axis=1)
        members[f"cifar-10-batches-bin/{name}"] = rows.tobytes()
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR10_NAMES) + "\n").encode()
    _write_tar(tmp_path / "cifar-10-binary.tar.gz", members)
    train = CIFAR10(tmp_path, train=True)
    assert len(train) == 10 and train.classes == CIFAR10_NAMES
    assert list(train.target_array[:2]) == [0, 3]
    assert np.array_equal(train.input_array[1].reshape(-1), _images(2, 0)[1])
    folder = tmp_path / "f"
    _write_folder(folder, members)
    assert np.array_equal(CIFAR10(folder, train=False).input_array, CIFAR10(tmp_path, train=False).input_array)


def test_cifar100_python_and_binary(tmp_path):
    fine = [f"c{i}" for i in range(100)]
    members = {
        "cifar-100-python/train": _py2_style_batch(_images(5, 1), [0, 99, 5, 6, 7], b"fine_labels"),
        "cifar-100-python/test": _py2_style_batch(_images(2, 2), [1, 2], b"fine_labels"),
        "cifar-100-python/meta": pickle.dumps({b"fine_label_names": [n.encode() for n in fine]}, protocol=2),
    }
    _write_tar(tmp_path / "cifar-100-python.tar.gz", members)
    ds = CIFAR100(tmp_path)
    assert ds.num_classes == 100 and list(ds.target_array) == [0, 99, 5, 6, 7]
    rows = np.concatenate([np.array([[3, 42]], dtype=np.uint8), _images(1, 3)], axis=1)  # coarse, fine
    binroot = tmp_path / "bin"
    _write_folder(binroot, {"cifar-100-binary/train.bin": rows.tobytes(), "cifar-100-binary/test.bin": rows.tobytes()})
    assert list(CIFAR100(binroot).target_array) == [42]  # the fine label


def test_cifar_missing_names_the_file_to_place(tmp_path):
    with pytest.raises(DataError) as err:
        CIFAR10(tmp_path / "nothing")
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "nothing") in msg and "download" in msg


def test_hostile_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    members = _cifar10_members()
    members["cifar-10-batches-py/data_batch_3"] = pickle.dumps({b"data": Evil(), b"labels": [1]}, protocol=2)
    _write_folder(tmp_path, members)
    with pytest.raises(DataError, match="data_batch_3.*(refused|unsafe)"):
        CIFAR10(tmp_path)
    assert not marker.exists()
    # The same payload in any pickle protocol, and other callables, are refused too.
    for proto in (0, 2, 4, 5):
        with pytest.raises(DataError, match="refused"):
            load_pickle(pickle.dumps(Evil(), protocol=proto), "evil")
    with pytest.raises(DataError, match="refused"):
        load_pickle(pickle.dumps(eval, protocol=2), "builtin")
    with pytest.raises(DataError, match="refused"):
        load_pickle(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x04\x00\x00\x00zlibq\x01\x86R.", "codec")
    assert not marker.exists()


def test_object_arrays_and_garbage_pickles_are_refused():
    with pytest.raises(DataError, match="object arrays"):
        load_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), "obj")
    for blob in (b"", b"\x80\x02garbage", os.urandom(200)):
        with pytest.raises(DataError):
            load_pickle(blob, "junk")


def test_cifar_labels_out_of_range_and_wrong_shapes(tmp_path):
    members = _cifar10_members()
    members["cifar-10-batches-py/data_batch_2"] = _py2_style_batch(_images(4, 2), [0, 1, 2, 10])
    _write_folder(tmp_path / "a", members)
    with pytest.raises(DataError, match="label 10 out of range"):
        CIFAR10(tmp_path / "a")
    members = _cifar10_members()
    members["cifar-10-batches-py/data_batch_2"] = _py2_style_batch(np.zeros((4, 100), np.uint8), [0, 1, 2, 3])
    _write_folder(tmp_path / "b", members)
    with pytest.raises(DataError, match="data_batch_2.*expected uint8"):
        CIFAR10(tmp_path / "b")
    members = _cifar10_members()
    members["cifar-10-batches-py/data_batch_2"] = _py2_style_batch(_images(4, 2), [0, 1])
    _write_folder(tmp_path / "c", members)
    with pytest.raises(DataError, match="4 images but 2 labels"):
        CIFAR10(tmp_path / "c")


def test_truncated_archive(tmp_path):
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", _cifar10_members())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        CIFAR10(tmp_path)


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device"])
def test_hostile_tar_members_refused(tmp_path, kind):
    info = tarfile.TarInfo({"traversal": "../../x", "absolute": "/etc/x"}.get(kind, "cifar-10-batches-py/evil"))
    data = b"boom"
    info.size = len(data)
    if kind == "symlink":
        info.type, info.linkname, info.size, data = tarfile.SYMTYPE, "/etc/passwd", 0, None
    elif kind == "hardlink":
        info.type, info.linkname, info.size, data = tarfile.LNKTYPE, "cifar-10-batches-py/test_batch", 0, None
    elif kind == "device":
        info.type, info.size, data = tarfile.CHRTYPE, 0, None
    _write_tar(tmp_path / "cifar-10-python.tar.gz", _cifar10_members(), extra=[(info, data)])
    with pytest.raises(DataError, match="refused member"):
        CIFAR10(tmp_path)
    assert not (tmp_path.parent / "x").exists()


def test_oversized_member_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "max_member", 1000)
    _write_tar(tmp_path / "cifar-10-python.tar.gz", _cifar10_members())
    with pytest.raises(DataError, match="more than the 1000 its format allows"):
        CIFAR10(tmp_path)


# -- IDX / MNIST ------------------------------------------------------------------------------

def _mnist_files(folder: Path, n: int = 5, gz: bool = True, images=None, labels=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = (np.arange(n) % 10).astype(np.uint8) if labels is None else labels
    for prefix in ("train", "t10k"):
        for stem, blob in ((f"{prefix}-images-idx3-ubyte", _idx(images, 2051)),
                           (f"{prefix}-labels-idx1-ubyte", _idx(labels, 2049))):
            if gz:
                (folder / (stem + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (folder / stem).write_bytes(blob)


def test_mnist_gz_and_plain_layouts(tmp_path):
    _mnist_files(tmp_path / "MNIST" / "raw", gz=True)
    ds = MNIST(tmp_path, train=True)
    assert ds.input_array.shape == (5, 1, 28, 28) and ds.input_array.dtype == np.uint8
    assert list(ds.target_array) == [0, 1, 2, 3, 4] and ds.target_array.dtype == np.int64
    _mnist_files(tmp_path / "plain" / "FashionMNIST", gz=False)
    fm = FashionMNIST(tmp_path / "plain", train=False)
    assert len(fm) == 5 and fm.classes[9] == "Ankle boot"


def test_idx_bad_magic_and_size_mismatch(tmp_path):
    _mnist_files(tmp_path / "a")
    (tmp_path / "a" / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx(np.zeros((5, 28, 28), np.uint8), 2049)))
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        MNIST(tmp_path / "a")
    _mnist_files(tmp_path / "b")
    blob = _idx(np.zeros((5, 28, 28), np.uint8), 2051)
    (tmp_path / "b" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob[:-10]))
    with pytest.raises(DataError, match="header says.*shorter"):
        MNIST(tmp_path / "b")
    (tmp_path / "b" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob + b"extra"))
    with pytest.raises(DataError, match="longer"):
        MNIST(tmp_path / "b")
    _mnist_files(tmp_path / "c", labels=np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match="5 images but.*4 labels"):
        MNIST(tmp_path / "c")
    _mnist_files(tmp_path / "d", images=np.zeros((5, 20, 20), np.uint8))
    with pytest.raises(DataError, match="dimensions"):
        MNIST(tmp_path / "d")
    _mnist_files(tmp_path / "e", labels=np.array([0, 1, 2, 3, 12], np.uint8))
    with pytest.raises(DataError, match="label 12 out of range"):
        MNIST(tmp_path / "e")


def test_gzip_bomb_stops_at_format_size(tmp_path):
    # A valid header for 10 images followed by ~200 MB of zeros: compresses to
    # ~200 KB. Reading must stop right after the 10 images the header announces.
    folder = tmp_path / "MNIST"
    _mnist_files(folder)
    header = struct.pack(">IIII", 2051, 10, 28, 28)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [comp.compress(header)]
    zeros = bytes(1 << 20)
    for _ in range(200):
        chunks.append(comp.compress(zeros))
    chunks.append(comp.flush())
    bomb = b"".join(chunks)
    assert len(bomb) < 1 << 20
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    with pytest.raises(DataError, match="longer"):
        MNIST(tmp_path)


def test_corrupt_gzip_and_missing_mnist(tmp_path):
    _mnist_files(tmp_path / "MNIST")
    (tmp_path / "MNIST" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="t10k-labels"):
        MNIST(tmp_path, train=False)
    with pytest.raises(DataError) as err:
        MNIST(tmp_path / "none")
    assert "train-images-idx3-ubyte.gz" in str(err.value) and "MNIST" in str(err.value)


def test_decoded_copy_of_big_archives_is_used_and_damage_falls_back(tmp_path, monkeypatch):
    from trainkit.data.datasets import cifar

    monkeypatch.setattr(cifar, "_DECODED_MIN_BYTES", 0)  # treat the tiny archive as big
    _write_tar(tmp_path / "cifar-10-python.tar.gz", _cifar10_members())
    first = CIFAR10(tmp_path)
    copies = list((tmp_path / "default-root" / ".decoded").iterdir())
    assert len(copies) == 1 and (copies[0] / "classes.txt").is_file()
    cifar._CACHE.clear()

    def no_archive(self, path):
        raise AssertionError("the archive should not be read again")

    monkeypatch.setattr(CIFAR10, "_read_py_archive", no_archive)
    second = CIFAR10(tmp_path)
    assert np.array_equal(first.input_array, second.input_array) and second.classes == CIFAR10_NAMES
    monkeypatch.undo()
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "default-root"))
    monkeypatch.setattr(cifar, "_DECODED_MIN_BYTES", 0)
    cifar._CACHE.clear()
    (copies[0] / "train_x.npy").write_bytes(b"\x93NUMPY garbage")
    third = CIFAR10(tmp_path)  # damaged copy: read from the archive instead, and rewritten
    assert np.array_equal(first.input_array, third.input_array)
    assert np.array_equal(np.load(copies[0] / "train_x.npy"), first.input_array)


def _python2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch exactly as Python 2 wrote the official files: SHORT_BINSTRING/BINSTRING, numpy.core names."""
    def string(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b

    rows, cols = data.shape
    return (b"\x80\x02}q\x00(" + string(b"data")
            + b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85" + string(b"b") + b"\x87R"
            + b"(K\x01M" + struct.pack("<H", rows) + b"M" + struct.pack("<H", cols) + b"\x86cnumpy\ndtype\n"
            + string(b"u1") + b"K\x00K\x01\x87R(K\x03" + string(b"|")
            + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + string(data.tobytes()) + b"tb"
            + string(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu.")


def test_python2_pickled_batches_like_the_official_files(tmp_path):
    members = _cifar10_members()
    images = _images(3, 7)
    members["cifar-10-batches-py/data_batch_4"] = _python2_pickle(images, [4, 5, 6])
    _write_folder(tmp_path, members)
    ds = CIFAR10(tmp_path)
    assert len(ds) == 19 and list(ds.target_array[12:15]) == [4, 5, 6]
    assert np.array_equal(ds.input_array[12:15].reshape(3, -1), images)
