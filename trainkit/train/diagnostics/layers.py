"""Which modules the diagnostics watch, and the statistics of one activation array."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trainkit.nn import activation as _activation
from trainkit.nn.module import Module
from trainkit.registry import LAYERS

__all__ = ["Layer", "tracked_layers", "activation_stats", "RELU_LIKE"]

#: Activations whose negative inputs give exactly 0 (a unit can die: no output, no gradient).
RELU_LIKE = tuple(c for c in (getattr(_activation, n, None) for n in ("ReLU", "ReLU6")) if c is not None)


@dataclass
class Layer:
    """One watched module.

    Attributes:
        name: its path in the model (``"3"``, ``"conv1"``, ``"blocks.0.attn"``).
        type: its YAML layer name (``linear``) or, for an undeclared class, the class name.
        module: the module.
        params: its own trainable parameters (not its children's), in registration order.
        relu_like: whether its output can have dead units (ReLU, ReLU6).
    """

    name: str
    type: str
    module: Module = field(repr=False)
    params: list = field(default_factory=list, repr=False)
    relu_like: bool = False

    @property
    def label(self) -> str:
        """How messages name it: ``3 (linear)``."""
        return f"{self.name} ({self.type})"


def _yaml_names() -> dict[type, str]:
    return {decl.cls: name for name, decl in LAYERS.items()}


def tracked_layers(model: Module) -> list[Layer]:
    """The modules worth a row: those with their own trainable parameters, and activation functions.

    In the order of ``named_modules`` (the order of the forward pass for
    sequential and graph models). Containers, shape-only layers (flatten),
    pooling and dropout have no row: their numbers repeat their neighbours'.
    """
    names = _yaml_names()
    out = []
    for name, module in model.named_modules():
        if not name:
            continue
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        is_activation = type(module).__module__ == _activation.__name__ and not list(module.children())
        if own or is_activation:
            out.append(Layer(name, names.get(type(module), type(module).__name__), module, own,
                             isinstance(module, RELU_LIKE)))
    return out


def _float_array(output):
    """The ndarray of a module's output (the first tensor of a tuple), or None."""
    if isinstance(output, (tuple, list)):
        output = next((o for o in output if hasattr(o, "_array")), None)
    a = getattr(output, "_array", None)
    if a is None or not np.issubdtype(a.dtype, np.floating):
        return None
    return a


def activation_stats(output, relu_like: bool = False) -> dict:
    """Mean, std, share of non-finite values and (``relu_like``) share of dead units of one output.

    A unit is one output coordinate other than the batch dimension (a feature,
    or a channel at one position); it is dead when it is not positive for any
    sample of the batch. Mean and std are over the finite values.
    """
    a = _float_array(output)
    if a is None or a.size == 0:
        return {}
    finite = np.isfinite(a)
    if finite.all():
        values, nonfinite = a, 0.0
    else:
        values, nonfinite = a[finite], 1.0 - float(finite.mean())
    out = {"act_mean": float(values.mean(dtype=np.float64)) if values.size else math.nan,
           "act_std": float(values.std(dtype=np.float64)) if values.size else math.nan,
           "act_nonfinite": nonfinite}
    if relu_like and a.ndim >= 2:
        fired = (a > 0).reshape(a.shape[0], -1).any(axis=0)
        out["dead_fraction"] = 1.0 - float(fired.mean())
    return out
