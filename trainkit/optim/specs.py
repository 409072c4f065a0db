"""Value specs shared by the optimizer and scheduler declarations (YAML ranges of common arguments).

An optimizer declares itself beside its class with these::

    @optimizer("adam", args={"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY})
    class Adam(Optimizer): ...
"""
from __future__ import annotations

from trainkit.registry import Float, ListOf

__all__ = ["LR", "BETAS", "EPS", "WEIGHT_DECAY", "MOMENTUM", "GAMMA", "FRACTION"]

#: A learning rate (> 0).
LR = Float(lo=0, lo_open=True)
#: Adam-style ``[beta1, beta2]``, each in [0, 1).
BETAS = ListOf(Float(0, 1, hi_open=True), length=2)
#: A term added to a denominator (> 0).
EPS = Float(lo=0, lo_open=True)
#: An L2 penalty or decoupled decay (>= 0).
WEIGHT_DECAY = Float(lo=0)
#: A momentum or smoothing factor in [0, 1).
MOMENTUM = Float(0, 1, hi_open=True)
#: A multiplicative learning-rate factor (> 0).
GAMMA = Float(lo=0, lo_open=True)
#: A fraction in [0, 1].
FRACTION = Float(0, 1)
