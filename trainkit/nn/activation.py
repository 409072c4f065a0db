"""Activation layers: ``ReLU``, ``LeakyReLU``, ``GELU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``.

Each is a thin module around the function of the same name in
``trainkit.nn.functional``, so it can sit in a ``Sequential`` or a YAML model.
An elementwise activation declares itself with ``@layer("name")`` and
``infer_shape = staticmethod(same_shape)``.
"""
from __future__ import annotations

import warnings

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import Example, Inferred, Int, ShapeProblem, Str, batched_dim, layer, same_shape

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


@layer("relu")
class ReLU(Module):
    """``max(0, x)`` elementwise. ``inplace`` is accepted for PyTorch compatibility and ignored
    (trainkit never overwrites an input that autograd may need)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""

    infer_shape = staticmethod(same_shape)


@layer("leaky_relu", example=Example((3, 4), {"negative_slope": 0.2}, name="LeakyReLU(0.2)"))
class LeakyReLU(Module):
    """``x`` if ``x >= 0`` else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")

    infer_shape = staticmethod(same_shape)


@layer("gelu", args={"approximate": Str(("none", "tanh"), "approximate")})
class GELU(Module):
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh approximation."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"

    infer_shape = staticmethod(same_shape)


@layer("sigmoid")
class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise."""

    def forward(self, input):
        return F.sigmoid(input)

    infer_shape = staticmethod(same_shape)


@layer("tanh")
class Tanh(Module):
    """Hyperbolic tangent elementwise."""

    def forward(self, input):
        return F.tanh(input)

    infer_shape = staticmethod(same_shape)


def _softmax_shape(name: str, args, x) -> Inferred:
    if batched_dim("dim", args["dim"], x) == 0:
        raise ShapeProblem(f"{name} over dim 0 mixes the samples of a batch; use dim 1 or -1", "dim")
    return Inferred(tuple(x))


def _softmax_dim(name: str, ndim: int) -> int:
    # PyTorch's legacy rule for dim=None, with its warning: pick the class axis.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


@layer("softmax", args={"dim": Int()}, defaults={"dim": 1}, example=Example((3, 4), name="Softmax(dim=1)"))
class Softmax(Module):
    """Softmax along ``dim`` (outputs are positive and sum to 1 along it)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = self.dim if self.dim is not None else _softmax_dim("softmax", input.ndim)
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``dim`` (batched numbering, trainkit's default 1) may not be the batch."""
        return _softmax_shape("softmax", args, x)


@layer("log_softmax", args={"dim": Int()}, defaults={"dim": 1}, example=Example((3, 4), name="LogSoftmax(dim=1)"))
class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = self.dim if self.dim is not None else _softmax_dim("log_softmax", input.ndim)
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``dim`` (batched numbering, trainkit's default 1) may not be the batch."""
        return _softmax_shape("log_softmax", args, x)
