"""Built-in data sets: CIFAR-10/100, MNIST, Fashion-MNIST, KMNIST, EMNIST, SVHN, STL-10, embedded sets,
synthetic data, tabular files, image folders, text.

Each class declares its YAML name beside it (see :mod:`trainkit.registry`);
the imports below fill the data set registry in the order messages list them.
"""
from .cifar import CIFAR10, CIFAR100
from .mnist import MNIST, FashionMNIST
from .embedded import Diabetes, Digits, Iris
from .synthetic import LinearData
from .tabular import CSVDataset, NPZDataset
from .kmnist import KMNIST
from .emnist import EMNIST
from .svhn import SVHN
from .stl10 import STL10
from .image_folder import ImageFolder
from .text import TextFiles, TinyShakespeare

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "KMNIST", "EMNIST", "SVHN", "STL10", "Digits", "Iris",
           "Diabetes", "LinearData", "CSVDataset", "NPZDataset", "ImageFolder",
           "TinyShakespeare", "TextFiles"]
