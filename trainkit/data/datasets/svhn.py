"""SVHN: 32x32 colour photos of house-number digits, from the official ``.mat`` files.

The files ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat``
(MATLAB level 5, each holding ``X`` uint8 (32, 32, 3, N) and ``y`` (N, 1) with
labels 1-10, 10 meaning the digit 0) are looked for in ``root`` (where
torchvision keeps them) and ``root/SVHN``; with ``download=True`` a missing one
is fetched from Stanford and MD5-checked. They are read with scipy's
``loadmat`` after trainkit has checked every size the file claims
(:mod:`trainkit.data.matfile`); scipy is an optional dependency
(``pip install 'trainkit[svhn]'``).

As in torchvision, images become (N, 3, 32, 32) (``X.transpose(3, 2, 0, 1)``)
and label 10 becomes 0; ``ds.data`` is that uint8 array and ``ds.labels`` the
int64 labels.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import Bool, Field, dataset

from ..dataset import ArrayDataset
from ..download import default_root, download_file
from ..matfile import read_mat
from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC

__all__ = ["SVHN"]

_URL = "http://ufldl.stanford.edu/housenumbers/"
_FILES = {
    "train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", 73_257),
    "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", 26_032),
    "extra": ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7", 531_131),
}
_SLACK = 1.05  # a rebuilt file may hold a few more images than the official one; not 10x more


@dataset("svhn", shape=(3, 32, 32), task="classification",
         fields={"root": Field(ROOT, None, ROOT_DOC), "download": Field(Bool(), True, DOWNLOAD_DOC),
                 "extra": Field(Bool(), False, "add the 531,131 'extra' images to the training part")},
         doc="SVHN: 32x32 colour house-number digits, 10 classes (73,257 / 26,032, + 531,131 extra); needs scipy")
class SVHN(ArrayDataset):
    """Street View House Numbers (see the module docstring for the files).

    Args:
        root: data folder (default: ``$TRAINKIT_DATA`` or ``~/.cache/trainkit/datasets``).
        split: ``train``, ``test`` or ``extra``.
        transform: applied to images (uint8 (3, 32, 32) per item, (N, 3, 32, 32) per batch).
        target_transform: applied to each ``int`` label of ``ds[i]``.
        download: fetch the split's file (MD5-checked) into ``root`` when it is missing.
    """

    class_names = [str(i) for i in range(10)]
    url_base = _URL
    files = _FILES

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        if split not in self.files:
            raise ValueError(f"SVHN: split must be one of {', '.join(self.files)}, got {split!r}")
        self.root = default_root(root)
        self.split = split
        name, md5, count = self.files[split]
        path = self._find(name, md5, download)
        most = int(count * _SLACK)
        arrays = read_mat(path, {"X": 32 * 32 * 3 * most, "y": 8 * most})
        x, y = arrays["X"], arrays["y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise DataError(f"{path}: 'X' is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
        if y.dtype.kind not in "iuf" or y.size != x.shape[3] or y.ndim > 2:
            raise DataError(f"{path}: 'y' is {y.dtype} {y.shape}, expected ({x.shape[3]}, 1) labels")
        y = y.reshape(-1)
        if y.size and (y.min() < 0 or y.max() > 10 or np.any(y != np.round(y))):
            raise DataError(f"{path}: labels must be integers 1-10 (10 for the digit 0)")
        labels = y.astype(np.int64) % 10  # label 10 is the digit 0, as torchvision maps it
        data = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
        super().__init__(data, labels, transform=transform, classes=self.class_names,
                         target_transform=target_transform)

    @property
    def labels(self) -> np.ndarray:
        """All labels, int64 (N,) (torchvision's attribute name)."""
        return self._targets

    def _find(self, name: str, md5: str, download: bool) -> Path:
        for folder in (self.root, self.root / "SVHN"):
            if (folder / name).exists():
                return folder / name
        if download:
            return download_file(self.url_base + name, self.root / name, md5, max_bytes=1600 << 20)
        raise DataError(f"SVHN file {name} not found in {self.root} or {self.root / 'SVHN'}. Set download: true "
                        f"(data.download in a config), or place {name} from {self.url_base}{name} (MD5 {md5}) in "
                        f"{self.root}")

    @classmethod
    def from_config(cls, args) -> tuple:
        """train (with extra when asked) and test."""
        kw = {"root": args["root"], "download": args["download"]}
        train = cls(split="train", **kw)
        if args["extra"]:
            extra = cls(split="extra", **kw)
            train = ArrayDataset(np.concatenate([train.input_array, extra.input_array]),
                                 np.concatenate([train.target_array, extra.target_array]),
                                 classes=cls.class_names)
        return train, cls(split="test", **kw)
