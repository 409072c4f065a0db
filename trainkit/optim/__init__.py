"""Optimizers and learning-rate schedulers with PyTorch's names, defaults and update rules.

``import trainkit.optim as optim`` then ``optim.SGD(model.parameters(), lr=0.01,
momentum=0.9)`` and ``optim.lr_scheduler.StepLR(optimizer, 10)``, exactly as
with ``torch.optim``.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
