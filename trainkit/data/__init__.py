"""Data: datasets, transforms, the DataLoader, downloads and the config entry point :func:`build`.

Public API (PyTorch names)::

    from trainkit.data import DataLoader, Dataset, TensorDataset, Subset, random_split, default_collate
    from trainkit.data import ConcatDataset, IterableDataset, RandomSampler, WeightedRandomSampler, BatchSampler
    from trainkit.data import transforms            # Compose, ToTensor, Normalize, Lambda, RandomCrop, ...
    from trainkit.data.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, Digits, Iris, Diabetes
    from trainkit.data import build, DataBundle, DATASETS, TRANSFORMS   # the config stage
"""
from . import datasets, transforms
from .build import COMMON_OPTIONS, DATASET_OPTIONS, DATASETS, DataBundle, build
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
from .split import holdout_split
from .transforms import TRANSFORM_ARGS, TRANSFORMS

__all__ = ["ArrayDataset", "BatchSampler", "COMMON_OPTIONS", "ChainDataset", "ConcatDataset", "DATASETS",
           "DATASET_OPTIONS", "DataBundle", "DataLoader", "Dataset", "IterableDataset", "RandomSampler", "Sampler",
           "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler", "TRANSFORMS", "TRANSFORM_ARGS",
           "TensorDataset", "WeightedRandomSampler", "build", "datasets", "default_collate", "default_convert",
           "default_root", "download_file", "get_worker_info", "holdout_split", "random_split", "transforms"]
