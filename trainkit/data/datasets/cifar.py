"""CIFAR-10 and CIFAR-100, from the official python or binary distributions.

Under ``root`` the first of these that exists is read:

1. the extracted python folder (``cifar-10-batches-py/`` or ``cifar-100-python/``),
   or ``root`` itself when it is that folder;
2. the python archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``),
   read in place, never extracted;
3. the extracted binary folder (``cifar-10-batches-bin/`` / ``cifar-100-binary/``);
4. the binary archive (``cifar-10-binary.tar.gz`` / ``cifar-100-binary.tar.gz``).

``root`` may also be one of the two archives itself.

With ``download=True`` and none present, the python archive is downloaded from
the Toronto site and its MD5 checked. Local files are not checksummed (a
rebuilt archive is fine); they are validated structurally instead.

Images are kept as uint8 (N, 3, 32, 32): CIFAR-10 train is 150 MB this way.
As in torchvision, ``ds.data`` shows them as a uint8 (N, 32, 32, 3) array (a
view) and ``ds.targets`` is a list of ints.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import dataset

from ..dataset import ArrayDataset, as_array
from ..download import default_root, download_file
from ..readers import iter_tar, load_pickle, read_npy, read_regular
from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC

__all__ = ["CIFAR10", "CIFAR100"]

_PIXELS = 3 * 32 * 32
_MAX_NAME = 256  # characters of one class name
_CACHE: dict[tuple, dict] = {}  # the last archive read, so train and test cost one pass
# Inflating the 163 MB CIFAR-10 archive costs ~2 s; archives above this size get a
# decoded copy (plain .npy files, loaded without pickle) under <data root>/.decoded.
_DECODED_MIN_BYTES = 16 << 20


def _str_keys(d: object, source: str) -> dict:
    if not isinstance(d, dict):
        raise DataError(f"{source}: expected a dict, found {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _names(values: object, source: str) -> list[str]:
    if not isinstance(values, (list, tuple)):
        raise DataError(f"{source}: label names are not a list")
    if not all(isinstance(v, (bytes, str)) and len(v) <= _MAX_NAME for v in values):
        raise DataError(f"{source}: label names must be strings of at most {_MAX_NAME} characters")
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]


class _CIFAR(ArrayDataset):
    """Shared loader of both CIFAR variants (see the module docstring for the layouts)."""

    name = ""
    n_classes = 0
    py_folder = bin_folder = py_archive = bin_archive = ""
    py_md5 = ""
    url_base = "https://www.cs.toronto.edu/~kriz/"
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    meta_file = ""
    label_key = ""
    meta_key = ""
    bin_train: tuple[str, ...] = ()
    bin_test: tuple[str, ...] = ()
    bin_meta = ""
    label_bytes = 1
    max_member = 0

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        self.root = default_root(root)
        self.train = bool(train)
        loaded = self._load(download)
        data, labels = loaded["train" if self.train else "test"]
        super().__init__(data, labels, transform=transform, classes=loaded["classes"],
                         target_transform=target_transform)

    # torchvision's types and layout for the public attributes.
    @property
    def data(self) -> np.ndarray:
        """All images as uint8 (N, 32, 32, 3) (channels last, a view), as torchvision's ``CIFAR10.data``."""
        return self._inputs.transpose(0, 2, 3, 1)

    @data.setter
    def data(self, value) -> None:
        arr = as_array(value)
        if arr.ndim != 4 or arr.shape[1:] != (32, 32, 3):
            raise ValueError(f"{type(self).__name__}.data must be (N, 32, 32, 3) images, got shape {arr.shape}")
        self._inputs = np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.uint8)

    @property
    def targets(self) -> list[int]:
        """All labels as a list of ints, as torchvision's ``CIFAR10.targets`` (a new list each time)."""
        return self._targets.tolist()

    @targets.setter
    def targets(self, value) -> None:
        self._targets = np.asarray(as_array(value), dtype=np.int64)

    # -- locating ----------------------------------------------------------------
    def _load(self, download: bool) -> dict:
        root = self.root
        # Candidates are detected by existence, not is_file(): a FIFO or device where a data file
        # belongs is then refused by name when it is opened, instead of "not found".
        if root.exists() and not root.is_dir() and root.name in (self.py_archive, self.bin_archive):
            reader = self._read_py_archive if root.name == self.py_archive else self._read_bin_archive
            return self._cached(root, reader)
        py_dir = root / self.py_folder
        if not py_dir.is_dir() and root.name == self.py_folder:
            py_dir = root
        if (py_dir / self.meta_file).exists():
            return self._cached(py_dir, self._read_py_folder)
        if (root / self.py_archive).exists():
            return self._cached(root / self.py_archive, self._read_py_archive)
        if (root / self.bin_folder / self.bin_test[0]).exists():
            return self._cached(root / self.bin_folder, self._read_bin_folder)
        if (root / self.bin_archive).exists():
            return self._cached(root / self.bin_archive, self._read_bin_archive)
        if download:
            path = download_file(self.url_base + self.py_archive, root / self.py_archive, self.py_md5,
                                 max_bytes=400 << 20)
            return self._cached(path, self._read_py_archive)
        raise DataError(
            f"{self.name} not found under {root}: looked for {self.py_folder}/, {self.py_archive}, "
            f"{self.bin_folder}/ and {self.bin_archive}. Set download: true (data.download in a config), "
            f"or place {self.py_archive} from {self.url_base}{self.py_archive} (MD5 {self.py_md5}) in {root}"
        )

    def _cached(self, source: Path, reader: Callable[[Path], dict]) -> dict:
        files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
        key = (type(self).__name__, str(source.resolve()),
               tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
        if key not in _CACHE:
            decoded = self._decoded_path(source)
            result = self._read_decoded(decoded) if decoded is not None else None
            if result is None:
                result = reader(source)
                if decoded is not None:
                    if decoded.exists():  # damaged or stale: replace it
                        shutil.rmtree(decoded, ignore_errors=True)
                    self._write_decoded(decoded, result)
            _CACHE.clear()
            _CACHE[key] = result
        return _CACHE[key]

    # -- decoded copy of big archives -------------------------------------------------
    def _decoded_path(self, source: Path) -> Path | None:
        if os.environ.get("TRAINKIT_NO_DATA_CACHE") or not source.is_file():
            return None
        st = source.stat()
        if st.st_size < _DECODED_MIN_BYTES:
            return None
        tag = hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
        return default_root() / ".decoded" / f"{type(self).__name__.lower()}-{tag}"

    def _read_decoded(self, folder: Path) -> dict | None:
        """The decoded copy if it exists and is well-formed; None otherwise (then the archive is read)."""
        if not (folder / "classes.txt").is_file():
            return None
        try:
            out = {"classes": read_regular(folder / "classes.txt", 1 << 20).decode("utf-8").splitlines()}
            for split in ("train", "test"):
                # Plain .npy files, their headers checked against their sizes; no pickle allowed.
                x = read_npy(folder / f"{split}_x.npy")
                y = read_npy(folder / f"{split}_y.npy")
                ok = (x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (3, 32, 32)
                      and y.dtype == np.int64 and y.shape == (len(x),)
                      and (y.size == 0 or (y.min() >= 0 and y.max() < self.n_classes)))
                if not ok:
                    return None
                out[split] = (x, y)
            return out if len(out["classes"]) == self.n_classes else None
        except Exception:  # a damaged copy is simply rebuilt from the archive
            return None

    def _write_decoded(self, folder: Path, result: dict) -> None:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
            try:
                for split in ("train", "test"):
                    np.save(tmp / f"{split}_x.npy", result[split][0])
                    np.save(tmp / f"{split}_y.npy", result[split][1])
                # classes.txt last: its presence marks a complete copy.
                (tmp / "classes.txt").write_text("\n".join(result["classes"]) + "\n", "utf-8")
                os.replace(tmp, folder)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # no copy (read-only or full disk, or another process won the race): read the archive next time

    # -- python layout -------------------------------------------------------------
    def _parse_batch(self, raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
        d = _str_keys(load_pickle(raw, source), source)
        data, labels = d.get("data"), d.get(self.label_key)
        if not isinstance(data, np.ndarray) or labels is None:
            raise DataError(f"{source}: not a {self.name} batch (needs 'data' and '{self.label_key}')")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
            raise DataError(f"{source}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {_PIXELS})")
        # The count is checked before any conversion: a list can repeat one shared sub-list many
        # times in a few bytes, and np.asarray would expand it.
        if isinstance(labels, np.ndarray):
            ok = labels.ndim == 1 and labels.dtype.kind in "iu"
        else:
            ok = isinstance(labels, (list, tuple)) and all(type(v) is int for v in labels)
        if not ok:
            raise DataError(f"{source}: '{self.label_key}' is not a flat list of integers")
        if len(labels) != data.shape[0]:
            raise DataError(f"{source}: {data.shape[0]} images but {len(labels)} labels")
        try:
            labels = np.asarray(labels, dtype=np.int64)
        except OverflowError:
            raise DataError(f"{source}: '{self.label_key}' holds an integer beyond int64") from None
        return data, labels

    def _parse_meta(self, raw: bytes, source: str) -> list[str]:
        d = _str_keys(load_pickle(raw, source), source)
        if self.meta_key not in d:
            raise DataError(f"{source}: no '{self.meta_key}' in the meta file")
        values = d[self.meta_key]
        if isinstance(values, (list, tuple)) and len(values) != self.n_classes:
            raise DataError(f"{source}: {len(values)} class names, {self.name} has {self.n_classes}")
        return _names(values, source)

    def _read_py_folder(self, folder: Path) -> dict:
        def read(name: str) -> bytes:
            path = folder / name
            if not path.exists():
                raise DataError(f"{path}: missing (expected in a {self.name} python folder)")
            return read_regular(path, self.max_member, f"a {self.name} batch")

        parts = {name: self._parse_batch(read(name), str(folder / name))
                 for name in self.train_files + self.test_files}
        classes = self._parse_meta(read(self.meta_file), str(folder / self.meta_file))
        return self._assemble(parts, classes, str(folder))

    def _read_py_archive(self, path: Path) -> dict:
        wanted = {f"{self.py_folder}/{n}" for n in self.train_files + self.test_files}
        meta_name = f"{self.py_folder}/{self.meta_file}"
        parts, classes = {}, None

        def limit(name: str):
            return self.max_member if name in wanted else (1 << 20 if name == meta_name else None)

        for name, raw in iter_tar(path, limit):
            source = f"{path}:{name}"
            if name == meta_name:
                classes = self._parse_meta(raw, source)
            else:
                parts[name.split("/", 1)[1]] = self._parse_batch(raw, source)
        if classes is None:
            raise DataError(f"{path}: no {meta_name} in the archive (is it a {self.name} python archive?)")
        return self._assemble(parts, classes, str(path))

    # -- binary layout -------------------------------------------------------------
    def _parse_bin(self, raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
        record = self.label_bytes + _PIXELS
        if len(raw) == 0 or len(raw) % record:
            raise DataError(f"{source}: {len(raw)} bytes is not a whole number of {record}-byte records")
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
        # CIFAR-100 records are <coarse label><fine label><pixels>; we use the fine label.
        labels = rows[:, self.label_bytes - 1].astype(np.int64)
        return np.ascontiguousarray(rows[:, self.label_bytes:]), labels

    def _parse_bin_meta(self, raw: bytes) -> list[str]:
        return [ln.strip() for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]

    def _read_bin_folder(self, folder: Path) -> dict:
        parts = {}
        for name in self.bin_train + self.bin_test:
            path = folder / name
            if not path.exists():
                raise DataError(f"{path}: missing (expected in a {self.name} binary folder)")
            parts[name] = self._parse_bin(read_regular(path, self.max_member, f"a {self.name} batch"), str(path))
        meta = folder / self.bin_meta
        classes = self._parse_bin_meta(read_regular(meta, 1 << 20, "a class-name list")) if meta.exists() else None
        return self._assemble(parts, classes, str(folder), binary=True)

    def _read_bin_archive(self, path: Path) -> dict:
        prefix = self.bin_folder + "/"
        wanted = {prefix + n for n in self.bin_train + self.bin_test}
        parts, classes = {}, None

        def limit(name: str):
            return self.max_member if name in wanted else (1 << 20 if name == prefix + self.bin_meta else None)

        for name, raw in iter_tar(path, limit):
            if name in wanted:
                parts[name[len(prefix):]] = self._parse_bin(raw, f"{path}:{name}")
            else:
                classes = self._parse_bin_meta(raw)
        return self._assemble(parts, classes, str(path), binary=True)

    # -- checks common to all layouts -------------------------------------------------
    def _assemble(self, parts: dict, classes: list[str] | None, source: str, binary: bool = False) -> dict:
        train_names = self.bin_train if binary else self.train_files
        test_names = self.bin_test if binary else self.test_files
        missing = [n for n in train_names + test_names if n not in parts]
        if missing:
            raise DataError(f"{source}: missing {', '.join(missing)} (truncated or not a {self.name} archive?)")
        if classes is None:
            classes = [str(i) for i in range(self.n_classes)]
        if len(classes) != self.n_classes:
            raise DataError(f"{source}: {len(classes)} class names, {self.name} has {self.n_classes}")
        out: dict = {"classes": classes}
        for split, names in (("train", train_names), ("test", test_names)):
            data = np.concatenate([parts[n][0] for n in names]).reshape(-1, 3, 32, 32)
            labels = np.concatenate([parts[n][1] for n in names])
            if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
                bad = labels[(labels < 0) | (labels >= self.n_classes)][0]
                raise DataError(f"{source}: label {bad} out of range 0..{self.n_classes - 1}")
            out[split] = (data, labels)
        return out


@dataset("cifar10", shape=(3, 32, 32), task="classification", args={"root": ROOT}, defaults={"download": True},
         docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="CIFAR-10: 32x32 colour images, 10 classes (50,000 train / 10,000 test); download or root")
class CIFAR10(_CIFAR):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test).

    Args:
        root: folder holding the data (default: ``$TRAINKIT_DATA`` or ``~/.cache/trainkit/datasets``).
        train: the training set (True) or the test set (False).
        download: download the official python archive if nothing is found under ``root``.
        transform: applied to images (uint8 CHW per item, uint8 NCHW per batch).
    """

    name = "CIFAR-10"
    n_classes = 10
    py_folder, py_archive = "cifar-10-batches-py", "cifar-10-python.tar.gz"
    bin_folder, bin_archive = "cifar-10-batches-bin", "cifar-10-binary.tar.gz"
    py_md5 = "c58f30108f718f92721af3b95e74349a"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    meta_file, meta_key, label_key = "batches.meta", "label_names", "labels"
    bin_train = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    bin_test = ("test_batch.bin",)
    bin_meta = "batches.meta.txt"
    label_bytes = 1
    max_member = 100 << 20  # one batch: 31 MB official, 44 MB as protocol-2 unicode


@dataset("cifar100", shape=(3, 32, 32), task="classification", args={"root": ROOT}, defaults={"download": True},
         docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="CIFAR-100: 32x32 colour images, 100 classes (50,000 train / 10,000 test); download or root")
class CIFAR100(_CIFAR):
    """CIFAR-100: 60,000 32x32 colour images in 100 fine classes (50,000 train, 10,000 test).

    Same arguments as :class:`CIFAR10`; targets are the fine labels.
    """

    name = "CIFAR-100"
    n_classes = 100
    py_folder, py_archive = "cifar-100-python", "cifar-100-python.tar.gz"
    bin_folder, bin_archive = "cifar-100-binary", "cifar-100-binary.tar.gz"
    py_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_files, test_files = ("train",), ("test",)
    meta_file, meta_key, label_key = "meta", "fine_label_names", "fine_labels"
    bin_train, bin_test = ("train.bin",), ("test.bin",)
    bin_meta = "fine_label_names.txt"
    label_bytes = 2
    max_member = 400 << 20  # train: 155 MB official
