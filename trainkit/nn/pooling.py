"""Pooling layers: ``MaxPool1d``/``MaxPool2d``, ``AvgPool1d``/``AvgPool2d``, ``AdaptiveAvgPool2d``,
``AdaptiveMaxPool2d`` and trainkit's ``GlobalAvgPool2d``."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import (PADDING, SIZE, Example, Inferred, Int, Nullable, ShapeProblem, layer, need_image,
                               need_rank, pair, window)
from trainkit.nn import onnx_rules as _onnx

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "GlobalAvgPool2d"]


def _pool_shape(x, args) -> Inferred:
    k = pair(args["kernel_size"])
    pad = pair(args["padding"])
    if pad[0] > k[0] // 2 or pad[1] > k[1] // 2:
        raise ShapeProblem(f"padding {list(pad)} must be at most half the kernel {k[0]}x{k[1]}", "padding")
    h, w = window(x, k, args["stride"] or args["kernel_size"], pad)
    return Inferred((x[0], h, w))


_POOL_ARGS = {"kernel_size": SIZE, "stride": Nullable(SIZE), "padding": PADDING}


@layer("maxpool2d", args=_POOL_ARGS, example=Example((2, 2, 4, 4), {"kernel_size": 2}, name="MaxPool2d(2)"), onnx=_onnx.maxpool)
class MaxPool2d(Module):
    """2-D max pooling over NCHW input.

    Args:
        kernel_size: int or ``(kH, kW)`` window.
        stride: int or pair; defaults to ``kernel_size`` (non-overlapping windows).
        padding: int or pair of implicit -inf padding on each side.

    Arguments are stored as given (``MaxPool2d(2)`` has ``kernel_size=2, stride=2``), like PyTorch.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, (H + 2p - k) // s + 1, ...)``.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        # Fixed values, shown in the repr as PyTorch shows them.
        self.dilation = 1
        self.ceil_mode = False
        self.return_indices = False

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (C, H_out, W_out)``; padding at most half the kernel."""
        need_image("maxpool2d", x)
        return _pool_shape(x, args)


@layer("avgpool2d", args=_POOL_ARGS, example=Example((1, 2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1},
                                      name="AvgPool2d(3,2,1)"), onnx=_onnx.avgpool)
class AvgPool2d(Module):
    """2-D average pooling over NCHW input.

    Args:
        kernel_size: int or ``(kH, kW)`` window.
        stride: int or pair; defaults to ``kernel_size``.
        padding: int or pair of implicit zero padding.
        count_include_pad: (keyword) whether padded zeros count in the average (PyTorch's default True).
    """

    def __init__(self, kernel_size, stride=None, padding=0, *, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = False
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                            count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (C, H_out, W_out)``; padding at most half the kernel."""
        need_image("avgpool2d", x)
        return _pool_shape(x, args)


@layer("adaptive_avgpool2d", args={"output_size": SIZE},
       example=Example((2, 2, 5, 7), {"output_size": [2, 3]}, name="AdaptiveAvgPool2d((2,3))"), onnx=_onnx.adaptive_avgpool)
class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size ``output_size`` (int or ``(H_out, W_out)``), any input size.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (C, *output_size)``."""
        need_image("adaptive_avgpool2d", x)
        return Inferred((x[0],) + pair(args["output_size"]))


@layer("global_avgpool", example=Example((2, 3, 4, 4)), onnx=_onnx.global_avgpool)
class GlobalAvgPool2d(Module):
    """Mean over the spatial dimensions, returning ``(N, C)`` (trainkit's YAML ``global_avgpool``).

    Not a PyTorch class: it computes what ``Sequential(AdaptiveAvgPool2d(1), Flatten())``
    computes, in one layer without parameters, so a YAML head can go straight
    from feature maps to a ``linear`` layer.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C)``.
    """

    def forward(self, input):
        n, c = input.shape[0], input.shape[1]
        return F.adaptive_avg_pool2d(input, 1).reshape((n, c))

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (C,)``."""
        need_image("global_avgpool", x)
        return Inferred((x[0],))


def _pool1d_shape(name: str, args, x) -> Inferred:
    need_rank(name, x, (2,), "(channels, length)")
    k, p = args["kernel_size"], args["padding"]
    s = args["stride"] or k
    if p > k // 2:
        raise ShapeProblem(f"padding {p} must be at most half the kernel {k}", "padding")
    if k > x[1] + 2 * p:
        raise ShapeProblem(f"kernel {k} is larger than its length-{x[1]} input", "kernel_size")
    return Inferred((x[0], (x[1] + 2 * p - k) // s + 1))


_POOL1D_ARGS = {"kernel_size": Int(lo=1), "stride": Nullable(Int(lo=1)), "padding": Int(lo=0)}


def _single(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


@layer("maxpool1d", args=_POOL1D_ARGS, exclude=("dilation", "return_indices", "ceil_mode"),
       example=Example((2, 2, 7), {"kernel_size": 3, "stride": 2, "padding": 1}, name="MaxPool1d(3,2,1)"), onnx=_onnx.maxpool)
class MaxPool1d(Module):
    """1-D max pooling over ``(N, C, L)`` (or ``(C, L)``) input.

    Args:
        kernel_size: window length.
        stride: step; defaults to ``kernel_size``.
        padding: implicit -inf padding on each side (at most half the kernel).
        dilation: only 1 (NotImplementedError otherwise).
        return_indices: not supported.
        ceil_mode: not supported.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        if dilation != 1 or return_indices or ceil_mode:
            raise NotImplementedError("MaxPool1d: dilation, return_indices and ceil_mode are not supported by "
                                      "trainkit")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):  # noqa: A002
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    @staticmethod
    def infer_shape(args, x):
        """``(C, L) -> (C, L_out)``."""
        return _pool1d_shape("maxpool1d", args, x)


@layer("avgpool1d", args=_POOL1D_ARGS, exclude=("ceil_mode",),
       example=Example((2, 2, 7), {"kernel_size": 3, "stride": 2, "padding": 1}, name="AvgPool1d(3,2,1)"), onnx=_onnx.avgpool)
class AvgPool1d(Module):
    """1-D average pooling over ``(N, C, L)`` (or ``(C, L)``) input.

    Args:
        kernel_size: window length.
        stride: step; defaults to ``kernel_size``.
        padding: implicit zero padding on each side (at most half the kernel).
        ceil_mode: not supported.
        count_include_pad: whether padded zeros count in the average.

    Arguments are stored as 1-tuples (``kernel_size=(3,)``), as PyTorch does.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        if ceil_mode:
            raise NotImplementedError("AvgPool1d: ceil_mode is not supported by trainkit")
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):  # noqa: A002
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding,
                            count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, L) -> (C, L_out)``."""
        return _pool1d_shape("avgpool1d", args, x)


@layer("adaptive_maxpool2d", args={"output_size": SIZE}, exclude=("return_indices",),
       example=Example((2, 2, 5, 7), {"output_size": [2, 3]}, name="AdaptiveMaxPool2d((2,3))"), onnx=_onnx.adaptive_maxpool)
class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size ``output_size`` (int or ``(H_out, W_out)``; None keeps that size).

    Args:
        output_size: the output's height and width.
        return_indices: not supported.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``; the gradient goes to each bin's first maximum.
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        if return_indices:
            raise NotImplementedError("AdaptiveMaxPool2d: return_indices is not supported by trainkit")
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):  # noqa: A002
        return F.adaptive_max_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (C, *output_size)``."""
        need_image("adaptive_maxpool2d", x)
        return Inferred((x[0],) + pair(args["output_size"]))
