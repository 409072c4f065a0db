"""Functional forms of the layers and losses (``import trainkit.nn.functional as F``).

Signatures, layouts (NCHW; conv weights (out, in, kH, kW)) and semantics are
PyTorch's, so values and gradients agree with it to float rounding.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd.ops import activation as _act
from ..autograd.ops import conv as _conv
from ..autograd.ops import elementwise as _ew
from ..autograd.ops import index as _index
from ..autograd.ops import layer_norm as _ln
from ..autograd.ops import layout as _layout
from ..autograd.ops import linalg as _linalg
from ..autograd.ops import loss as _loss
from ..autograd.ops import norm as _norm
from ..autograd.ops import pool as _pool
from ..autograd.ops import reduce as _rd
from ..autograd.ops.matmul import linear
from ..autograd.random import default_generator
from ..autograd.tensor import Tensor
from ._functional_loss import _pair_target

__all__ = [
    "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "linear", "conv2d",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "dropout", "dropout1d", "dropout2d", "dropout3d", "batch_norm", "cross_entropy",
    "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
    # activations
    "silu", "elu", "selu", "celu", "softplus", "mish", "hardswish", "hardtanh", "relu6", "prelu",
    # layers and utilities
    "conv1d", "embedding", "layer_norm", "normalize", "one_hot", "pad", "interpolate",
    "cosine_similarity", "pairwise_distance", "scaled_dot_product_attention", "multi_head_attention_forward",
    "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d", "adaptive_max_pool2d",
    # losses
    "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "kl_div", "cosine_embedding_loss",
    "margin_ranking_loss", "triplet_margin_loss",
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


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,  # noqa: A002
           groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) (or unbatched (C, H, W)) input with (O, C/groups, kH, kW) weights.

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'`` (stride 1; an odd total pads one more on the
    right/bottom, as PyTorch does). ``dilation`` and ``groups`` run on a second code path
    (:mod:`trainkit.autograd.ops.conv_general`); the plain case keeps the fast one.
    """
    if input.ndim == 3:
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    if input.ndim != 4:
        raise RuntimeError(f"conv2d expects a 4-D (N, C, H, W) input, got shape {tuple(input.shape)}")
    d = _conv.pair(dilation)
    if isinstance(padding, str):
        input, padding = _same_padding(input, weight, stride, padding, d)
    if d == (1, 1) and groups == 1:
        if input.shape[1] != weight.shape[1]:
            raise RuntimeError(f"conv2d: input has {input.shape[1]} channels but the weight expects "
                               f"{weight.shape[1]}")
        if bias is None:
            return _conv.Conv2d.apply(input, weight, stride=stride, padding=padding)
        return _conv.Conv2d.apply(input, weight, bias, stride=stride, padding=padding)
    from trainkit.nn._functional_conv import grouped_conv2d
    return grouped_conv2d(input, weight, bias, stride, padding, d, groups)


def _same_padding(input: Tensor, weight: Tensor, stride, padding: str, dilation: tuple):
    """``'valid'``/``'same'`` as an explicit padding; an odd total pads the input's far side by one first."""
    if padding not in ("valid", "same"):
        raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    if padding == "valid":
        return input, (0, 0)
    if _conv.pair(stride) != (1, 1):
        raise ValueError("padding='same' is not supported for strided convolutions")
    totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    extra = [t % 2 for t in totals]
    if any(extra):
        input = _layout.constant_pad(input, (0, extra[1], 0, extra[0]))
    return input, (totals[0] // 2, totals[1] // 2)


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


def _feature_dropout(input: Tensor, p: float, training: bool, generator) -> Tensor:  # noqa: A002
    """Zero whole channels: one draw per (sample, channel), broadcast over the remaining dimensions."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    rng = generator or default_generator()
    keep = rng.random(shape, dtype=np.float32) >= p
    scale = keep * np.asarray(0.0 if p == 1 else 1.0 / (1.0 - p), input.dtype)
    return input * Tensor(scale.astype(input.dtype, copy=False))


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,  # noqa: A002
              generator=None) -> Tensor:
    """Channel dropout of ``(N, C, L)`` or unbatched ``(C, L)`` input: each channel is kept whole
    (scaled by 1/(1-p)) or zeroed, with probability ``p``."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, "
                           "a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if input.ndim == 2 and training and p != 0:
        return _feature_dropout(input.unsqueeze(0), p, training, generator).squeeze(0)
    return _feature_dropout(input, p, training, generator)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,  # noqa: A002
              generator=None) -> Tensor:
    """Channel dropout of ``(N, C, H, W)`` input, as torch's ``dropout2d``.

    Like torch, other ranks are accepted with a warning and keep torch's historical meaning: a 3-D
    input is taken as ``(N, C, L)``, and a 2-D ``(N, C)`` input gets one draw per element (plain
    dropout), which is what ``nn.Dropout2d`` after an LSTM's last output does.
    """
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
                      "result in an error in a future release. To retain the behavior and silence this warning, "
                      "please use dropout instead. Note that dropout2d exists to provide channel-wise dropout on "
                      "inputs with 2 spatial dimensions, a channel dimension, and an optional batch dimension "
                      "(i.e. 3D or 4D inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, generator)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,  # noqa: A002
              generator=None) -> Tensor:
    """Channel dropout of ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` input."""
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and will "
                      "result in an error in a future release. To retain the behavior and silence this warning, "
                      "please use dropout instead. Note that dropout3d exists to provide channel-wise dropout on "
                      "inputs with 3 spatial dimensions, a channel dimension, and an optional batch dimension "
                      "(i.e. 4D or 5D inputs).", stacklevel=2)
    if input.ndim == 4 and training and p != 0:
        return _feature_dropout(input.unsqueeze(0), p, training, generator).squeeze(0)
    return _feature_dropout(input, p, training, generator)


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


