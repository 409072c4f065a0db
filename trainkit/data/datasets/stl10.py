"""STL-10: 96x96 colour photos in 10 classes, from the official binary files.

The folder ``stl10_binary/`` under ``root`` (or ``root`` itself when it is
that folder) holds ``train_X.bin``/``train_y.bin`` (5,000 labelled images),
``test_X.bin``/``test_y.bin`` (8,000), ``unlabeled_X.bin`` (100,000),
``class_names.txt`` and ``fold_indices.txt``. An image file is raw uint8 bytes,
27,648 per image, each image's channels in column-major order; a label file is
one byte per image, 1-10. Without the folder, the needed members of
``stl10_binary.tar.gz`` are copied out of the archive into it (the 2.7 GB
``unlabeled_X.bin`` only when asked for); with ``download=True`` the archive
(2.6 GB) is fetched from Stanford and MD5-checked.

As torchvision's ``STL10``: ``split`` is ``train``, ``test``, ``unlabeled`` or
``train+unlabeled``; ``folds`` (0-9) keeps the 1,000 training images of one of
the ten predefined folds; images are (N, 3, 96, 96) (the stored column-major
images transposed), labels 0-9, and -1 for unlabeled images. ``ds.data`` is the
uint8 array and ``ds.labels`` the labels. The unlabeled images stay
memory-mapped from their file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import Bool, Field, Int, Nullable, dataset

from ..dataset import ArrayDataset
from ..download import default_root, download_file
from ..readers import extract_tar, file_size, open_regular, read_regular
from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC

__all__ = ["STL10"]

_FOLDER = "stl10_binary"
_ARCHIVE = "stl10_binary.tar.gz"
_URL = "http://ai.stanford.edu/~acoates/stl10/" + _ARCHIVE
_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
_PIXELS = 3 * 96 * 96
_COUNTS = {"train": 5_000, "test": 8_000, "unlabeled": 100_000}
_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
SPLITS = ("train", "train+unlabeled", "unlabeled", "test")


@dataset("stl10", shape=(3, 96, 96), task="classification",
         fields={"root": Field(ROOT, None, ROOT_DOC), "download": Field(Bool(), True, DOWNLOAD_DOC),
                 "folds": Field(Nullable(Int(0, 9)), None, "train on one of the 10 predefined folds of 1,000 "
                                                          "images; null: all 5,000")},
         doc="STL-10: 96x96 colour photos, 10 classes (5,000 / 8,000); download or root")
class STL10(ArrayDataset):
    """STL-10 (see the module docstring for the files, splits and folds).

    Args:
        root: data folder (default: ``$TRAINKIT_DATA`` or ``~/.cache/trainkit/datasets``).
        split: ``train``, ``test``, ``unlabeled`` or ``train+unlabeled``.
        folds: 0-9 keeps that predefined fold of the training images; None keeps them all.
        transform: applied to images (uint8 (3, 96, 96) per item, (N, 3, 96, 96) per batch).
        target_transform: applied to each ``int`` label of ``ds[i]``.
        download: fetch and unpack the archive (MD5-checked) when the files are missing.
    """

    url, md5 = _URL, _MD5

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", folds: int | None = None,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        if split not in SPLITS:
            raise ValueError(f"STL10: split must be one of {', '.join(SPLITS)}, got {split!r}")
        if folds is not None and (not isinstance(folds, int) or not 0 <= folds <= 9):
            raise ValueError(f"STL10: folds must be an integer 0-9 or None, got {folds!r}")
        self.root = default_root(root)
        self.split, self.folds = split, folds
        parts = ["unlabeled"] if split == "unlabeled" else (["train", "unlabeled"] if "+" in split else [split])
        folder = self._folder(parts, download)
        data, labels = [], []
        for part in parts:
            x = self._images(folder / f"{part}_X.bin", part)
            if part == "unlabeled":
                y = np.full(len(x), -1, dtype=np.int64)
            else:
                y = self._labels(folder / f"{part}_y.bin", len(x))
                if part == "train" and folds is not None:
                    pick = self._fold(folder / "fold_indices.txt", folds, len(x))
                    x, y = x[pick], y[pick]
                x = np.ascontiguousarray(x)
            data.append(x)
            labels.append(y)
        x = data[0] if len(data) == 1 else np.concatenate(data)
        classes = self._classes(folder / "class_names.txt")
        super().__init__(x, labels[0] if len(labels) == 1 else np.concatenate(labels), transform=transform,
                         classes=classes, target_transform=target_transform)

    @property
    def labels(self) -> np.ndarray:
        """All labels, int64 (N,), -1 for unlabeled images (torchvision's attribute name)."""
        return self._targets

    # -- files -----------------------------------------------------------------------------------------------
    def _folder(self, parts: list[str], download: bool) -> Path:
        folder = self.root if self.root.name == _FOLDER else self.root / _FOLDER
        needed = [f"{p}_X.bin" for p in parts] + [f"{p}_y.bin" for p in parts if p != "unlabeled"]
        if all((folder / n).exists() for n in needed):
            return folder
        archive = self.root / _ARCHIVE
        if not archive.exists():
            if not download:
                raise DataError(f"STL-10 not found: no {', '.join(n for n in needed if not (folder / n).exists())} "
                                f"in {folder} and no {archive}. Set download: true (data.download in a config), or "
                                f"place {_ARCHIVE} from {self.url} (MD5 {self.md5}) in {self.root}")
            archive = download_file(self.url, archive, self.md5, max_bytes=3 << 30)
        wanted = {f"{_FOLDER}/{n}": _COUNTS[n.split("_")[0]] * (_PIXELS if n.endswith("_X.bin") else 1)
                  for n in needed}
        wanted.update({f"{_FOLDER}/class_names.txt": 4096, f"{_FOLDER}/fold_indices.txt": 1 << 20})
        extract_tar(archive, wanted, folder, max_total=4 << 30)
        return folder

    @staticmethod
    def _images(path: Path, part: str) -> np.ndarray:
        """The images of a ``*_X.bin`` file as (N, 3, 96, 96), memory-mapped (a view, not a copy)."""
        with open_regular(path) as f:
            size = file_size(f)
            if size == 0 or size % _PIXELS:
                raise DataError(f"{path}: {size:,} bytes is not a whole number of {_PIXELS:,}-byte 96x96 images")
            n = size // _PIXELS
            if n > _COUNTS[part] * 2:
                raise DataError(f"{path}: {n:,} images, far more than STL-10's {_COUNTS[part]:,}")
            raw = np.memmap(f, dtype=np.uint8, mode="r", shape=(n, 3, 96, 96))
        # Stored column-major: torchvision's transpose(0, 1, 3, 2) makes rows rows.
        return np.asarray(raw).transpose(0, 1, 3, 2)

    @staticmethod
    def _labels(path: Path, n: int) -> np.ndarray:
        raw = read_regular(path, n, "an STL-10 label file")
        if len(raw) != n:
            raise DataError(f"{path}: {len(raw)} labels for {n} images")
        y = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
        if y.size and (y.min() < 1 or y.max() > 10):
            raise DataError(f"{path}: labels must be 1-10, found {int(y.min())}..{int(y.max())}")
        return y - 1

    @staticmethod
    def _fold(path: Path, fold: int, n: int) -> np.ndarray:
        lines = read_regular(path, 1 << 20, "a fold index file").decode("ascii", "replace").splitlines()
        if len(lines) <= fold:
            raise DataError(f"{path}: no line for fold {fold} ({len(lines)} lines)")
        try:
            idx = np.array([int(v) for v in lines[fold].split()], dtype=np.int64)
        except ValueError:
            raise DataError(f"{path}: line {fold + 1} is not a list of integers") from None
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise DataError(f"{path}: line {fold + 1}: indices must be in 0..{n - 1}")
        return idx

    @staticmethod
    def _classes(path: Path) -> list[str]:
        if not path.exists():
            return list(_CLASSES)
        names = [ln.strip() for ln in read_regular(path, 4096, "a class-name list").decode("utf-8", "replace")
                 .splitlines() if ln.strip()]
        if len(names) != 10:
            raise DataError(f"{path}: {len(names)} class names, STL-10 has 10")
        return names

    @classmethod
    def from_config(cls, args) -> tuple:
        """The (fold of the) training images and the test images."""
        kw = {"root": args["root"], "download": args["download"]}
        return cls(split="train", folds=args["folds"], **kw), cls(split="test", **kw)
