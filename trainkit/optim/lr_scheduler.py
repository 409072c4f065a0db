"""Learning-rate schedulers, as ``torch.optim.lr_scheduler``.

Each scheduler changes ``group["lr"]`` of its optimizer's parameter groups on
every :meth:`LRScheduler.step`. The formulas (including PyTorch's *recursive*
forms, which update the current lr rather than recompute it from the epoch)
are PyTorch's, evaluated in the same order in Python floats, so the lr
sequence is the one PyTorch produces, value for value.

``state_dict()`` of every scheduler is JSON-able (numbers, strings, lists and
dicts), so a trainer can store it next to the weights without pickle.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from typing import Any

from trainkit.registry import Float, Int, ListOf, Nullable, Raw, scheduler

from .optimizer import Optimizer
from .scheduler_base import LRScheduler, _lrs, _per_group  # noqa: F401  (re-exported, as torch's)
from .specs import FRACTION, GAMMA

#: Interval indices (epochs or steps, as the YAML ``interval`` says), strictly increasing.
MILESTONES = ListOf(Int(lo=1), min_len=1, increasing=True)


def _check_sequential(args, path, ck) -> None:
    subs, ms = args["schedulers"], args["milestones"]
    if isinstance(subs, list) and len(subs) >= 2 and len(ms) != len(subs) - 1:
        ck.error(path + ("milestones",), f"expected {len(subs) - 1} milestone(s) for {len(subs)} schedulers, "
                                         f"found {len(ms)}")

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "ChainedScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "ConstantLR",
    "PolynomialLR",
    "CyclicLR",
    "CosineAnnealingWarmRestarts",
]


@scheduler("step", args={"step_size": Int(lo=1), "gamma": GAMMA},
           docs={"step_size": "period of decay, in intervals", "gamma": "multiplicative factor (> 0)"})
class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr, times gamma at multiples of step_size."""
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


@scheduler("multistep", args={"milestones": MILESTONES, "gamma": GAMMA},
           docs={"milestones": "increasing interval indices at which to decay", "gamma": "multiplicative factor"})
class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each epoch listed in ``milestones`` (repeats compound)."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr, times gamma**count at a milestone."""
        if self.last_epoch not in self.milestones:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """As the base, with milestones as a sorted list (JSON keys would turn ints into strings)."""
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore; milestones may be a list (ours) or a mapping (PyTorch's Counter)."""
        state = dict(state_dict)
        ms = state.get("milestones")
        if isinstance(ms, dict):
            state["milestones"] = Counter({int(k): int(v) for k, v in ms.items()})
        elif ms is not None:
            state["milestones"] = Counter(int(m) for m in ms)
        super().load_state_dict(state)


@scheduler("exponential", args={"gamma": GAMMA}, docs={"gamma": "factor per interval (> 0)"})
class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr times gamma (unchanged on the initial step)."""
        if self._is_initial:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma**self.last_epoch for base_lr in self.base_lrs]


@scheduler("cosine", args={"T_max": Nullable(Int(lo=1)), "eta_min": Float(lo=0)}, defaults={"T_max": None},
           run_length="T_max",
           docs={"T_max": "intervals in one half cosine; null: the whole run (train.epochs with interval "
                          "epoch, every optimizer step with interval step)", "eta_min": "minimum learning rate"})
class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial lr to ``eta_min`` over ``T_max`` epochs (SGDR without restarts).

    Uses PyTorch's recursive formula, so the sequence (and its continuation
    past ``T_max``, which rises again) equals PyTorch's step for step.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive cosine update of the current lr."""
        if self._is_initial:
            return _lrs(self.optimizer)
        if self._step_count == 1 and self.last_epoch > 0:
            return [
                self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
                for base_lr in self.base_lrs
            ]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [
                group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * self.last_epoch / self.T_max))
            / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
            * (group["lr"] - self.eta_min)
            + self.eta_min
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base_lr in self.base_lrs
        ]


@scheduler("linear", args={"start_factor": Float(0, 1, lo_open=True), "end_factor": FRACTION,
                           "total_iters": Int(lo=1)},
           docs={"start_factor": "factor at the start, in (0, 1]", "end_factor": "factor at the end, in [0, 1]",
                 "total_iters": "intervals to go from start to end"})
class LinearLR(LRScheduler):
    """Scale the lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs (warm-up)."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Recursive form: the current lr times the ratio of consecutive factors."""
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        return [
            group["lr"]
            * (
                1.0
                + (self.end_factor - self.start_factor)
                / (self.total_iters * self.start_factor + (self.last_epoch - 1) * (self.end_factor - self.start_factor))
            )
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            base_lr
            * (
                self.start_factor
                + (self.end_factor - self.start_factor) * min(self.total_iters, self.last_epoch) / self.total_iters
            )
            for base_lr in self.base_lrs
        ]


