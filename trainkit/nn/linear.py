"""``Linear`` and ``Identity`` layers."""
from __future__ import annotations

import math

import numpy as np

from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments (as PyTorch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """Affine map ``y = x @ weight.T + bias``.

    Args:
        in_features: size of each input sample (the last dimension).
        out_features: size of each output sample.
        bias: if False, the layer has no bias (``bias`` is ``None``).
        dtype: parameter dtype (float32 by default).

    Shape:
        input ``(*, in_features)`` -> output ``(*, out_features)``.

    Attributes:
        weight: ``(out_features, in_features)``, initialised by
            ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)).
        bias: ``(out_features,)``, U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dt = np_dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (see the class docstring)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
