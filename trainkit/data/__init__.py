"""Data: datasets, transforms, the DataLoader, downloads and the config entry point :func:`build`.

Public API (PyTorch names)::

    from trainkit.data import DataLoader, Dataset, TensorDataset, Subset, random_split, default_collate
    from trainkit.data import ConcatDataset, IterableDataset, RandomSampler, WeightedRandomSampler, BatchSampler
    from trainkit.data import transforms            # Compose, ToTensor, Normalize, Resize, RandomResizedCrop, ...
    from trainkit.data.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, KMNIST, EMNIST, SVHN, STL10
    from trainkit.data.datasets import ImageFolder, Digits, Iris, Diabetes
    from trainkit.data import build, DataBundle, DATASETS, TRANSFORMS   # the config stage

``DATASETS`` and ``TRANSFORMS`` are the registries of what a config's ``data:``
section may name (each class declares itself; see :mod:`trainkit.registry`).
"""
from . import datasets, transforms
from .build import DATASETS, TRANSFORMS, DataBundle, build
from .collate import default_collate, default_convert
from .dataset import (
    ArrayDataset, ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
    random_split,
)
from .download import default_root, download_file
from .loader import DataLoader, get_worker_info
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)
from .schema import DataSpec
from .split import holdout_split

__all__ = ["ArrayDataset", "BatchSampler", "ChainDataset", "ConcatDataset", "DATASETS", "DataBundle", "DataLoader",
           "DataSpec", "Dataset", "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset",
           "Subset", "SubsetRandomSampler", "TRANSFORMS", "TensorDataset", "WeightedRandomSampler", "build", "datasets",
           "default_collate", "default_convert", "default_root", "download_file", "get_worker_info", "holdout_split",
           "random_split", "transforms"]
