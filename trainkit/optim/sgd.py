"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from __future__ import annotations

import numpy as np

from trainkit.registry import optimizer

from ..autograd.threads import elementwise as _par

from .optimizer import Optimizer, check_engine_flags, l2_gradient
from .specs import FRACTION, LR, MOMENTUM, WEIGHT_DECAY

__all__ = ["SGD"]


def _check_nesterov(args, path, ck) -> None:
    if args["nesterov"] and (args["momentum"] <= 0 or args["dampening"] != 0):
        ck.error(path + ("nesterov",), "nesterov needs momentum > 0 and dampening 0")


@optimizer("sgd", args={"lr": LR, "momentum": MOMENTUM, "dampening": FRACTION, "weight_decay": WEIGHT_DECAY},
           check=_check_nesterov)
class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's update rule.

    For each parameter with a gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p                    (if weight_decay != 0)
        buf = g                                     (first step with momentum)
        buf = momentum * buf + (1 - dampening) * g  (later steps)
        g = g + momentum * buf  if nesterov else buf
        p = p - lr * g

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: learning rate (default 1e-3, as in PyTorch 2).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: use Nesterov momentum (requires momentum > 0, dampening 0).
        maximize: maximise the objective instead of minimising it.
        foreach, fused: accepted for PyTorch compatibility; no effect (see
            :func:`~trainkit.optim.optimizer.check_engine_flags`).
        differentiable: only False is supported.

    The state of a parameter holds ``momentum_buffer`` (an ndarray) once a step
    with momentum has been taken.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_engine_flags(differentiable=differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            # float() keeps the scalars weak: a numpy float64 scalar would
            # silently promote float32 parameters to float64 temporaries.
            lr = float(group["lr"])
            momentum = float(group["momentum"])
            dampening = float(group["dampening"])
            weight_decay = float(group["weight_decay"])
            nesterov = bool(group["nesterov"])
            for p, param, g in self._gradients(group):
                if weight_decay != 0:
                    g = l2_gradient(g, param, weight_decay)  # a new array: the user's .grad stays untouched
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = np.array(g, dtype=param.dtype, copy=True)
                        state["momentum_buffer"] = buf
                    else:
                        _par(np.multiply, buf, momentum, out=buf)
                        if dampening != 0:
                            _par(np.add, buf, np.multiply(g, 1 - dampening), out=buf)
                        else:
                            _par(np.add, buf, g, out=buf)
                    if nesterov:
                        g = _par(np.add, g, _par(np.multiply, buf, momentum))
                    else:
                        g = buf
                _par(np.subtract, param, _par(np.multiply, g, lr), out=param)
        return loss
