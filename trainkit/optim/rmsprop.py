"""RMSprop, as ``torch.optim.RMSprop``."""
from __future__ import annotations

import numpy as np

from .adam import lerp_
from trainkit.registry import optimizer

from .optimizer import Optimizer, check_engine_flags, l2_gradient
from .specs import EPS, LR, MOMENTUM, WEIGHT_DECAY

__all__ = ["RMSprop"]


@optimizer("rmsprop", args={"lr": LR, "alpha": MOMENTUM, "eps": EPS, "weight_decay": WEIGHT_DECAY,
                            "momentum": MOMENTUM})
class RMSprop(Optimizer):
    r"""RMSprop (Hinton), PyTorch's update rule.

    With ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                 (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - gavg**2), gavg = lerp(gavg, g, 1 - alpha)   (centered)
        avg = sqrt(v)                                              (otherwise)
        avg = avg + eps
        buf = momentum * buf + g / avg; p = p - lr * buf           (momentum > 0)
        p = p - lr * g / avg                                       (otherwise)

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant (default 0.99).
        eps: term added to the denominator for stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by an estimate of the gradient's variance.
        capturable, foreach: accepted for PyTorch compatibility; no effect (see
            :func:`~trainkit.optim.optimizer.check_engine_flags`).
        maximize: maximise the objective instead of minimising it.
        differentiable: only False is supported.

    State per parameter: ``step``, ``square_avg``, and ``momentum_buffer``
    (momentum > 0) and ``grad_avg`` (centered).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            alpha = float(group["alpha"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            for p, param, g in self._gradients(group):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["square_avg"] = np.zeros_like(param)
                    if momentum > 0:
                        state["momentum_buffer"] = np.zeros_like(param)
                    if centered:
                        state["grad_avg"] = np.zeros_like(param)
                state["step"] += 1.0
                square_avg = state["square_avg"]

                if weight_decay != 0:
                    g = l2_gradient(g, param, weight_decay)

                np.multiply(square_avg, alpha, out=square_avg)
                sq = np.multiply(g, 1 - alpha, out=np.empty_like(param))  # out=: 0-d parameters stay arrays
                np.multiply(sq, g, out=sq)
                np.add(square_avg, sq, out=square_avg)

                if centered:
                    grad_avg = state["grad_avg"]
                    lerp_(grad_avg, g, 1 - alpha)
                    # addcmul(grad_avg, grad_avg, value=-1) then sqrt_
                    avg = np.multiply(grad_avg, -1.0, out=sq)
                    np.multiply(avg, grad_avg, out=avg)
                    np.add(square_avg, avg, out=avg)
                    np.sqrt(avg, out=avg)
                else:
                    avg = np.sqrt(square_avg, out=sq)
                np.add(avg, eps, out=avg)

                if momentum > 0:
                    buf = state["momentum_buffer"]
                    np.multiply(buf, momentum, out=buf)
                    np.add(buf, np.divide(g, avg, out=avg), out=buf)
                    np.subtract(param, np.multiply(buf, lr, out=avg), out=param)
                else:
                    upd = np.multiply(g, -lr, out=np.empty_like(param))
                    np.divide(upd, avg, out=upd)
                    np.add(param, upd, out=param)
        return loss
