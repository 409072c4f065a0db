"""Schedulers that scale the learning rate by a factor: ``LambdaLR``, ``MultiplicativeLR``,
``ConstantLR`` and ``PolynomialLR``, as in ``torch.optim.lr_scheduler``.

They build on :class:`trainkit.optim.lr_scheduler.LRScheduler` and are
reachable as ``trainkit.optim.lr_scheduler.<Name>`` like PyTorch's (the
``trainkit.optim`` package attaches them there). Formulas and evaluation
order are PyTorch's, so lr sequences agree value for value.
"""
from __future__ import annotations

import types
from typing import Any, Callable

from .scheduler_base import LRScheduler, _lrs
from .optimizer import Optimizer
from trainkit.registry import Float, Int, Nullable, Str, scheduler

from .specs import FRACTION, GAMMA

__all__ = ["LambdaLR", "MultiplicativeLR", "ConstantLR", "PolynomialLR"]


def _lambdas(optimizer: Optimizer, lr_lambda) -> list:
    """One function per parameter group: a single one is shared, a list must match the groups."""
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * len(optimizer.param_groups)
    if len(lr_lambda) != len(optimizer.param_groups):
        raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
    return list(lr_lambda)


class _LambdaState:
    """``state_dict`` handling shared by the schedulers driven by user functions.

    As PyTorch, plain functions and lambdas are not saved (``None`` in their
    place); a callable *object* is saved as a copy of its ``__dict__`` and
    restored into the object the scheduler holds.
    """

    lr_lambdas: list

    def state_dict(self) -> dict[str, Any]:
        """Attributes except the optimizer; ``lr_lambdas`` as described above."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else fn.__dict__.copy() for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes; saved callable-object state goes back into this scheduler's objects."""
        state = dict(state_dict)  # the caller's dict stays as it was
        saved = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        self.__dict__.update(state)
        for fn, fn_state in zip(self.lr_lambdas, saved):
            if fn_state is not None:
                fn.__dict__.update(fn_state)


class LambdaLR(_LambdaState, LRScheduler):
    """Set each group's lr to its initial lr times ``lr_lambda(epoch)``.

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda: a function of the epoch index returning a factor, or a list
            with one such function per parameter group.
        last_epoch: index of the last epoch (-1: start fresh).

    Example: warm-up over 5 epochs with ``LambdaLR(opt, lambda e: min(1.0, (e + 1) / 5))``.
    Functions are not saved by :meth:`state_dict` (see :class:`_LambdaState`);
    rebuild the scheduler with the same functions before loading.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Closed form: ``base_lr * lr_lambda(last_epoch)``."""
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaState, LRScheduler):
    """Multiply each group's current lr by ``lr_lambda(epoch)`` at every step (not at construction).

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda: a function of the epoch index returning a factor, or a list
            with one such function per parameter group.
        last_epoch: index of the last epoch (-1: start fresh).
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr times ``lr_lambda(last_epoch)``."""
        if self._is_initial:
            return _lrs(self.optimizer)
        return [
            group["lr"] * fn(self.last_epoch)
            for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups, strict=True)
        ]


@scheduler("constant", args={"factor": Float(0, 1, lo_open=True), "total_iters": Int(lo=1)},
           docs={"factor": "the lr factor until total_iters, in (0, 1]", "total_iters": "intervals at the low lr"})
class ConstantLR(LRScheduler):
    """Multiply the lr by ``factor`` for the first ``total_iters`` epochs, then restore it.

    Args:
        optimizer: the wrapped optimizer.
        factor: the multiplier, in [0, 1] (default 1/3). With 0 the lr is 0
            during the first epochs and cannot be restored (PyTorch divides by
            the factor); use a small positive factor instead.
        total_iters: number of epochs the factor applies (default 5).
        last_epoch: index of the last epoch (-1: start fresh).
    """

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: times ``factor`` at epoch 0, divided by it at ``total_iters``."""
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _lrs(self.optimizer)
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
            for base_lr in self.base_lrs
        ]


@scheduler("polynomial", args={"total_iters": Int(lo=1), "power": Float(lo=0, lo_open=True)},
           docs={"total_iters": "intervals until the lr reaches 0", "power": "the polynomial's degree (> 0)"})
class PolynomialLR(LRScheduler):
    """Decay the lr as ``base_lr * (1 - epoch / total_iters) ** power``, reaching 0 at ``total_iters``.

    Args:
        optimizer: the wrapped optimizer.
        total_iters: number of epochs of the decay (default 5); the lr stays 0 after.
        power: the polynomial's power (default 1.0: linear decay).
        last_epoch: index of the last epoch (-1: start fresh).
    """

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr times the ratio of consecutive decay factors."""
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        decay_factor = (
            (1.0 - self.last_epoch / self.total_iters) / (1.0 - (self.last_epoch - 1) / self.total_iters)
        ) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
            for base_lr in self.base_lrs
        ]
