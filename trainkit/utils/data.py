"""PyTorch-style alias: ``from trainkit.utils.data import DataLoader, Dataset, Subset, TensorDataset``."""
from trainkit.data.dataset import Dataset, Subset, TensorDataset, random_split
from trainkit.data.loader import DataLoader

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "random_split"]
