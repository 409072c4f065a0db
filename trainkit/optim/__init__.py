"""Optimizers and learning-rate schedulers with PyTorch's names, defaults and update rules.

``import trainkit.optim as optim`` then ``optim.SGD(model.parameters(), lr=0.01,
momentum=0.9)`` and ``optim.lr_scheduler.StepLR(optimizer, 10)``, exactly as
with ``torch.optim``. Each class declares its YAML name beside it (see
:mod:`trainkit.registry`); importing this package fills the optimizer and
scheduler registries in the order of the imports below.
"""
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adagrad import Adadelta, Adagrad
from .adam_variants import Adamax, NAdam, RAdam
from .lbfgs import LBFGS
from .optimizer import Optimizer
from . import lr_scheduler


__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS",
    "lr_scheduler",
]
