"""Built-in data sets: CIFAR-10/100, MNIST, Fashion-MNIST, embedded sets, synthetic data, tabular files, text.

Each class declares its YAML name beside it (see :mod:`trainkit.registry`);
the imports below fill the data set registry in the order messages list them.
"""
from .cifar import CIFAR10, CIFAR100
from .mnist import MNIST, FashionMNIST
from .embedded import Diabetes, Digits, Iris
from .synthetic import LinearData
from .tabular import CSVDataset, NPZDataset
from .text import TextFiles, TinyShakespeare

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "Digits", "Iris", "Diabetes", "LinearData",
           "CSVDataset", "NPZDataset", "TinyShakespeare", "TextFiles"]
