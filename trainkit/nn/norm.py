"""Batch normalisation: ``BatchNorm1d`` and ``BatchNorm2d`` with running statistics."""
from __future__ import annotations

import math

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import check_device, np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Float, Inferred, Int, Nullable, layer, need_rank
from trainkit.nn import onnx_rules as _onnx

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """Shared implementation; subclasses only check the input rank.

    Training mode normalises with the batch mean and biased variance and
    updates ``running_mean``/``running_var`` (unbiased variance) as
    ``running = (1 - momentum) * running + momentum * batch``; eval mode
    normalises with the running statistics. ``momentum=None`` gives a
    cumulative average over ``num_batches_tracked`` batches.
    """

    _expected = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        check_device(device)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = np_dtype(dtype)
        if affine:
            self.weight = Parameter(np.empty((num_features,), dtype=dt))
            if bias:
                self.bias = Parameter(np.empty((num_features,), dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros((num_features,), dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones((num_features,), dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, batch count 0."""
        if self.track_running_stats:
            self.running_mean._array[...] = 0
            self.running_var._array[...] = 1
            self.num_batches_tracked._array[...] = 0

    def reset_parameters(self) -> None:
        """Reset running statistics; weight 1, bias 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input) -> None:
        raise NotImplementedError

    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"{self._get_name()}: expected {self.num_features} channels in dimension 1, "
                             f"got input of shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked._array += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._array)
        # Batch statistics in training, and also in eval when nothing is tracked.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        bias = self.bias
        if self.weight is not None and bias is None:
            # affine without bias (PyTorch 2.13's bias=False): a constant zero shift.
            bias = Tensor(np.zeros((self.num_features,), dtype=input.dtype))
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    @staticmethod
    def _inferred(args, x) -> Inferred:
        # One multiply-add per element at inference (the affine map folded with the statistics).
        c = x[0]
        params = c * ((1 + int(args["bias"])) if args["affine"] else 0)
        buffers = 2 * c + 1 if args["track_running_stats"] else 0
        return Inferred(tuple(x), macs=math.prod(x), params=params, buffers=buffers)


_BN_ARGS = {"num_features": Int(lo=1), "eps": Float(lo=0, lo_open=True), "momentum": Nullable(Float(0, 1))}


@layer("batchnorm1d", input_arg="num_features", input_dim=0, args=_BN_ARGS, example=Example((4, 3), name="BatchNorm1d(train)"), onnx=_onnx.batchnorm)
class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``.

    Args:
        num_features: ``C``.
        eps: added to the variance for stability (1e-5).
        momentum: running-statistics update factor (0.1); ``None`` = cumulative average.
        affine: learnable ``weight`` (init 1) and ``bias`` (init 0).
        bias: (keyword) with ``affine``, whether there is a ``bias`` (PyTorch 2.13's option).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked`` buffers.
        device: ``None`` or the CPU (trainkit's only device).
        dtype: parameter and buffer dtype (float32 by default).
    """

    def _check_input_dim(self, input) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C,)`` or ``(C, L)`` per sample, statistics per channel ``C``."""
        need_rank("batchnorm1d", x, (1, 2), "(features,) or (channels, length)",
                  " (use batchnorm2d for images)" if len(x) == 3 else "")
        return _BatchNorm._inferred(args, x)


@layer("batchnorm2d", input_arg="num_features", input_dim=0, args=_BN_ARGS,
       example=Example((3, 2, 3, 3), name="BatchNorm2d(train)"), onnx=_onnx.batchnorm)
class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` input, per channel ``C`` (statistics over N, H, W).

    Arguments as :class:`BatchNorm1d`.
    """

    def _check_input_dim(self, input) -> None:
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, H, W)`` per sample, statistics per channel ``C``."""
        need_rank("batchnorm2d", x, (3,), "(channels, height, width)",
                  " (use batchnorm1d for features)" if len(x) in (1, 2) else "")
        return _BatchNorm._inferred(args, x)
