"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` and trainkit's ``GlobalAvgPool2d``."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d"]


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
