"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from __future__ import annotations

import numpy as np

from trainkit.registry import optimizer

from ..autograd.ops.jit import kernels, parallel
from ..autograd.threads import elementwise as _par
from ..autograd.threads import parallel_for, split

from .optimizer import Optimizer, check_engine_flags, l2_gradient
from .specs import FRACTION, LR, MOMENTUM, WEIGHT_DECAY

__all__ = ["SGD"]


#: Parameters of at least this many elements take the fused update (with numba); elements per piece of it.
FUSED_MIN = 1 << 14
FUSED_PIECE = 1 << 16


def _fused_step(param, g, buf, lr, momentum, dampening, weight_decay, nesterov) -> bool:
    """The momentum update of one parameter in one compiled pass, pieces on the intra-op threads; False
    (nothing done) when numba is missing, the arrays are small, or not contiguous arrays of one float dtype.

    The numpy code below makes four to six passes with temporaries over memory (a third of an MLP's step);
    the kernel reads p, g and the buffer once and rounds every operation as numpy does, so both give the
    same values bit for bit.
    """
    jit = kernels(param.dtype)
    if (jit is None or param.size < FUSED_MIN or g.dtype != param.dtype
            or buf.dtype != param.dtype or g.shape != param.shape or buf.shape != param.shape
            or not (param.flags.c_contiguous and g.flags.c_contiguous and buf.flags.c_contiguous)):
        return False
    f = param.dtype.type
    pf, gf, bf = param.reshape(-1), g.reshape(-1), buf.reshape(-1)
    args = (f(lr), f(momentum), f(1 - dampening), f(weight_decay), weight_decay != 0, dampening != 0, nesterov)
    par = parallel(param.dtype)
    if par is not None:  # every piece in one compiled call on OpenMP's threads
        par.sgd_momentum_step(pf, gf, bf, *args, FUSED_PIECE)
        return True
    parallel_for(lambda a, e: jit.sgd_momentum_step(pf[a:e], gf[a:e], bf[a:e], *args), split(pf.size, FUSED_PIECE))
    return True


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
                buf = self.state[p].get("momentum_buffer") if momentum != 0 else None
                if buf is not None and _fused_step(param, g, buf, lr, momentum, dampening, weight_decay, nesterov):
                    continue
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
