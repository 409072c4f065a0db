"""``trainkit.utils.hooks.RemovableHandle``, where PyTorch code imports it from (``torch.utils.hooks``)."""
from trainkit.autograd.hooks import RemovableHandle

__all__ = ["RemovableHandle"]
