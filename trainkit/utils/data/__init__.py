"""``trainkit.utils.data``: PyTorch's ``torch.utils.data`` names, implemented in :mod:`trainkit.data`.

``from trainkit.utils.data import DataLoader, TensorDataset, random_split`` and
the submodules ``dataset``, ``sampler``, ``dataloader`` work as with PyTorch.
"""
from trainkit.data.collate import default_collate, default_convert
from trainkit.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from trainkit.data.loader import DataLoader, get_worker_info
from trainkit.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from . import dataloader, dataset, sampler  # noqa: E402,F401

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "default_collate", "default_convert", "get_worker_info",
           "random_split"]
