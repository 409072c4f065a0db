"""Activation layers: ``ReLU``, ``LeakyReLU``, ``GELU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``,
``SiLU``, ``ELU``, ``SELU``, ``PReLU``, ``Softplus``, ``Mish``, ``Hardswish``, ``Hardtanh``.

Each is a thin module around the function of the same name in
``trainkit.nn.functional``, so it can sit in a ``Sequential`` or a YAML model.
An elementwise activation declares itself with ``@layer("name")`` and
``infer_shape = staticmethod(same_shape)``.
"""
from __future__ import annotations

import warnings

import numpy as np

from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import check_device, np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Inferred, Int, ShapeProblem, Str, batched_dim, fmt, layer, same_shape
from trainkit.nn import onnx_rules as _onnx

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "SiLU", "ELU", "SELU", "PReLU",
           "Softplus", "Mish", "Hardswish", "Hardtanh"]


@layer("relu", onnx=_onnx.activation)
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


@layer("leaky_relu", example=Example((3, 4), {"negative_slope": 0.2}, name="LeakyReLU(0.2)"), onnx=_onnx.activation)
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


@layer("gelu", args={"approximate": Str(("none", "tanh"), "approximate")}, onnx=_onnx.activation)
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


@layer("sigmoid", onnx=_onnx.activation)
class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise."""

    def forward(self, input):
        return F.sigmoid(input)

    infer_shape = staticmethod(same_shape)


@layer("tanh", onnx=_onnx.activation)
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


@layer("softmax", args={"dim": Int()}, defaults={"dim": 1}, example=Example((3, 4), name="Softmax(dim=1)"), onnx=_onnx.activation)
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


@layer("log_softmax", args={"dim": Int()}, defaults={"dim": 1}, example=Example((3, 4), name="LogSoftmax(dim=1)"), onnx=_onnx.activation)
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


def _check_hardtanh(args, path, ck) -> None:
    """``max_val`` must be greater than ``min_val`` (the constructor's own rule, reported at the key)."""
    lo, hi = args.get("min_val", -1.0), args.get("max_val", 1.0)
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and hi <= lo:
        ck.error(path + ("max_val",), f"must be greater than min_val ({lo}), found {hi}")


class _InplaceFlag(Module):
    """An activation whose only argument is PyTorch's ``inplace`` (accepted, ignored: trainkit never
    overwrites an input that autograd may need)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""



@layer("silu", onnx=_onnx.activation)
class SiLU(_InplaceFlag):
    """``x * sigmoid(x)`` elementwise (swish). Shape: any, unchanged."""

    def forward(self, input):
        return F.silu(input)

    infer_shape = staticmethod(same_shape)



@layer("elu", example=Example((3, 4), {"alpha": 0.7}, name="ELU(0.7)"), onnx=_onnx.activation)
class ELU(Module):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``. Shape: any, unchanged.

    Args:
        alpha: the value the negative side saturates to (as ``-alpha``); default 1.0.
        inplace: accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")

    infer_shape = staticmethod(same_shape)



@layer("selu", onnx=_onnx.activation)
class SELU(_InplaceFlag):
    """``scale * ELU(x, alpha)`` with alpha 1.6733 and scale 1.0507 (self-normalising). Shape: any, unchanged."""

    def forward(self, input):
        return F.selu(input)

    infer_shape = staticmethod(same_shape)



@layer("prelu", args={"num_parameters": Int(lo=1)}, example=Example((3, 4), {"num_parameters": 4}, name="PReLU(4)"), onnx=_onnx.activation)
class PReLU(Module):
    """``x`` if ``x > 0`` else ``weight * x``, with learnt slopes.

    Args:
        num_parameters: 1 (one slope for all) or the number of input channels (dimension 1).
        init: initial slope, default 0.25.
        dtype: parameter dtype (float32 by default).

    Shape: any, unchanged; with ``num_parameters > 1`` the input is ``(N, C, *)`` with C = num_parameters.

    Attributes:
        weight: ``(num_parameters,)``, filled with ``init``.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        check_device(device)
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(np.empty((num_parameters,), dtype=np_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the slopes with ``init``, as PyTorch does."""
        init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; one slope per channel (per-sample dimension 0) when ``num_parameters`` > 1."""
        n = args.get("num_parameters", 1)
        if n > 1 and (not x or x[0] != n):
            raise ShapeProblem(f"num_parameters is {n} but the input has "
                               f"{x[0] if x else 'no'} channels ({fmt(x)} per sample); use 1 or {x[0] if x else 1}",
                               "num_parameters")
        return Inferred(tuple(x), params=n)



@layer("softplus", example=Example((3, 4), {"beta": 2.0}, name="Softplus(beta=2)"), onnx=_onnx.activation)
class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold``. Shape: any, unchanged."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"

    infer_shape = staticmethod(same_shape)



@layer("mish", onnx=_onnx.activation)
class Mish(_InplaceFlag):
    """``x * tanh(softplus(x))``. Shape: any, unchanged."""

    def forward(self, input):
        return F.mish(input)

    infer_shape = staticmethod(same_shape)



@layer("hardswish", onnx=_onnx.activation)
class Hardswish(Module):
    """``x * relu6(x + 3) / 6``. Shape: any, unchanged. ``inplace`` is accepted and ignored."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.hardswish(input)

    infer_shape = staticmethod(same_shape)



@layer("hardtanh", exclude=("min_value", "max_value"), check=_check_hardtanh,
        example=Example((3, 4), {"min_val": -0.5, "max_val": 0.5}, name="Hardtanh(-0.5,0.5)"), onnx=_onnx.activation)
class Hardtanh(Module):
    """``x`` clipped to ``[min_val, max_val]``. Shape: any, unchanged.

    ``min_value``/``max_value`` are PyTorch's deprecated spellings of the two limits.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None):
        super().__init__()
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`", FutureWarning,
                          stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`", FutureWarning,
                          stacklevel=2)
            max_val = max_value
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")

    infer_shape = staticmethod(same_shape)
