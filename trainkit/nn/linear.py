"""``Linear``: the affine layer."""
from __future__ import annotations

import math

import numpy as np

from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import check_device, np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Inferred, Int, ShapeProblem, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Linear"]


@layer("linear", input_arg="in_features", input_dim=-1,
       args={"in_features": Int(lo=1), "out_features": Int(lo=1)},
       example=Example((2, 4), {"out_features": 3}), onnx=_onnx.linear)
class Linear(Module):
    """Affine map ``y = x @ weight.T + bias``.

    Args:
        in_features: size of each input sample (the last dimension).
        out_features: size of each output sample.
        bias: if False, the layer has no bias (``bias`` is ``None``).
        device: ``None`` or the CPU (trainkit's only device).
        dtype: parameter dtype (float32 by default).

    Shape:
        input ``(*, in_features)`` -> output ``(*, out_features)``.

    Attributes:
        weight: ``(out_features, in_features)``, initialised by
            ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)).
        bias: ``(out_features,)``, U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        check_device(device)
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

    @staticmethod
    def infer_shape(args, x):
        """``(*, in) -> (*, out_features)``; an image-shaped input needs a flatten first."""
        if len(x) == 0:
            raise ShapeProblem("linear needs a feature dimension; the input is one number per sample")
        if len(x) >= 3:
            raise ShapeProblem(f"linear acts on the last dimension only, and its input is {fmt(x)} per sample "
                               "(an image); add 'flatten' or 'global_avgpool' before it")
        out = args["out_features"]
        params = x[-1] * out + (out if args["bias"] else 0)
        return Inferred(x[:-1] + (out,), macs=x[-1] * out * math.prod(x[:-1]), params=params)
