"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW``.

The arithmetic follows PyTorch's single-tensor (CPU) implementation operation
by operation, in the parameter's dtype, so that parameters agree with PyTorch
to float rounding after every step.
"""
from __future__ import annotations

import numpy as np

from trainkit.registry import optimizer

from .optimizer import Optimizer, check_engine_flags, l2_gradient
from .specs import BETAS, EPS, LR, WEIGHT_DECAY

__all__ = ["Adam", "AdamW"]

_ADAM_ARGS = {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY}


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """In-place ``start += weight * (end - start)``, PyTorch's ``lerp_`` formula.

    PyTorch switches to ``end - (end - start) * (1 - weight)`` for weights of
    0.5 and above (better rounding near ``end``); the weight is taken in the
    array's dtype as PyTorch does.
    """
    w = start.dtype.type(weight)
    diff = np.subtract(end, start, out=np.empty_like(start))  # out=: a 0-d result must stay an array
    if abs(w) < 0.5:
        np.multiply(diff, w, out=diff)
        np.add(start, diff, out=start)
    else:
        np.multiply(diff, start.dtype.type(1) - w, out=diff)
        np.subtract(end, diff, out=start)


@optimizer("adam", args=_ADAM_ARGS)
class Adam(Optimizer):
    r"""Adam (Kingma & Ba), PyTorch's update rule.

    With ``t`` the step count and ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p          (L2; or p *= 1 - lr * weight_decay when decoupled)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)             (amsgrad; used instead of v below)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p = p - lr / (1 - beta1**t) * m / denom

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and of its
            square (default (0.9, 0.999)).
        eps: term added to the denominator for stability (default 1e-8).
        weight_decay: weight decay (default 0), an L2 penalty unless
            ``decoupled_weight_decay``.
        amsgrad: use the AMSGrad variant (default False).
        maximize: maximise the objective instead of minimising it.
        foreach, capturable, fused: accepted for PyTorch compatibility; no effect
            (see :func:`~trainkit.optim.optimizer.check_engine_flags`).
        differentiable: only False is supported.
        decoupled_weight_decay: AdamW-style decay (what :class:`AdamW` sets).

    State per parameter: ``step`` (a float count, as PyTorch's), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
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
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            # Python floats stay "weak" scalars in numpy 2: float32 stays float32.
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            amsgrad = bool(group["amsgrad"])
            decoupled = bool(group.get("decoupled_weight_decay", False))
            for p, param, g in self._gradients(group):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["exp_avg"] = np.zeros_like(param)
                    state["exp_avg_sq"] = np.zeros_like(param)
                    if amsgrad:
                        state["max_exp_avg_sq"] = np.zeros_like(param)
                exp_avg = state["exp_avg"]
                exp_avg_sq = state["exp_avg_sq"]
                state["step"] += 1.0
                step = state["step"]

                if weight_decay != 0:
                    if decoupled:
                        np.multiply(param, 1 - lr * weight_decay, out=param)
                    else:
                        g = l2_gradient(g, param, weight_decay)

                lerp_(exp_avg, g, 1 - beta1)
                np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
                # addcmul order: (value * g) * g
                sq = np.multiply(g, 1 - beta2, out=np.empty_like(param))  # out=: 0-d parameters stay arrays
                np.multiply(sq, g, out=sq)
                np.add(exp_avg_sq, sq, out=exp_avg_sq)

                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5

                if amsgrad:
                    max_sq = state["max_exp_avg_sq"]
                    np.maximum(max_sq, exp_avg_sq, out=max_sq)
                    denom = np.sqrt(max_sq, out=sq)
                else:
                    denom = np.sqrt(exp_avg_sq, out=sq)
                np.divide(denom, bias_correction2_sqrt, out=denom)
                np.add(denom, eps, out=denom)
                # addcdiv order: (value * exp_avg) / denom
                upd = np.multiply(exp_avg, -step_size, out=np.empty_like(param))
                np.divide(upd, denom, out=upd)
                np.add(param, upd, out=param)
        return loss


@optimizer("adamw", args=_ADAM_ARGS)
class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), ``torch.optim.AdamW``.

    Identical to :class:`Adam` except that weight decay multiplies the
    parameter by ``1 - lr * weight_decay`` before the Adam step instead of
    adding an L2 term to the gradient; the default ``weight_decay`` is 1e-2.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict) -> None:
        """Load a state; decay stays decoupled whatever the saved groups say (as PyTorch)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
