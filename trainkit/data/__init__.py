"""Data: datasets, transforms, the DataLoader, downloads and the config entry point :func:`build`.

Public API (PyTorch names)::

    from trainkit.data import DataLoader, Dataset, TensorDataset, Subset, random_split
    from trainkit.data import transforms            # Compose, ToTensor, Normalize, RandomCrop, RandomHorizontalFlip
    from trainkit.data.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, Digits, Iris, Diabetes
    from trainkit.data import build, DataBundle, DATASETS, TRANSFORMS   # the config stage

``DATASETS`` and ``TRANSFORMS`` are the registries of what a config's ``data:``
section may name (each class declares itself; see :mod:`trainkit.registry`).
"""
from . import datasets, transforms
from .build import DATASETS, TRANSFORMS, DataBundle, build
from .dataset import ArrayDataset, Dataset, Subset, TensorDataset, random_split
from .download import default_root, download_file
from .loader import DataLoader
from .schema import DataSpec
from .split import holdout_split

__all__ = ["ArrayDataset", "DATASETS", "DataBundle", "DataLoader", "DataSpec", "Dataset", "Subset", "TRANSFORMS",
           "TensorDataset", "build", "datasets", "default_root", "download_file", "holdout_split", "random_split",
           "transforms"]
