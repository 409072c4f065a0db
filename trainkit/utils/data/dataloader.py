"""``trainkit.utils.data.dataloader``: the DataLoader and collation under PyTorch's module path."""
from trainkit.data.collate import default_collate, default_convert  # noqa: F401
from trainkit.data.loader import DataLoader, get_worker_info  # noqa: F401

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]
