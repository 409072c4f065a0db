"""Built-in data sets: CIFAR-10/100, MNIST, Fashion-MNIST, embedded sets, tabular files, synthetic data."""
from .cifar import CIFAR10, CIFAR100
from .embedded import Diabetes, Digits, Iris
from .mnist import MNIST, FashionMNIST
from .synthetic import LinearData
from .tabular import CSVDataset, NPZDataset

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "Digits", "Iris", "Diabetes", "LinearData",
           "CSVDataset", "NPZDataset"]
