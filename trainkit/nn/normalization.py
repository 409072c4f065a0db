"""Per-sample normalisation: ``LayerNorm``, ``GroupNorm``, ``InstanceNorm1d`` and ``InstanceNorm2d``.

Unlike batch norm, these normalise each sample with its own statistics (biased
variance), so training and evaluation agree (an instance norm that tracks
running statistics uses them in evaluation, as PyTorch's does).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from trainkit.autograd import device as _device
from trainkit.autograd.ops import layer_norm as _ln
from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.norm import _BN_ARGS, _BatchNorm
from trainkit.nn.parameter import Parameter
from trainkit.registry import (AnyOf, Example, Float, Inferred, Int, ListOf, ShapeProblem, fmt, layer, need_rank)
from trainkit.nn import onnx_rules as _onnx

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "group_norm", "instance_norm"]

_SHAPE = AnyOf((Int(lo=1), ListOf(Int(lo=1))), "an integer >= 1 or a list of them (the trailing dimensions)")


@layer("layernorm", input_arg="normalized_shape", input_dim=lambda shape: [shape[-1]],
       args={"normalized_shape": _SHAPE, "eps": Float(lo=0, lo_open=True)},
       example=Example((2, 3, 4)), onnx=_onnx.layernorm)
class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dimensions of each sample, then scale and shift.

    Args:
        normalized_shape: the trailing dimensions to normalise (an int for the last one).
        eps: added to the variance for stability.
        elementwise_affine: learnable ``weight`` (ones) and ``bias`` (zeros) of ``normalized_shape``.
        bias: with ``elementwise_affine``, whether there is a ``bias``.

    Shape:
        ``(*, *normalized_shape)`` -> the same. In YAML ``normalized_shape`` is filled with the
        input's last dimension.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        _device.check_cpu(device)
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dt = np_dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(np.empty(self.normalized_shape, dtype=dt))
            if bias:
                self.bias = Parameter(np.empty(self.normalized_shape, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):  # noqa: A002
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; the trailing dimensions must equal ``normalized_shape``."""
        ns = args["normalized_shape"]
        ns = (ns,) if isinstance(ns, int) else tuple(ns)
        if len(x) < len(ns) or tuple(x[len(x) - len(ns):]) != ns:
            raise ShapeProblem(f"layernorm over {fmt(ns)} needs input ending in those dimensions, found {fmt(x)}",
                               "normalized_shape")
        n = math.prod(ns)
        params = n * (int(args["elementwise_affine"]) * (1 + int(args["bias"])))
        return Inferred(tuple(x), macs=math.prod(x), params=params)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):  # noqa: A002
    """Normalise ``(N, C, *)`` input over each group of ``C // num_groups`` channels (and all positions)."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(input.shape)} and num_groups={num_groups}")
    y = _ln.LayerNorm.apply(input.reshape(n, num_groups, -1), ndim=1, eps=eps).reshape(input.shape)
    return _channel_affine(y, weight, bias)


def _channel_affine(y, weight, bias):
    """``y * weight + bias`` with per-channel (dimension 1) parameters."""
    if weight is None and bias is None:
        return y
    shape = (1, -1) + (1,) * (y.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each channel of each sample over its positions (PyTorch's ``F.instance_norm``).

    With ``use_input_stats`` the sample's own statistics are used and the running
    buffers (when given) move towards their mean over the batch (unbiased
    variance); otherwise the running statistics normalise, as batch norm in eval.
    """
    if not use_input_stats:
        if weight is not None and bias is None:  # affine without bias: a constant zero shift
            bias = Tensor(np.zeros(weight.shape, input._array.dtype))
        return F.batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    spatial = math.prod(input.shape[2:])
    if spatial == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    flat = input.reshape(n, c, spatial)
    if running_mean is not None or running_var is not None:
        x = flat._array
        mean = x.mean(axis=2)
        var = x.var(axis=2) * (spatial / (spatial - 1))
        for buf, stat in ((running_mean, mean), (running_var, var)):
            if buf is not None:
                arr = buf._array if isinstance(buf, Tensor) else buf
                arr *= 1 - momentum
                arr += momentum * stat.mean(axis=0).astype(arr.dtype)
    y = _ln.LayerNorm.apply(flat, ndim=1, eps=eps).reshape(input.shape)
    return _channel_affine(y, weight, bias)


