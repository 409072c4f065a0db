"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` and trainkit's ``GlobalAvgPool2d``."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import (PADDING, SIZE, Example, Inferred, Nullable, ShapeProblem, layer, need_image, pair,
                               window)

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d"]


def _pool_shape(x, args) -> Inferred:
    k = pair(args["kernel_size"])
    pad = pair(args["padding"])
    if pad[0] > k[0] // 2 or pad[1] > k[1] // 2:
        raise ShapeProblem(f"padding {list(pad)} must be at most half the kernel {k[0]}x{k[1]}", "padding")
    h, w = window(x, k, args["stride"] or args["kernel_size"], pad)
    return Inferred((x[0], h, w))


_POOL_ARGS = {"kernel_size": SIZE, "stride": Nullable(SIZE), "padding": PADDING}


@layer("maxpool2d", args=_POOL_ARGS, example=Example((2, 2, 4, 4), {"kernel_size": 2}, name="MaxPool2d(2)"))
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
                                      name="AvgPool2d(3,2,1)"))
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
       example=Example((2, 2, 5, 7), {"output_size": [2, 3]}, name="AdaptiveAvgPool2d((2,3))"))
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


@layer("global_avgpool", example=Example((2, 3, 4, 4)))
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
