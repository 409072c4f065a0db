"""Functional forms of the layers and losses (``import trainkit.nn.functional as F``).

Signatures, layouts (NCHW; conv weights (out, in, kH, kW)) and semantics are
PyTorch's, so values and gradients agree with it to float rounding.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd.ops import conv as _conv
from ..autograd.ops import elementwise as _ew
from ..autograd.ops import loss as _loss
from ..autograd.ops import norm as _norm
from ..autograd.ops import pool as _pool
from ..autograd.ops import reduce as _rd
from ..autograd.ops.matmul import linear
from ..autograd.random import default_generator
from ..autograd.tensor import Tensor

__all__ = [
    "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "linear", "conv2d",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "dropout", "batch_norm", "cross_entropy",
    "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
]


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    """max(x, 0) elementwise."""
    return _ew.ReLU.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """x where x > 0, else negative_slope * x."""
    return _ew.LeakyReLU.apply(input, negative_slope=negative_slope)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """x * Φ(x) (exact, with erf) or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _ew.GELU.apply(input, approximate=approximate)


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return _ew.Sigmoid.apply(input)


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return _ew.Tanh.apply(input)


def _softmax_dim(ndim: int) -> int:
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None) -> Tensor:  # noqa: A002
    """exp(x) / sum(exp(x)) along ``dim``."""
    return _rd.Softmax.apply(input, dim=_softmax_dim(input.ndim) if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:  # noqa: A002
    """log(softmax(x)) computed stably along ``dim``."""
    return _rd.LogSoftmax.apply(input, dim=_softmax_dim(input.ndim) if dim is None else dim)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:  # noqa: A002
    """2-D cross-correlation of (N, C, H, W) input with (O, C, kH, kW) weights."""
    if input.ndim != 4:
        raise RuntimeError(f"conv2d expects a 4-D (N, C, H, W) input, got shape {tuple(input.shape)}")
    if input.shape[1] != weight.shape[1]:
        raise RuntimeError(f"conv2d: input has {input.shape[1]} channels but the weight expects {weight.shape[1]}")
    if bias is None:
        return _conv.Conv2d.apply(input, weight, stride=stride, padding=padding)
    return _conv.Conv2d.apply(input, weight, bias, stride=stride, padding=padding)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:  # noqa: A002
    """Maximum over kernel_size windows (stride defaults to kernel_size)."""
    k, s, p = _conv.pair(kernel_size), _conv.pair(stride if stride is not None else kernel_size), _conv.pair(padding)
    if k == (2, 2) and s == (2, 2) and p == (0, 0):
        return _pool.MaxPool2x2.apply(input)
    return _pool.MaxPool2d.apply(input, kernel_size=k, stride=s, padding=p)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, count_include_pad: bool = True) -> Tensor:  # noqa: A002
    """Mean over kernel_size windows (stride defaults to kernel_size)."""
    return _pool.AvgPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding,
                                 count_include_pad=count_include_pad)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output size (PyTorch's bin boundaries)."""
    return _pool.AdaptiveAvgPool2d.apply(input, output_size=output_size)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None) -> Tensor:  # noqa: A002
    """In training, zero elements with probability p and scale the rest by 1/(1-p)."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return _norm.Dropout.apply(input, p=p, generator=generator or default_generator())


def _raw(t):
    return None if t is None else (t._array if isinstance(t, Tensor) else np.asarray(t))


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,  # noqa: A002
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise over the batch (and spatial) axes; updates running stats in place when training."""
    if training and input.size(0) * (input.numel() // max(input.size(0) * input.size(1), 1)) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
    inputs = (input,) if weight is None else (input, weight, bias)
    return _norm.BatchNorm.apply(*inputs, running_mean=_raw(running_mean), running_var=_raw(running_var),
                                 training=training, momentum=momentum, eps=eps)


def _check_target(target, nclass_dim_input: Tensor, name: str) -> np.ndarray:
    t = _raw(target)
    if t.dtype.kind == "f" and t.shape == nclass_dim_input.shape:
        return t
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"{name}: expected integer class indices as target, got dtype {t.dtype}")
    return t


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean",  # noqa: A002
                  label_smoothing: float = 0.0) -> Tensor:
    """Log-softmax + negative log-likelihood over dim 1, fused (targets: class indices or probabilities)."""
    return _loss.CrossEntropy.apply(input, target=_check_target(target, input, "cross_entropy"),
                                    weight=_raw(weight), ignore_index=ignore_index, reduction=reduction,
                                    label_smoothing=label_smoothing)


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``."""
    return _loss.NLLLoss.apply(input, target=_check_target(target, input, "nll_loss"), weight=_raw(weight),
                               ignore_index=ignore_index, reduction=reduction)


def _pair_target(input, target, name):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}) in {name}. This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)
    return _ew.promote(input, target)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error."""
    a, b = _pair_target(input, target, "mse_loss")
    return _loss.MSELoss.apply(a, b, reduction=reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error."""
    a, b = _pair_target(input, target, "l1_loss")
    return _loss.L1Loss.apply(a, b, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",  # noqa: A002
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy, computed stably from logits."""
    a, b = _pair_target(input, target, "binary_cross_entropy_with_logits")
    return _loss.BCEWithLogits.apply(a, b, weight=_raw(weight), pos_weight=_raw(pos_weight), reduction=reduction)
