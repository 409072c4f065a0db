"""Utilities mirrored from PyTorch's layout: ``trainkit.utils.data`` (datasets, samplers, DataLoader)."""
from . import data  # noqa: F401  (``trainkit.utils.data`` is an attribute, as ``torch.utils.data`` is)

__all__ = ["data"]
