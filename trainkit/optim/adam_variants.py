"""Adamax, NAdam and RAdam, as ``torch.optim.Adamax`` / ``NAdam`` / ``RAdam``.

Variants of Adam (:mod:`trainkit.optim.adam`): Adamax replaces the second
moment by an infinity norm, NAdam adds Nesterov momentum, RAdam rectifies the
variance of the adaptive learning rate in the first steps. The arithmetic
follows PyTorch's single-tensor (CPU) implementation operation by operation,
in the parameter's dtype.
"""
from __future__ import annotations

import numpy as np

from .adam import lerp_
from .optimizer import Optimizer, check_engine_flags, l2_gradient
from trainkit.registry import Float, optimizer

from .specs import BETAS, EPS, FRACTION, LR, WEIGHT_DECAY

__all__ = ["Adamax", "NAdam", "RAdam"]


def _check_adam_args(lr, betas, eps, weight_decay) -> None:
    """PyTorch's checks (and messages) shared by the Adam family."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def _moments(state: dict, param: np.ndarray, second: str) -> tuple[np.ndarray, np.ndarray]:
    """The first-moment buffer and the buffer named ``second``, created (zeros) on the first step."""
    if len(state) == 0:
        state["step"] = 0.0
        state["exp_avg"] = np.zeros_like(param)
        state[second] = np.zeros_like(param)
    return state["exp_avg"], state[second]


def _update_second_moment(exp_avg_sq: np.ndarray, g: np.ndarray, beta2: float) -> None:
    """``v = beta2 * v + ((1 - beta2) * g) * g`` in place (PyTorch's ``mul_`` then ``addcmul_``)."""
    np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
    sq = np.multiply(g, 1 - beta2, out=np.empty_like(exp_avg_sq))
    np.multiply(sq, g, out=sq)
    np.add(exp_avg_sq, sq, out=exp_avg_sq)


@optimizer("adamax", args={"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY})
class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba, section 7), PyTorch's update rule.

    With ``t`` the step count and ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                   (if weight_decay != 0)
        m = lerp(m, g, 1 - beta1)                  (exp_avg)
        u = max(beta2 * u, |g| + eps)              (exp_inf)
        p = p - lr / (1 - beta1**t) * m / u

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running average and of the infinity norm
            (default (0.9, 0.999)), each in [0, 1).
        eps: term added to the norm for stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        foreach: accepted for PyTorch compatibility; no effect.
        maximize: maximise the objective instead of minimising it.
        differentiable: only False is supported.
        capturable: accepted for PyTorch compatibility; no effect on CPU.

    State per parameter: ``step``, ``exp_avg`` and ``exp_inf``.
    """

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            for p, param, g in self._gradients(group):
                state = self.state[p]
                exp_avg, exp_inf = _moments(state, param, "exp_inf")
                state["step"] += 1.0
                if weight_decay != 0:
                    g = l2_gradient(g, param, weight_decay)

                lerp_(exp_avg, g, 1 - beta1)
                np.multiply(exp_inf, beta2, out=exp_inf)
                tmp = np.abs(g, out=np.empty_like(param))
                np.add(tmp, eps, out=tmp)
                np.maximum(exp_inf, tmp, out=exp_inf)

                clr = lr / (1 - beta1 ** state["step"])
                # addcdiv order: (value * exp_avg) / exp_inf
                np.multiply(exp_avg, -clr, out=tmp)
                np.divide(tmp, exp_inf, out=tmp)
                np.add(param, tmp, out=param)
        return loss


def _scalar_dtype() -> np.dtype:
    """The dtype PyTorch gives its 0-d state scalars: float64 only when that is the default dtype."""
    from trainkit.autograd.dtypes import get_default_dtype

    return np.dtype(np.float64) if get_default_dtype() == np.float64 else np.dtype(np.float32)


@optimizer("nadam", args={"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY,
                          "momentum_decay": Float(lo=0)})
class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016): Adam with Nesterov momentum, PyTorch's update rule.

    With ``t`` the step count and ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p         (L2; or p *= 1 - lr * weight_decay when decoupled)
        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_product = mu_product * mu_t
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
              - lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running averages (default (0.9, 0.999)).
        eps: term added to the denominator for stability (default 1e-8).
        weight_decay: weight decay (default 0), an L2 penalty unless
            ``decoupled_weight_decay``.
        momentum_decay: the momentum schedule's decay psi (default 4e-3).
        decoupled_weight_decay: AdamW-style decay (NAdamW).
        foreach: accepted for PyTorch compatibility; no effect.
        maximize: maximise the objective instead of minimising it.
        capturable: accepted for PyTorch compatibility; no effect on CPU.
        differentiable: only False is supported.

    State per parameter: ``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``.
    ``mu_product`` is a 0-d array in PyTorch's scalar dtype (float32 unless the
    default dtype is float64), rounded there after every step as PyTorch does;
    it keeps that dtype through checkpoints, so a resumed run repeats it.
    """

    _scalar_buffers = frozenset({"mu_product"})

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            momentum_decay = float(group["momentum_decay"])
            decoupled = bool(group.get("decoupled_weight_decay", False))
            for p, param, g in self._gradients(group):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["mu_product"] = np.ones((), dtype=_scalar_dtype())
                    state["exp_avg"] = np.zeros_like(param)
                    state["exp_avg_sq"] = np.zeros_like(param)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1.0
                step = state["step"]
                bias_correction2 = 1 - beta2**step

                if weight_decay != 0:
                    if decoupled:
                        np.multiply(param, 1 - lr * weight_decay, out=param)
                    else:
                        g = l2_gradient(g, param, weight_decay)

                mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
                mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
                mu_product = state["mu_product"]
                # In the scalar's own dtype: mu is rounded to it first, as PyTorch's 0-d tensor does.
                np.multiply(mu_product, mu, out=mu_product)
                mu_product_value = float(mu_product)
                mu_product_next = mu_product_value * mu_next

                lerp_(exp_avg, g, 1 - beta1)
                _update_second_moment(exp_avg_sq, g, beta2)
                denom = np.divide(exp_avg_sq, bias_correction2, out=np.empty_like(param))
                np.sqrt(denom, out=denom)
                np.add(denom, eps, out=denom)

                # Two addcdiv's, each (value * t) / denom.
                upd = np.multiply(g, -lr * (1.0 - mu) / (1.0 - mu_product_value), out=np.empty_like(param))
                np.divide(upd, denom, out=upd)
                np.add(param, upd, out=param)
                np.multiply(exp_avg, (-lr * mu_next) / (1.0 - mu_product_next), out=upd)
                np.divide(upd, denom, out=upd)
                np.add(param, upd, out=param)
        return loss


@optimizer("radam", args={"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY})
class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2019): Adam with a rectified adaptive learning rate, PyTorch's update rule.

    With ``t`` the step count and ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p         (L2; or p *= 1 - lr * weight_decay when decoupled)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        if rho_t > 5:
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - lr * m_hat * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
        else:
            p = p - lr * m_hat

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages (default (0.9, 0.999)).
        eps: term added to the denominator for stability (default 1e-8).
        weight_decay: weight decay (default 0), an L2 penalty unless
            ``decoupled_weight_decay``.
        decoupled_weight_decay: AdamW-style decay (RAdamW).
        foreach: accepted for PyTorch compatibility; no effect.
        maximize: maximise the objective instead of minimising it.
        capturable: accepted for PyTorch compatibility; no effect on CPU.
        differentiable: only False is supported.

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _check_adam_args(lr, betas, eps, weight_decay)
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            decoupled = bool(group.get("decoupled_weight_decay", False))
            rho_inf = 2 / (1 - beta2) - 1
            for p, param, g in self._gradients(group):
                state = self.state[p]
                exp_avg, exp_avg_sq = _moments(state, param, "exp_avg_sq")
                state["step"] += 1.0
                step = state["step"]

                if weight_decay != 0:
                    if decoupled:
                        np.multiply(param, 1 - lr * weight_decay, out=param)
                    else:
                        g = l2_gradient(g, param, weight_decay)

                lerp_(exp_avg, g, 1 - beta1)
                _update_second_moment(exp_avg_sq, g, beta2)
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

                upd = np.divide(exp_avg, bias_correction1, out=np.empty_like(param))
                np.multiply(upd, lr, out=upd)
                if rho_t > 5.0:
                    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                    # PyTorch's scalar / tensor is tensor.reciprocal() * scalar.
                    adaptive = np.sqrt(exp_avg_sq, out=np.empty_like(param))
                    np.add(adaptive, eps, out=adaptive)
                    np.reciprocal(adaptive, out=adaptive)
                    np.multiply(adaptive, bias_correction2**0.5, out=adaptive)
                    np.multiply(upd, adaptive, out=upd)
                    np.multiply(upd, rect, out=upd)
                np.subtract(param, upd, out=param)
        return loss