# OneCycleLR and ReduceLROnPlateau live in their own module (this one grew past 500 lines); they
# stay importable from here like torch.optim.lr_scheduler's. Both build on scheduler_base, so no
# module imports another's classes (no circle); imported here so that the YAML names are declared in
# the order the docs list them.
from .lr_schedule_adaptive import OneCycleLR, ReduceLROnPlateau  # noqa: E402


@scheduler("sequential", args={"schedulers": Raw("a list of >= 2 scheduler mappings"), "milestones": MILESTONES}, nested="schedulers",
           check=_check_sequential,
           docs={"schedulers": "the schedulers to chain (>= 2); not plateau or sequential, and without "
                               "an interval of their own",
                 "milestones": "interval indices where the next scheduler takes over (one fewer than "
                               "schedulers)"})
class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``.

    Typical use: ``LinearLR`` warm-up for a few epochs, then ``CosineAnnealingLR``.
    At a milestone the next scheduler restarts from its epoch 0 (closed form).
    """

    def __init__(self, optimizer: Optimizer, schedulers: list, milestones: list[int], last_epoch: int = -1) -> None:
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler.")
        for i, sched in enumerate(schedulers):
            if isinstance(sched, ReduceLROnPlateau):
                raise ValueError(
                    "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires additional "
                    f"kwargs to be specified when calling `step`, but got one at index {i} in the given "
                    "schedulers sequence."
                )
            if getattr(sched, "optimizer", None) is not optimizer:
                raise ValueError(
                    "SequentialLR expects all schedulers to belong to the same optimizer, but got scheduler "
                    f"{type(sched).__name__} at index {i} with another optimizer."
                )
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number "
                f"of milestone points, but got number of schedulers {len(schedulers)} and the number of "
                f"milestones to be equal to {len(milestones)}"
            )
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # Each sub-scheduler already stepped once when it was built: undo that,
        # and take the initial step only for the one active at epoch 0.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def _recursive_undo(self, sched=None) -> None:
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self._recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Advance one epoch, delegating to the scheduler active at that epoch."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """Own attributes plus each sub-scheduler's state under ``_schedulers``."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore own attributes and each sub-scheduler's state."""
        state = dict(state_dict)
        subs = state.pop("_schedulers")
        self.__dict__.update(state)
        for sched, sub in zip(self._schedulers, subs, strict=True):
            sched.load_state_dict(sub)


@scheduler("chained", args={"schedulers": Raw("a list of >= 2 scheduler mappings")}, nested="schedulers",
           docs={"schedulers": "schedulers stepped together (their factors compose); not plateau or sequential, "
                               "and without an interval of their own"})
class ChainedScheduler(LRScheduler):
    """Step several schedulers together: each :meth:`step` calls every scheduler's ``step()`` in order.

    Their effects compose, e.g. ``ChainedScheduler([ConstantLR(opt, factor=0.1, total_iters=2),
    ExponentialLR(opt, gamma=0.9)])``: a low lr for two epochs on top of an exponential decay.
    The schedulers must share one optimizer (``optimizer`` defaults to the first one's).
    """

    def __init__(self, schedulers, optimizer: Optimizer | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError(
                f"{type(self).__name__} expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer or schedulers[0].optimizer
        for i, sched in enumerate(schedulers):
            if not hasattr(sched, "optimizer"):
                raise TypeError(f"{type(self).__name__} at index {i} should have `optimizer` as its attribute.")
            if isinstance(sched, ReduceLROnPlateau):
                raise ValueError(
                    f"{type(self).__name__} does not support `ReduceLROnPlateau` scheduler as it requires "
                    "additional kwargs to be specified when calling `step`, but got one at index "
                    f"{i} in the given schedulers sequence."
                )
            if optimizer != sched.optimizer:
                raise ValueError(
                    f"{type(self).__name__} expects all schedulers to belong to the same optimizer, but got "
                    f"scheduler {type(sched).__name__} at index {i} has {sched.optimizer}, which is different "
                    f"from {type(optimizer).__name__}."
                )
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = _lrs(self._schedulers[-1].optimizer)

    def step(self) -> None:  # type: ignore[override]
        """Step every chained scheduler once, in order."""
        for sched in self._schedulers:
            sched.step()
        self._last_lr = _lrs(self._schedulers[-1].optimizer)

    def state_dict(self) -> dict[str, Any]:
        """Own attributes plus each chained scheduler's state under ``_schedulers``."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore own attributes and each chained scheduler's state."""
        state = dict(state_dict)
        subs = state.pop("_schedulers")
        self.__dict__.update(state)
        for sched, sub in zip(self._schedulers, subs, strict=True):
            sched.load_state_dict(sub)


# Schedulers in their own modules (this one would pass 500 lines); importable from here like
# torch.optim.lr_scheduler's. They import their base class from scheduler_base, so no circle.
from .lr_schedule_cyclic import CosineAnnealingWarmRestarts, CyclicLR  # noqa: E402
from .lr_schedule_factor import ConstantLR, LambdaLR, MultiplicativeLR, PolynomialLR  # noqa: E402
