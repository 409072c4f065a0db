"""Convolution and pooling functions beyond the plain 2-D ones: grouped/dilated ``conv2d`` (its second path),
``conv_transpose2d``/``conv_transpose1d``, ``max_pool1d``/``avg_pool1d`` and ``adaptive_max_pool2d`` (PyTorch's
signatures and semantics). The channel dropouts are in :mod:`trainkit.nn.functional`."""
from __future__ import annotations



from trainkit.autograd.ops import conv as _conv
from trainkit.autograd.ops import conv_general as _general
from trainkit.autograd.ops import pool as _pool
from trainkit.autograd.ops import pool_adaptive as _adaptive
from trainkit.autograd.tensor import Tensor

__all__ = ["grouped_conv2d", "conv_transpose2d", "conv_transpose1d", "max_pool1d", "avg_pool1d",
           "adaptive_max_pool2d"]


def _one(v) -> int:
    return v[0] if isinstance(v, (tuple, list)) else v


def grouped_conv2d(input: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int) -> Tensor:  # noqa: A002
    """conv2d with ``groups`` and/or ``dilation`` (the plain case goes through the fast conv op)."""
    if input.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                           f"{list(input.shape)} to have {weight.shape[1] * groups} channels, but got "
                           f"{input.shape[1]} channels instead")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size {list(weight.shape)} instead")
    args = (input, weight) if bias is None else (input, weight, bias)
    return _general.GroupedConv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose2d(input: Tensor, weight: Tensor, bias=None, stride=1, padding=0, output_padding=0,  # noqa: A002
                     groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution of ``(N, C_in, H, W)`` (or unbatched) input; weight ``(C_in, C_out/groups, kH, kW)``.

    Output size ``(H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1``.
    """
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    if x.ndim != 4:
        raise RuntimeError(f"conv_transpose2d expects a 3-D or 4-D input, got shape {tuple(input.shape)}")
    if x.shape[1] != weight.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input {list(x.shape)} "
                           f"to have {weight.shape[0]} channels, but got {x.shape[1]} channels instead")
    if weight.shape[0] % groups:
        raise RuntimeError(f"conv_transpose2d: {weight.shape[0]} input channels do not split into {groups} groups")
    op, s, d = _conv.pair(output_padding), _conv.pair(stride), _conv.pair(dilation)
    if op[0] >= max(s[0], d[0]) or op[1] >= max(s[1], d[1]):
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got "
                           f"output_padding={list(op)}, stride={list(s)}, dilation={list(d)}")
    p, k = _conv.pair(padding), weight.shape[2:]
    out = [(x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(2)]
    if min(out) < 1:  # torch refuses an empty output
        raise RuntimeError(f"Given input size per channel: ({x.shape[2]} x {x.shape[3]}). Calculated output size "
                           f"per channel: ({out[0]} x {out[1]}). Output size is too small")
    args = (x, weight) if bias is None else (x, weight, bias)
    y = _general.ConvTranspose2d.apply(*args, stride=s, padding=_conv.pair(padding), output_padding=op, dilation=d,
                                       groups=groups)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input: Tensor, weight: Tensor, bias=None, stride=1, padding=0, output_padding=0,  # noqa: A002
                     groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-D convolution of ``(N, C_in, L)`` input (the 2-D one on a height-1 view)."""
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    y = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _one(stride)), (0, _one(padding)),
                         (0, _one(output_padding)), groups, (1, _one(dilation))).squeeze(2)
    return y.squeeze(0) if unbatched else y


def _pool1d_input(input: Tensor, name: str):
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{name}: Expected 2D or 3D (batch mode) tensor for input, got {input.ndim}D")
    return (input.unsqueeze(0) if input.ndim == 2 else input).unsqueeze(2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False) -> Tensor:
    """Maximum over windows of ``(N, C, L)`` (or ``(C, L)``) input; stride defaults to the kernel size."""
    if _one(dilation) != 1 or ceil_mode or return_indices:
        raise NotImplementedError("max_pool1d: dilation, ceil_mode and return_indices are not supported by trainkit")
    k = _one(kernel_size)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride)
    p = _one(padding)
    if p > k // 2:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, kernel_size={k}")
    y = _pool.MaxPool2d.apply(_pool1d_input(input, "max_pool1d"), kernel_size=(1, k), stride=(1, s),
                              padding=(0, p)).squeeze(2)
    return y.squeeze(0) if input.ndim == 2 else y


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of ``(N, C, L)`` (or ``(C, L)``) input; stride defaults to the kernel size."""
    if ceil_mode:
        raise NotImplementedError("avg_pool1d: ceil_mode is not supported by trainkit")
    k = _one(kernel_size)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride)
    p = _one(padding)
    if p > k // 2:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, kernel_size={k}")
    y = _pool.AvgPool2d.apply(_pool1d_input(input, "avg_pool1d"), kernel_size=(1, k), stride=(1, s),
                              padding=(0, p), count_include_pad=count_include_pad).squeeze(2)
    return y.squeeze(0) if input.ndim == 2 else y


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:  # noqa: A002
    """Maximum over PyTorch's adaptive bins of ``(N, C, H, W)`` (or ``(C, H, W)``) input to ``output_size``.

    ``output_size`` is an int or ``(oh, ow)``; None keeps that input size.
    """
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices is not supported by trainkit")
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    x = input.unsqueeze(0) if input.ndim == 3 else input
    oh, ow = _conv.pair(output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    size = (x.shape[2] if oh is None else oh, x.shape[3] if ow is None else ow)
    y = _adaptive.AdaptiveMaxPool2d.apply(x, output_size=size)
    return y.squeeze(0) if input.ndim == 3 else y