# ---------------------------------------------------------------------------------------------- activations
def glu(input: Tensor, dim: int = -1) -> Tensor:  # noqa: A002
    """Gated linear unit: ``a * sigmoid(b)`` for the two halves ``a``, ``b`` of ``input`` along ``dim``."""
    size = input.shape[dim]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} is size {size}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * sigmoid(x)`` (also called swish)."""
    return _act.SiLU.apply(input)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)``."""
    return _act.ELU.apply(input, alpha=alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``scale * elu(x, alpha)`` with the self-normalising constants (alpha 1.6733, scale 1.0507)."""
    return _act.ELU.apply(input, alpha=_act.SELU_ALPHA, scale=_act.SELU_SCALE)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` for x > 0, else ``alpha * (exp(x / alpha) - 1)``."""
    if alpha == 0:
        raise ValueError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _act.ELU.apply(input, alpha=alpha, input_scale=1.0 / alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold``."""
    return _act.Softplus.apply(input, beta=beta, threshold=threshold)


def mish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * tanh(softplus(x))``."""
    return _act.Mish.apply(input)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * relu6(x + 3) / 6``."""
    return _act.Hardswish.apply(input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` clipped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _act.Hardtanh.apply(input, min_val=min_val, max_val=max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``min(max(x, 0), 6)``."""
    return _act.Hardtanh.apply(input, min_val=0.0, max_val=6.0)


def prelu(input: Tensor, weight: Tensor) -> Tensor:  # noqa: A002
    """``x`` for x > 0, else ``weight * x``; ``weight`` has one slope, or one per channel (dimension 1)."""
    n = weight.numel()
    if n != 1 and (input.ndim < 2 or input.shape[1] != n):
        channels = input.shape[1] if input.ndim >= 2 else 1
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = {n} "
                           f"and channel size = {channels}.")
    return _act.PReLU.apply(*_ew.promote(input, weight))


# ---------------------------------------------------------------------------------------------- layers
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,  # noqa: A002
           groups: int = 1) -> Tensor:
    """1-D cross-correlation of (N, C, L) input (or unbatched (C, L)) with (O, C/groups, k) weights.

    Runs the 2-D convolution on a height-1 view, which is exact (the same
    products and sums). ``padding`` is an int, ``'valid'`` or ``'same'``
    (stride 1; an odd total pads one more on the right, as PyTorch does).
    """
    s = stride[0] if isinstance(stride, (tuple, list)) else stride
    d = dilation[0] if isinstance(dilation, (tuple, list)) else dilation
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    if x.ndim != 3:
        raise RuntimeError(f"conv1d expects a 3-D (N, C, L) or 2-D (C, L) input, got shape {tuple(input.shape)}")
    if x.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"conv1d: input has {x.shape[1]} channels but the weight expects "
                           f"{weight.shape[1] * groups}")
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if padding == "same" and s != 1:
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = d * (weight.shape[2] - 1) if padding == "same" else 0
        if total % 2:
            x = _layout.constant_pad(x, (total // 2, total - total // 2))
            total = 0
        p = total // 2
    else:
        p = padding[0] if isinstance(padding, (tuple, list)) else padding
    y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, s), padding=(0, p), dilation=(1, d),
               groups=groups).squeeze(2)
    return y.squeeze(0) if unbatched else y


def embedding(input, weight: Tensor, padding_idx: int | None = None, max_norm=None, norm_type: float = 2.0,  # noqa: A002
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer indices ``input`` (any shape).

    The row ``padding_idx`` receives no gradient. ``max_norm`` and
    ``scale_grad_by_freq`` are not supported (an error says so); ``sparse`` has no
    meaning on a dense numpy engine and is ignored.
    """
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding: max_norm and scale_grad_by_freq are not supported by trainkit")
    return _index.embedding(input, weight, padding_idx)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dimensions, then scale by weight and shift by bias."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape [*, "
                           f"{', '.join(map(str, shape))}], but got input of size{list(input.shape)}")
    params = []
    if weight is not None or bias is not None:
        params.append(weight if weight is not None else Tensor(np.ones(shape, input.dtype)))
    if bias is not None:
        params.append(bias)
    return _ln.LayerNorm.apply(input, *params, ndim=len(shape), eps=eps)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:  # noqa: A002
    """``input / max(||input||_p, eps)`` along ``dim``."""
    denom = _linalg.norm(input, p, dim, keepdim=True)
    return input / _ew.clamp(denom, min=eps)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot vectors of the class indices in ``tensor`` (a new last dimension)."""
    idx = tensor._array if isinstance(tensor, Tensor) else np.asarray(tensor)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if not idx.size:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    elif idx.size and idx.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(idx.shape + (num_classes,), np.int64)
    np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)


from trainkit.nn._functional_distance import cosine_similarity, pairwise_distance  # noqa: E402,F401
from trainkit.nn._functional_loss import (  # noqa: E402,F401
    binary_cross_entropy, cosine_embedding_loss, huber_loss, kl_div, margin_ranking_loss, smooth_l1_loss,
    triplet_margin_loss,
)
from trainkit.nn._functional_vision import interpolate, pad  # noqa: E402,F401
from trainkit.nn._functional_conv import (  # noqa: E402,F401
    adaptive_max_pool2d, avg_pool1d, conv_transpose1d, conv_transpose2d, max_pool1d,
)
from trainkit.nn._functional_attention import (  # noqa: E402,F401
    multi_head_attention_forward, scaled_dot_product_attention,
)
