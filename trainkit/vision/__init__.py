"""torchvision's layout for the part of it trainkit provides.

``import trainkit.vision as torchvision`` gives PyTorch programs what they use of torchvision
without any download:

* ``datasets`` and ``transforms`` — trainkit's own (:mod:`trainkit.data.datasets`,
  :mod:`trainkit.data.transforms`), the same module objects under torchvision's names, so
  ``import trainkit.vision.transforms as transforms`` works as ``import torchvision.transforms``;
* ``models`` — the ResNet family with random initialisation (no pretrained weights);
* ``utils`` — ``make_grid`` and ``save_image``.
"""
import sys

from trainkit.data import datasets, transforms

from . import models, utils

# Aliases, not copies: one module object each, reachable by torchvision's dotted import paths.
sys.modules[__name__ + ".datasets"] = datasets
sys.modules[__name__ + ".transforms"] = transforms

__all__ = ["datasets", "models", "transforms", "utils"]
