"""Cyclical schedules: ``CyclicLR`` and ``CosineAnnealingWarmRestarts`` (SGDR), as in
``torch.optim.lr_scheduler``.

They build on :class:`trainkit.optim.lr_scheduler.LRScheduler` and are
reachable as ``trainkit.optim.lr_scheduler.<Name>`` like PyTorch's (the
``trainkit.optim`` package attaches them there). Formulas and evaluation
order are PyTorch's, so lr (and momentum) sequences agree value for value.
"""
from __future__ import annotations

import math
import types
from functools import partial
from typing import Any, Callable

from .scheduler_base import LRScheduler, _per_group
from .optimizer import Optimizer
from trainkit.registry import Float, Int, Nullable, Str, scheduler

from .specs import FRACTION, GAMMA

__all__ = ["CyclicLR", "CosineAnnealingWarmRestarts"]


def _check_cyclic(args, path, ck) -> None:
    """YAML checks CyclicLR's own constructor would make later: an ordered lr range."""
    lo, hi = args.get("base_lr"), args.get("max_lr")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and hi < lo:
        ck.error(path + ("max_lr",), f"must be at least base_lr ({lo}), found {hi}")


@scheduler("cyclic", interval="step", exclude=("scale_fn", "scale_mode"), check=_check_cyclic,
           args={"base_lr": Float(lo=0, lo_open=True), "max_lr": Float(lo=0, lo_open=True), "step_size_up": Int(lo=1),
                 "step_size_down": Nullable(Int(lo=1)), "mode": Str(("triangular", "triangular2", "exp_range"), "mode"),
                 "gamma": GAMMA, "base_momentum": FRACTION, "max_momentum": FRACTION},
           docs={"base_lr": "the lower lr of the cycle (it replaces optimizer.lr)", "max_lr": "the upper lr of the cycle",
                 "step_size_up": "steps rising from base_lr to max_lr", "step_size_down": "steps falling back; null: step_size_up",
                 "mode": "triangular, triangular2 (amplitude halves each cycle) or exp_range (times gamma**step)",
                 "gamma": "factor per step of exp_range", "cycle_momentum": "cycle momentum (or beta1) inversely to the lr",
                 "base_momentum": "momentum at max_lr", "max_momentum": "momentum at base_lr"})
