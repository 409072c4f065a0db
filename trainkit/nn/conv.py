"""``Conv2d``: 2-D convolution over NCHW input (PyTorch's layout, arguments and initialisation)."""
from __future__ import annotations

import math

import numpy as np

from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import _pair, check_device, np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import (CONV_PADDING, SIZE, Example, Inferred, Int, ShapeProblem, layer, need_image, pair,
                               window)

__all__ = ["Conv2d"]


@layer("conv2d", input_arg="in_channels", input_dim=0,
       args={"in_channels": Int(lo=1), "out_channels": Int(lo=1), "kernel_size": SIZE, "stride": SIZE,
             "padding": CONV_PADDING},
       example=Example((2, 2, 5, 5), {"out_channels": 3, "kernel_size": 3}))
class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        in_channels: channels of the input image.
        out_channels: channels produced.
        kernel_size: int or ``(kH, kW)``.
        stride: int or ``(sH, sW)``; default 1.
        padding: int, ``(pH, pW)``, ``'valid'`` (no padding) or ``'same'``
            (output size = input size; stride 1 and odd kernels only). Zero padding.
        bias: if False the layer has no bias.
        dtype: parameter dtype (float32 by default).
        device: ``None`` or the CPU (trainkit's only device).

    Int arguments are stored as tuples (``kernel_size=(5, 5)``), as PyTorch does.

    Shape:
        input ``(N, C_in, H, W)`` -> output ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H + 2*pH - kH) // sH + 1``.

    Attributes:
        weight: ``(out_channels, in_channels, kH, kW)``; kaiming_uniform_(a=sqrt(5)).
        bias: ``(out_channels,)``; U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels*kH*kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, dtype=None, *, device=None):
        super().__init__()
        check_device(device)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            if padding == "same" and any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError("padding='same' needs odd kernel sizes in trainkit (symmetric zero padding)")
            self.padding = padding
        else:
            self.padding = _pair(padding)
        # Fixed attributes PyTorch users may read; trainkit supports only these values.
        self.dilation = (1, 1)
        self.groups = 1
        self.padding_mode = "zeros"
        dt = np_dtype(dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels) + self.kernel_size, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _padding_pair(self) -> tuple[int, int]:
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        return self.padding

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (see the class docstring)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self._padding_pair())

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s

    @staticmethod
    def infer_shape(args, x):
        """``(C_in, H, W) -> (out_channels, H_out, W_out)``; ``C_out*H_out*W_out*C_in*kH*kW`` multiply-adds."""
        need_image("conv2d", x)
        k = pair(args["kernel_size"])
        pad, stride = args["padding"], pair(args["stride"])
        if pad == "same" and stride != (1, 1):
            raise ShapeProblem("padding 'same' needs stride 1", "padding")
        if pad == "same" and (k[0] % 2 == 0 or k[1] % 2 == 0):
            raise ShapeProblem(f"padding 'same' needs odd kernel sizes, found {k[0]}x{k[1]}", "padding")
        pad = (k[0] // 2, k[1] // 2) if pad == "same" else (0, 0) if pad == "valid" else pad
        h, w = window(x, k, stride, pad)
        out = args["out_channels"]
        params = out * x[0] * k[0] * k[1] + (out if args["bias"] else 0)
        return Inferred((out, h, w), macs=out * h * w * x[0] * k[0] * k[1], params=params)
