"""Transforms, torchvision's names: ``from trainkit.data import transforms`` stands in for ``torchvision.transforms``.

* :mod:`.base`: ``Compose``, ``ToTensor``, ``Normalize``, ``Lambda``, ``RandomCrop``,
  ``RandomHorizontalFlip`` and the ``Transform`` protocol (one sample or a whole batch);
* :mod:`.photo`: ``Resize``, ``CenterCrop``, ``RandomResizedCrop``, ``ColorJitter``,
  ``RandomRotation`` for real photos, vectorised per batch (:mod:`.resample` holds their arithmetic).

Each class a config can name declares itself with ``@transform(...)`` beside it.
"""
from .base import (Compose, Lambda, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor, Transform,
                   dataset_statistics)
from .photo import CenterCrop, ColorJitter, InterpolationMode, RandomResizedCrop, RandomRotation, Resize

__all__ = ["Transform", "Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Lambda",
           "Resize", "CenterCrop", "RandomResizedCrop", "ColorJitter", "RandomRotation", "InterpolationMode",
           "dataset_statistics"]