@layer("groupnorm", input_arg="num_channels", input_dim=0,
       args={"num_groups": Int(lo=1), "num_channels": Int(lo=1), "eps": Float(lo=0, lo_open=True)},
       example=Example((2, 4, 3), {"num_groups": 2}), onnx=_onnx.groupnorm)
class GroupNorm(Module):
    """Normalise each sample over groups of channels: ``num_channels // num_groups`` channels and every position.

    Args:
        num_groups: how many groups the channels are split into (must divide ``num_channels``).
        num_channels: ``C`` of the ``(N, C, *)`` input.
        eps: added to the variance for stability.
        affine: learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
        bias: (keyword) with ``affine``, whether there is a ``bias``.

    Shape:
        ``(N, C, *)`` -> the same.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        _device.check_cpu(device)
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        dt = np_dtype(dtype)
        if affine:
            self.weight = Parameter(np.empty((num_channels,), dtype=dt))
            if bias:
                self.bias = Parameter(np.empty((num_channels,), dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):  # noqa: A002
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, *)`` per sample with ``C`` divisible by ``num_groups``."""
        if len(x) < 1:
            raise ShapeProblem("groupnorm needs (channels, ...) input per sample, found a scalar")
        if x[0] % args["num_groups"]:
            raise ShapeProblem(f"{x[0]} channels do not split into {args['num_groups']} groups", "num_groups")
        params = x[0] * (int(args["affine"]) * (1 + int(args["bias"])))
        return Inferred(tuple(x), macs=math.prod(x), params=params)


class _InstanceNorm(_BatchNorm):
    """Shared implementation of the instance norms (parameters and buffers as batch norm's)."""

    _spatial = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        _device.check_cpu(device)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias=bias)

    def _check_input_dim(self, input) -> None:  # noqa: A002
        if input.ndim not in (self._spatial + 1, self._spatial + 2):
            raise ValueError(f"expected {self._spatial + 1}D or {self._spatial + 2}D input (got {input.ndim}D input)")

    def forward(self, input):  # noqa: A002
        self._check_input_dim(input)
        unbatched = input.ndim == self._spatial + 1
        feature_dim = 0 if unbatched else 1
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        x = input.unsqueeze(0) if unbatched else input
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training or not self.track_running_stats,
                          self.momentum if self.momentum is not None else 0.0, self.eps)
        return y.squeeze(0) if unbatched else y


_IN_ARGS = dict(_BN_ARGS)


@layer("instancenorm1d", input_arg="num_features", input_dim=0, args=_IN_ARGS,
       example=Example((2, 3, 4), {"affine": True}, name="InstanceNorm1d(affine)"), onnx=_onnx.instancenorm)
class InstanceNorm1d(_InstanceNorm):
    """Instance norm over ``(N, C, L)`` (or unbatched ``(C, L)``) input: each channel of each sample over ``L``.

    Args:
        num_features: ``C``.
        eps: added to the variance for stability.
        momentum: running-statistics update factor (with ``track_running_stats``); None: never updated.
        affine: learnable per-channel ``weight`` (ones) and ``bias`` (zeros); off by default.
        track_running_stats: keep running statistics (updated in training, used in evaluation).
        bias: (keyword) with ``affine``, whether there is a ``bias``.
    """

    _spatial = 1

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, L)`` per sample."""
        need_rank("instancenorm1d", x, (2,), "(channels, length)")
        return _BatchNorm._inferred(args, x)


@layer("instancenorm2d", input_arg="num_features", input_dim=0, args=_IN_ARGS,
       example=Example((2, 2, 3, 3), {"affine": True}, name="InstanceNorm2d(affine)"), onnx=_onnx.instancenorm)
class InstanceNorm2d(_InstanceNorm):
    """Instance norm over ``(N, C, H, W)`` (or unbatched ``(C, H, W)``) input: each channel of each image.

    Arguments as :class:`InstanceNorm1d`.
    """

    _spatial = 2

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, H, W)`` per sample."""
        need_rank("instancenorm2d", x, (3,), "(channels, height, width)")
        return _BatchNorm._inferred(args, x)