class CyclicLR(LRScheduler):
    """Cycle the lr between ``base_lr`` and ``max_lr`` (Smith, "Cyclical Learning Rates"); step it per batch.

    A cycle rises for ``step_size_up`` steps and falls for ``step_size_down``.
    The amplitude ``max_lr - base_lr`` is scaled by ``scale_fn``, evaluated on
    the cycle number (``scale_mode="cycle"``) or on the step count
    (``"iterations"``). Built-in policies (used when ``scale_fn`` is None):

    * ``"triangular"``: no scaling;
    * ``"triangular2"``: the amplitude halves every cycle;
    * ``"exp_range"``: the amplitude is scaled by ``gamma ** step``.

    With ``cycle_momentum`` the optimizer's ``momentum`` (or ``betas[0]`` for
    the Adam family) cycles inversely, from ``max_momentum`` at ``base_lr``
    to ``base_momentum`` at ``max_lr``.

    Args:
        optimizer: the wrapped optimizer.
        base_lr: lower lr bound (a float, or one per parameter group); it
            replaces each group's lr at construction.
        max_lr: upper lr bound (float or one per group).
        step_size_up: steps in the rising half of a cycle (default 2000).
        step_size_down: steps in the falling half (default: ``step_size_up``).
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: the base of ``"exp_range"`` (default 1.0).
        scale_fn: a custom scaling policy ``x -> [0, 1]``; overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``, what ``scale_fn`` is
            evaluated on (the built-in modes set their own).
        cycle_momentum: cycle the momentum too (default True; the optimizer
            must have ``momentum`` or ``betas``).
        base_momentum: lower momentum bound (default 0.8; float or per group).
        max_momentum: upper momentum bound (default 0.9; float or per group).
        last_epoch: index of the last batch (-1: start fresh).

    As in PyTorch, :meth:`state_dict` does not save a ``scale_fn`` that is a
    function or lambda; a callable object's ``__dict__`` is saved.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr,
        max_lr,
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum=0.8,
        max_momentum=0.9,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)

        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size

        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for m_mom, b_mom, group in zip(self.max_momentums, self.base_momentums, optimizer.param_groups,
                                               strict=True):
                    self._set_momentum(group, m_mom)
                    group["max_momentum"] = m_mom
                    group["base_momentum"] = b_mom
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _init_scale_fn(self) -> None:
        # Not saved by state_dict (a bound function); rebuilt from mode/gamma on load.
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref = self._triangular_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref = self._triangular2_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self._scale_fn_ref = partial(self._exp_range_scale_fn, self.gamma)
            self.scale_mode = "iterations"

    def scale_fn(self, x) -> float:
        """The amplitude's scale at ``x`` (the cycle number or the step, per ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return self._scale_fn_ref(x)

    @staticmethod
    def _triangular_scale_fn(x: float) -> float:
        return 1.0

    @staticmethod
    def _triangular2_scale_fn(x: float) -> float:
        return 1 / (2.0 ** (x - 1))

    @staticmethod
    def _exp_range_scale_fn(gamma: float, x: float) -> float:
        return gamma**x

    def get_lr(self) -> list[float]:
        """Closed form at ``last_epoch`` (the batch index); sets the cycled momentum as a side effect."""
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        where = cycle if self.scale_mode == "cycle" else self.last_epoch

        lrs = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs, strict=True):
            base_height = (max_lr - base_lr) * scale_factor
            lrs.append(base_lr + base_height * self.scale_fn(where))

        if self.cycle_momentum:
            momentums = []
            for base_momentum, max_momentum in zip(self.base_momentums, self.max_momentums, strict=True):
                base_height = (max_momentum - base_momentum) * scale_factor
                momentums.append(max_momentum - base_height * self.scale_fn(where))
            for group, momentum in zip(self.optimizer.param_groups, momentums, strict=True):
                self._set_momentum(group, momentum)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        """Attributes except the optimizer and the built-in scale function; a custom
        ``scale_fn`` as None (function) or its ``__dict__`` (callable object)."""
        state = super().state_dict()
        state.pop("_scale_fn_ref", None)
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = None
        if fn is not None and not isinstance(fn, types.FunctionType):
            state["_scale_fn_custom"] = fn.__dict__.copy()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes; the scale function stays this scheduler's own (callable state restored into it)."""
        state = dict(state_dict)  # the caller's dict stays as it was
        fn_state = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if fn_state is not None:
            if self._scale_fn_custom is None:
                raise ValueError("the saved CyclicLR had a custom scale_fn; build this one with the same scale_fn")
            self._scale_fn_custom.__dict__.update(fn_state)
        self._init_scale_fn()


@scheduler("cosine_warm_restarts", args={"T_0": Int(lo=1), "T_mult": Int(lo=1), "eta_min": Float(lo=0)},
           docs={"T_0": "intervals until the first restart", "T_mult": "factor growing the period after each restart",
                 "eta_min": "minimum learning rate"})
class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter).

    The lr follows ``eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``
    where ``T_cur`` counts epochs since the last restart and ``T_i``, the
    length of the current period, starts at ``T_0`` and is multiplied by
    ``T_mult`` at each restart.

    :meth:`step` may be given a fractional epoch, to anneal within an epoch::

        for epoch in range(epochs):
            for i, batch in enumerate(loader):
                ...
                scheduler.step(epoch + i / len(loader))

    Args:
        optimizer: the wrapped optimizer.
        T_0: epochs until the first restart (a positive int).
        T_mult: factor by which the period grows after each restart (int >= 1, default 1).
        eta_min: minimum lr (default 0).
        last_epoch: index of the last epoch (-1: start fresh).
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The cosine of ``T_cur / T_i`` between ``eta_min`` and each base lr."""
        return [
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
            for base_lr in self.base_lrs
        ]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or go to ``epoch`` (which may be fractional; no deprecation warning here)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** (n)
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
