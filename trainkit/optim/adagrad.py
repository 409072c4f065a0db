"""Adagrad and Adadelta, as ``torch.optim.Adagrad`` / ``torch.optim.Adadelta``.

Both scale each coordinate by an accumulated history of its squared gradients.
The arithmetic follows PyTorch's single-tensor (CPU) implementation operation
by operation, in the parameter's dtype.
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_engine_flags, l2_gradient
from trainkit.registry import Float, optimizer

from .specs import BETAS, EPS, FRACTION, LR, WEIGHT_DECAY

__all__ = ["Adagrad", "Adadelta"]


@optimizer("adagrad", args={"lr": LR, "lr_decay": Float(lo=0), "weight_decay": WEIGHT_DECAY,
                            "initial_accumulator_value": Float(lo=0), "eps": EPS})
class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), PyTorch's update rule.

    With ``t`` the step count and ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                     (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g
        p = p - clr * g / (sqrt(sum) + eps)

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: starting value of ``sum`` (default 0).
        eps: term added to the denominator for stability (default 1e-10).
        foreach: accepted for PyTorch compatibility; no effect (see
            :func:`~trainkit.optim.optimizer.check_engine_flags`).
        maximize: maximise the objective instead of minimising it.
        differentiable: only False is supported.
        fused: accepted for PyTorch compatibility; no effect.

    As in PyTorch, the state of every parameter (``step`` and ``sum``) is
    created by the constructor, so ``state_dict()`` lists all parameters from
    the start. Parameters added later with :meth:`add_param_group` start from
    the constructor's ``initial_accumulator_value``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, initial_accumulator_value)

    def _init_state(self, p, initial_accumulator_value: float) -> dict:
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = np.full_like(p._array, initial_accumulator_value)
        return state

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            lr_decay = float(group["lr_decay"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            for p, param, g in self._gradients(group):
                state = self.state[p]
                if len(state) == 0:
                    # PyTorch takes the constructor's value here, not the group's.
                    state = self._init_state(p, float(self.defaults["initial_accumulator_value"]))
                state["step"] += 1.0
                step = state["step"]
                if weight_decay != 0:
                    g = l2_gradient(g, param, weight_decay)
                clr = lr / (1 + (step - 1) * lr_decay)

                total = state["sum"]
                tmp = np.multiply(g, g, out=np.empty_like(param))
                np.add(total, tmp, out=total)
                std = np.sqrt(total, out=tmp)
                np.add(std, eps, out=std)
                # addcdiv order: (value * g) / std
                upd = np.multiply(g, -clr, out=np.empty_like(param))
                np.divide(upd, std, out=upd)
                np.add(param, upd, out=param)
        return loss


@optimizer("adadelta", args={"lr": LR, "rho": FRACTION, "eps": EPS, "weight_decay": WEIGHT_DECAY})
class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), PyTorch's update rule.

    With ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                         (if weight_decay != 0)
        v = rho * v + (1 - rho) * g * g                  (square_avg)
        delta = sqrt(u + eps) / sqrt(v + eps) * g        (u: acc_delta)
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: coefficient scaling delta before it is applied (default 1.0).
        rho: coefficient of the running averages, in [0, 1] (default 0.9).
        eps: term added inside the square roots for stability (default 1e-6).
        weight_decay: L2 penalty (default 0).
        foreach: accepted for PyTorch compatibility; no effect.
        capturable: accepted for PyTorch compatibility; no effect on CPU.
        maximize: maximise the objective instead of minimising it.
        differentiable: only False is supported.

    State per parameter: ``step``, ``square_avg`` and ``acc_delta``.
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            rho = float(group["rho"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            for p, param, g in self._gradients(group):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["square_avg"] = np.zeros_like(param)
                    state["acc_delta"] = np.zeros_like(param)
                state["step"] += 1.0
                if weight_decay != 0:
                    g = l2_gradient(g, param, weight_decay)
                square_avg, acc_delta = state["square_avg"], state["acc_delta"]

                np.multiply(square_avg, rho, out=square_avg)
                tmp = np.multiply(g, 1 - rho, out=np.empty_like(param))
                np.multiply(tmp, g, out=tmp)
                np.add(square_avg, tmp, out=square_avg)
                std = np.add(square_avg, eps, out=tmp)
                np.sqrt(std, out=std)
                delta = np.add(acc_delta, eps, out=np.empty_like(param))
                np.sqrt(delta, out=delta)
                np.divide(delta, std, out=delta)
                np.multiply(delta, g, out=delta)

                np.multiply(acc_delta, rho, out=acc_delta)
                sq = np.multiply(delta, 1 - rho, out=tmp)
                np.multiply(sq, delta, out=sq)
                np.add(acc_delta, sq, out=acc_delta)

                np.multiply(delta, -lr, out=delta)
                np.add(param, delta, out=param)
        return loss
