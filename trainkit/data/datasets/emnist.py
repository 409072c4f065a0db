"""EMNIST: handwritten letters and digits in MNIST's IDX format, in six splits.

The files are ``emnist-<split>-<train|test>-<images-idx3|labels-idx1>-ubyte``
(plain or ``.gz``), looked for in ``root/EMNIST/raw`` (where torchvision
extracts them), ``root/EMNIST/raw/gzip``, ``root/EMNIST``, ``root/gzip`` and
``root``; failing that, inside NIST's ``gzip.zip`` (``root/EMNIST/raw``,
``root/EMNIST`` or ``root``), read in place. With ``download=True`` that zip
(562 MB) is fetched from NIST and MD5-checked.

The splits and their classes are torchvision's: ``byclass`` (62 classes:
digits, upper and lower case), ``bymerge`` and ``balanced`` (47: the lower
case letters that look like their capitals merged into them), ``letters`` (26
letters, labels 1-26; class 0 is ``N/A``), ``digits`` and ``mnist`` (10).

**Orientation.** EMNIST's files store every image transposed (the writing runs
down the rows); torchvision returns them as stored, and so does trainkit by
default (``ds.data`` is what torchvision gives). ``upright=True`` transposes
them at load so that the characters stand upright; either way ``trainkit
predict`` brings an upright photo into the orientation the model was trained on.
"""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import REQUIRED, Str, dataset

from ..dataset import ArrayDataset
from ..download import default_root, download_file
from ..readers import IDX_IMAGES, IDX_LABELS, read_idx, read_idx_zip
from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC
from .mnist import MNIST

__all__ = ["EMNIST", "SPLITS"]

SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
_MERGED = set("cijklmopsuvwxyz")
_ALL = set(string.digits + string.ascii_letters)
CLASSES = {
    "byclass": sorted(_ALL),
    "bymerge": sorted(_ALL - _MERGED),
    "balanced": sorted(_ALL - _MERGED),
    "letters": ["N/A"] + list(string.ascii_lowercase),
    "digits": list(string.digits),
    "mnist": list(string.digits),
}
_MAX_ITEMS = 1_000_000  # byclass train: 697,932


@dataset("emnist", shape=(1, 28, 28), task="classification",
         args={"root": ROOT, "split": Str(SPLITS, "split")}, defaults={"download": True, "split": REQUIRED},
         docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="EMNIST: 28x28 grey handwritten letters and digits, 6 splits (10 to 62 classes); download or root")
class EMNIST(MNIST):
    """EMNIST handwritten characters (see the module docstring for the splits and the orientation).

    Args:
        root: data folder (default: ``$TRAINKIT_DATA`` or ``~/.cache/trainkit/datasets``).
        split: byclass, bymerge, balanced, letters, digits or mnist.
        train: training set (True) or test set (False).
        transform: applied to images (uint8 (1, 28, 28) per item, (N, 1, 28, 28) per batch).
        target_transform: applied to each ``int`` label of ``ds[i]``.
        download: fetch NIST's gzip.zip (MD5-checked) into ``root/EMNIST/raw`` when nothing is found.
        upright: transpose the stored images so that the characters stand upright.
    """

    folder = "EMNIST"
    display = "EMNIST"
    urls = ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
            "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip")
    zip_md5 = "58c8d27c78d21e728a6bc7b3cc06412e"

    def __init__(self, root: str | os.PathLike | None = None, split: str | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, *, upright: bool = False):
        if split not in SPLITS:
            raise ValueError(f"EMNIST: split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root = default_root(root)
        self.split = split
        self.train = bool(train)
        self.upright = bool(upright)
        self.class_names = CLASSES[split]
        prefix = f"emnist-{split}-{'train' if self.train else 'test'}"
        images = self._read(f"{prefix}-images-idx3-ubyte", IDX_IMAGES, (28, 28), download)
        labels = self._read(f"{prefix}-labels-idx1-ubyte", IDX_LABELS, None, download).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{self.root}: {prefix}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() >= len(self.class_names):
            raise DataError(f"{self.root}: {prefix}: label {int(labels.max())} out of range "
                            f"0..{len(self.class_names) - 1} of split {split!r}")
        if self.upright:
            images = np.ascontiguousarray(images.transpose(0, 2, 1))
        ArrayDataset.__init__(self, images.reshape(-1, 1, 28, 28), labels, transform=transform,
                              classes=self.class_names, target_transform=target_transform)

    @property
    def transposed(self) -> bool:
        """True while the images are as stored (transposed); predictions transpose upright inputs to match."""
        return not self.upright

    def _candidates(self) -> list[Path]:
        raw = self.root / self.folder / "raw"
        return [raw, raw / "gzip", self.root / self.folder, self.root / "gzip", self.root]

    def _zips(self) -> list[Path]:
        return [self.root / self.folder / "raw" / "gzip.zip", self.root / self.folder / "gzip.zip",
                self.root / "gzip.zip"]

    def _read(self, stem: str, magic: int, item_shape, download: bool) -> np.ndarray:
        for folder in self._candidates():
            for name in (stem, stem + ".gz"):
                if (folder / name).exists():
                    return read_idx(folder / name, magic, _MAX_ITEMS, item_shape)
        archive = next((z for z in self._zips() if z.exists()), None)
        if archive is None and download:
            archive = download_file(list(self.urls), self._zips()[0], self.zip_md5, max_bytes=600 << 20)
        if archive is None:
            raise DataError(
                f"EMNIST file {stem}[.gz] not found under {self.root} (looked in "
                f"{', '.join(str(c) for c in self._candidates())} and for gzip.zip). Set download: true "
                f"(data.download in a config), or place gzip.zip from {self.urls[0]} (MD5 {self.zip_md5}) at "
                f"{self._zips()[0]}")
        return read_idx_zip(archive, f"gzip/{stem}.gz", magic, _MAX_ITEMS, item_shape)
