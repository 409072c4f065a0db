"""MNIST and Fashion-MNIST from their IDX files (plain or .gz).

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
``.gz``) are looked for in ``root/MNIST/raw`` (torchvision's layout),
``root/MNIST`` and ``root`` itself (``FashionMNIST`` for Fashion-MNIST). With
``download=True`` missing files are fetched from the mirrors PyTorch uses, the
first failing over to the next, and MD5-checked.

Images are kept as uint8 (N, 1, 28, 28) for batches; as in torchvision,
``ds.data`` is a uint8 Tensor (N, 28, 28) and ``ds.targets`` an int64 Tensor
(views of the same memory; assigning them replaces the samples).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import dataset

from ..dataset import ArrayDataset, as_array
from ..download import default_root, download_file
from ..readers import IDX_IMAGES, IDX_LABELS, read_idx
from ..specs import DOWNLOAD_DOC, ROOT, ROOT_DOC

__all__ = ["MNIST", "FashionMNIST"]

_MAX_ITEMS = 60_000


@dataset("mnist", shape=(1, 28, 28), task="classification", args={"root": ROOT}, defaults={"download": True},
         docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="MNIST: 28x28 grey handwritten digits, 10 classes (60,000 / 10,000); download or root")
class MNIST(ArrayDataset):
    """MNIST handwritten digits: 28x28 grey images, 10 classes (60,000 train, 10,000 test).

    torchvision's arguments, in its order:

    Args:
        root: data folder (default: ``$TRAINKIT_DATA`` or ``~/.cache/trainkit/datasets``).
        train: training set (True) or test set (False).
        transform: applied to images (uint8 (1, 28, 28) per item, (N, 1, 28, 28) per batch).
        target_transform: applied to each ``int`` label of ``ds[i]``.
        download: fetch missing files (MD5-checked) into ``root/<folder>/raw``.

    ``ds[i]`` is ``(image, label)``: the transformed image (a uint8 (1, 28, 28)
    array without a transform; a float Tensor after ``ToTensor``) and an int.
    """

    folder = "MNIST"
    display = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names = [str(i) for i in range(10)]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        self.root = default_root(root)
        self.train = bool(train)
        prefix = "train" if self.train else "t10k"
        images_path = self._find(f"{prefix}-images-idx3-ubyte", download)
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte", download)
        images = read_idx(images_path, IDX_IMAGES, _MAX_ITEMS, (28, 28))
        labels = read_idx(labels_path, IDX_LABELS, _MAX_ITEMS).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        if labels.size and labels.max() >= len(self.class_names):
            raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0..{len(self.class_names) - 1}")
        super().__init__(images.reshape(-1, 1, 28, 28), labels, transform=transform, classes=self.class_names,
                         target_transform=target_transform)

    # torchvision's types and layout for the public attributes.
    @property
    def data(self):
        """All images as a uint8 Tensor (N, 28, 28), as torchvision's ``MNIST.data``."""
        from trainkit.autograd.tensor import Tensor

        return Tensor(self._inputs.reshape(-1, 28, 28))

    @data.setter
    def data(self, value) -> None:
        arr = as_array(value)
        if arr.ndim != 3 or arr.shape[1:] != (28, 28):
            raise ValueError(f"{type(self).__name__}.data must be (N, 28, 28) images, got shape {arr.shape}")
        self._inputs = np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1, 1, 28, 28)

    @property
    def targets(self):
        """All labels as an int64 Tensor (N,), as torchvision's ``MNIST.targets``."""
        from trainkit.autograd.tensor import Tensor

        return Tensor(self._targets)

    @targets.setter
    def targets(self, value) -> None:
        self._targets = np.asarray(as_array(value), dtype=np.int64)

    def _candidates(self) -> list[Path]:
        return [self.root / self.folder / "raw", self.root / self.folder, self.root]

    def _find(self, stem: str, download: bool) -> Path:
        for folder in self._candidates():
            for name in (stem, stem + ".gz"):
                # exists(), not is_file(): a FIFO or device here is refused by name when read.
                if (folder / name).exists():
                    return folder / name
        gz = stem + ".gz"
        dest = self._candidates()[0] / gz
        if download:
            return download_file([m + gz for m in self.mirrors], dest, self.resources[gz], max_bytes=64 << 20)
        raise DataError(
            f"{self.display} file {stem}[.gz] not found under {self.root} (looked in "
            f"{', '.join(str(c) for c in self._candidates())}). Set download: true (data.download in a "
            f"config), or place {gz} from {self.mirrors[0]}{gz} (MD5 {self.resources[gz]}) at {dest}"
        )


@dataset("fashion_mnist", shape=(1, 28, 28), task="classification", args={"root": ROOT},
         defaults={"download": True}, docs={"root": ROOT_DOC, "download": DOWNLOAD_DOC},
         doc="Fashion-MNIST: 28x28 grey clothing images, 10 classes (60,000 / 10,000); download or root")
class FashionMNIST(MNIST):
    """Fashion-MNIST: 28x28 grey images of clothing, 10 classes; same files and arguments as MNIST."""

    folder = "FashionMNIST"
    display = "Fashion-MNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
