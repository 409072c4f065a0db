"""Utilities mirrored from PyTorch's layout (``trainkit.utils.data``)."""
