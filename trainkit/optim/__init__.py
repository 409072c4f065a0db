"""Optimizers and learning-rate schedulers with PyTorch's names, defaults and update rules.

``import trainkit.optim as optim`` then ``optim.SGD(model.parameters(), lr=0.01,
momentum=0.9)`` and ``optim.lr_scheduler.StepLR(optimizer, 10)``, exactly as
with ``torch.optim``.
"""
from . import lr_scheduler
from .adagrad import Adadelta, Adagrad
from .adam import Adam, AdamW
from .adam_variants import Adamax, NAdam, RAdam
from .lbfgs import LBFGS
from .lr_schedule_cyclic import CosineAnnealingWarmRestarts, CyclicLR
from .lr_schedule_factor import ConstantLR, LambdaLR, MultiplicativeLR, PolynomialLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD


def _attach_schedulers() -> None:
    # The schedulers split into their own modules import their base class from
    # lr_scheduler, so lr_scheduler cannot import them back without an import
    # cycle; the package puts them into its namespace instead. Importing
    # trainkit.optim.lr_scheduler always runs this file first, so
    # ``from trainkit.optim.lr_scheduler import CyclicLR`` works as with torch.
    for cls in (LambdaLR, MultiplicativeLR, ConstantLR, PolynomialLR, CyclicLR, CosineAnnealingWarmRestarts):
        setattr(lr_scheduler, cls.__name__, cls)
        if cls.__name__ not in lr_scheduler.__all__:
            lr_scheduler.__all__.append(cls.__name__)


_attach_schedulers()

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS",
    "lr_scheduler",
]
