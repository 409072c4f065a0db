"""Kuzushiji-MNIST: MNIST's format and reader, with KMNIST's files, checksums and classes.

The files are looked for in ``root/KMNIST/raw``, ``root/KMNIST`` and ``root``
(see :mod:`.mnist`); with ``download=True`` they come from ROIS-CODH's site,
MD5-checked.
"""
from __future__ import annotations

from trainkit.registry import dataset

from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC
from .mnist import MNIST

__all__ = ["KMNIST"]


@dataset("kmnist", shape=(1, 28, 28), task="classification", args={"root": ROOT}, defaults={"download": True},
         docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="Kuzushiji-MNIST: 28x28 grey cursive Japanese characters, 10 classes (60,000 / 10,000); download or root")
class KMNIST(MNIST):
    """Kuzushiji-MNIST: 28x28 grey images of 10 cursive hiragana characters; same files and arguments as MNIST."""

    folder = "KMNIST"
    display = "Kuzushiji-MNIST"
    mirrors = ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
    resources = {
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    }
    class_names = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
