"""``Conv1d`` and ``Conv2d``: convolutions over NCL/NCHW input (PyTorch's layout, arguments and initialisation)."""
from __future__ import annotations

import math

import numpy as np

from trainkit.autograd import device as _device
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import _pair, np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import (CONV_PADDING, SIZE, AnyOf, Example, Inferred, Int, ShapeProblem, Str, layer, need_image,
                               need_rank, pair)
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Conv1d", "Conv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _single(x) -> tuple:
    return (x[0],) if isinstance(x, (tuple, list)) else (x,)


class _ConvNd(Module):
    """Shared construction, initialisation and repr of the convolutions (``_tuple`` makes 1-D or 2-D tuples)."""

    _tuple = staticmethod(_pair)

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype, transposed=False, output_padding=0):
        super().__init__()
        _device.check_cpu(device)
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, but got padding_mode="
                             f"'{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = self._tuple(kernel_size), self._tuple(stride)
        self.dilation, self.groups, self.padding_mode = self._tuple(dilation), groups, padding_mode
        self.transposed, self.output_padding = transposed, self._tuple(output_padding)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = self._tuple(padding)
        shape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups))
        dt = np_dtype(dtype)
        self.weight = Parameter(np.empty(shape + self.kernel_size, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight kaiming_uniform_(a=sqrt(5)); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _explicit_padding(self) -> tuple:
        """The padding as integers per side (``'same'`` -> half of ``dilation*(k-1)``, rounded down)."""
        if self.padding == "valid":
            return (0,) * len(self.kernel_size)
        if self.padding == "same":
            return tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size))
        return self.padding

    def _pad_input(self, input):  # noqa: A002
        """For a non-zeros ``padding_mode``: the input padded with it (the convolution then pads nothing)."""
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            sides = [(t // 2, t - t // 2) for t in totals]
        else:
            sides = [(p, p) for p in self._explicit_padding()]
        flat = [v for lo_hi in reversed(sides) for v in lo_hi]
        return F.pad(input, flat, mode=self.padding_mode)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        zeros = (0,) * len(self.kernel_size)
        if self.padding != zeros:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != zeros:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _conv_inferred(args, channels: int, spatial: tuple, dims: int) -> tuple[tuple, int, int]:
    """Output spatial size, output channels and parameters of a convolution's shape rule."""
    k = pair(args["kernel_size"]) if dims == 2 else (args["kernel_size"],)
    stride = pair(args["stride"]) if dims == 2 else (args["stride"],)
    dil = pair(args["dilation"]) if dims == 2 else (args["dilation"],)
    groups, out = args["groups"], args["out_channels"]
    if channels % groups:
        raise ShapeProblem(f"{channels} input channels do not split into {groups} groups", "groups")
    if out % groups:
        raise ShapeProblem(f"out_channels {out} does not split into {groups} groups", "groups")
    pad = args["padding"]
    if pad == "same" and any(s != 1 for s in stride):
        raise ShapeProblem("padding 'same' needs stride 1", "padding")
    if pad == "same":
        sizes = tuple(spatial)
    else:
        pad = (0,) * dims if pad == "valid" else (pair(pad) if dims == 2 else (pad,))
        spans = [d * (kk - 1) + 1 for kk, d in zip(k, dil)]
        if any(span > n + 2 * p for span, n, p in zip(spans, spatial, pad)):
            extra = f" plus padding {pad[0]}" if any(pad) else ""
            dilated = f" (dilated to {'x'.join(map(str, spans))})" if any(d != 1 for d in dil) else ""
            raise ShapeProblem(f"kernel {'x'.join(map(str, k))}{dilated} is larger than its "
                               f"{'x'.join(map(str, spatial))} input{extra}", "kernel_size")
        sizes = tuple((n + 2 * p - span) // s + 1 for n, p, span, s in zip(spatial, pad, spans, stride))
    params = out * (channels // groups) * math.prod(k) + (out if args["bias"] else 0)
    return sizes, out, params


_CONV_ARGS = {"in_channels": Int(lo=1), "out_channels": Int(lo=1), "kernel_size": SIZE, "stride": SIZE,
              "padding": CONV_PADDING, "dilation": SIZE, "groups": Int(lo=1),
              "padding_mode": Str(_PADDING_MODES, "padding mode")}


@layer("conv2d", input_arg="in_channels", input_dim=0, args=_CONV_ARGS,
       example=Example((2, 2, 5, 5), {"out_channels": 3, "kernel_size": 3}), onnx=_onnx.conv)
class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        in_channels: channels of the input image.
        out_channels: channels produced.
        kernel_size: int or ``(kH, kW)``.
        stride: int or ``(sH, sW)``; default 1.
        padding: int, ``(pH, pW)``, ``'valid'`` (no padding) or ``'same'`` (output size = input size;
            stride 1; an odd total pads one more on the bottom/right, as PyTorch does).
        dilation: spacing between kernel taps, int or ``(dH, dW)``.
        groups: split the channels into this many independent groups (``in_channels`` for a depthwise conv).
        bias: if False the layer has no bias.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        dtype: parameter dtype (float32 by default).

    Int arguments are stored as tuples (``kernel_size=(5, 5)``), as PyTorch does.

    Shape:
        input ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``) -> output ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H + 2*pH - dH*(kH - 1) - 1) // sH + 1``.

    Attributes:
        weight: ``(out_channels, in_channels/groups, kH, kW)``; kaiming_uniform_(a=sqrt(5)).
        bias: ``(out_channels,)``; U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels/groups*kH*kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):  # noqa: A002
        if self.padding_mode != "zeros":
            return F.conv2d(self._pad_input(input), self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        padding = self.padding if self.padding in ("same", "valid") else self._explicit_padding()
        return F.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    @staticmethod
    def infer_shape(args, x):
        """``(C_in, H, W) -> (out_channels, H_out, W_out)``; ``C_out*H_out*W_out*C_in/groups*kH*kW`` multiply-adds."""
        need_image("conv2d", x)
        (h, w), out, params = _conv_inferred(args, x[0], x[1:], 2)
        k = pair(args["kernel_size"])
        return Inferred((out, h, w), macs=out * h * w * (x[0] // args["groups"]) * k[0] * k[1], params=params)


_CONV1D_ARGS = {**_CONV_ARGS, "kernel_size": Int(lo=1), "stride": Int(lo=1), "dilation": Int(lo=1),
                "padding": AnyOf((Int(lo=0), Str(("same", "valid"), "padding")), "an integer >= 0, 'same' or 'valid'")}


@layer("conv1d", input_arg="in_channels", input_dim=0, args=_CONV1D_ARGS,
       example=Example((2, 2, 6), {"out_channels": 4, "kernel_size": 3, "groups": 2, "dilation": 2},
                       name="Conv1d(groups=2,dilation=2)"), onnx=_onnx.conv)
class Conv1d(_ConvNd):
    """1-D convolution over ``(N, C, L)`` input (sequences: channels first).

    Args:
        in_channels: channels of the input.
        out_channels: channels produced.
        kernel_size: kernel length.
        stride: step between windows.
        padding: int, ``'valid'`` or ``'same'``.
        dilation: spacing between kernel taps.
        groups: independent channel groups.
        bias: if False the layer has no bias.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        dtype: parameter dtype (float32 by default).

    Shape:
        ``(N, C_in, L)`` (or ``(C_in, L)``) -> ``(N, C_out, L_out)``.

    Attributes:
        weight: ``(out_channels, in_channels/groups, k)``; bias ``(out_channels,)`` (Conv2d's initialisation).
    """

    _tuple = staticmethod(_single)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):  # noqa: A002
        if self.padding_mode != "zeros":
            return F.conv1d(self._pad_input(input), self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        padding = self.padding if self.padding in ("same", "valid") else self.padding[0]
        return F.conv1d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    @staticmethod
    def infer_shape(args, x):
        """``(C_in, L) -> (out_channels, L_out)``."""
        need_rank("conv1d", x, (2,), "(channels, length)")
        (length,), out, params = _conv_inferred(args, x[0], x[1:], 1)
        macs = out * length * (x[0] // args["groups"]) * args["kernel_size"]
        return Inferred((out, length), macs=macs, params=params)
