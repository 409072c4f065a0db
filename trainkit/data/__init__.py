"""Data: datasets, transforms, the DataLoader, downloads and the config entry point :func:`build`.

Public API (PyTorch names)::

    from trainkit.data import DataLoader, Dataset, TensorDataset, Subset, random_split
    from trainkit.data import transforms            # Compose, ToTensor, Normalize, RandomCrop, RandomHorizontalFlip
    from trainkit.data.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, Digits, Iris, Diabetes
    from trainkit.data import build, DataBundle, DATASETS, TRANSFORMS   # the config stage
"""
from . import datasets, transforms
from .build import COMMON_OPTIONS, DATASET_OPTIONS, DATASETS, DataBundle, build
from .dataset import ArrayDataset, Dataset, Subset, TensorDataset, random_split
from .download import default_root, download_file
from .loader import DataLoader
from .split import holdout_split
from .transforms import TRANSFORM_ARGS, TRANSFORMS

__all__ = ["ArrayDataset", "COMMON_OPTIONS", "DATASETS", "DATASET_OPTIONS", "DataBundle", "DataLoader", "Dataset",
           "Subset", "TRANSFORMS", "TRANSFORM_ARGS", "TensorDataset", "build", "datasets", "default_root",
           "download_file", "holdout_split", "random_split", "transforms"]
