"""Synchronised batch norm: statistics over the global batch, as PyTorch's ``nn.SyncBatchNorm``.

With per-rank batch norm (the default) each rank normalises its share of
the batch with that share's mean and variance, so a 2-rank run with global
batch 32 normalises as a single process with batch 16 would: the results
differ from a single process's, and more so as the shares shrink. With
``train.sync_batchnorm: true`` every batch-norm layer becomes a
:class:`SyncBatchNorm`, which in training

* forward: gathers each rank's element count, mean and sum of squared
  deviations (one Allgather of ``2C + 1`` numbers per layer) and combines
  them in float64 in rank order (Chan's parallel variance), so every rank
  normalises with the global batch's mean and biased variance and updates
  the running statistics with its unbiased variance, as a single process;
* backward: sums ``sum(dy)`` and ``sum(dy * xhat)`` per channel over the ranks
  (one Allreduce of ``2C`` numbers per layer) and forms the input gradient
  of the global batch.

Evaluation uses the running statistics and talks to no one. Without a
communicator (or with one rank) it is plain batch norm. ``state_dict`` keys
are batch norm's, so checkpoints move freely between the two.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Op
from ..autograd.tensor import Tensor
from ..nn.module import Module
from ..nn.norm import _BatchNorm

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


class _SyncBatchNormOp(Op):
    """Batch norm whose batch statistics and input gradient span every rank's rows (training only)."""

    def __init__(self, comm, running_mean=None, running_var=None, momentum=0.1, eps=1e-5, padding=False):
        self.comm, self.rm, self.rv = comm, running_mean, running_var
        self.momentum, self.eps, self.padding = momentum, eps, padding

    def forward(self, x, weight=None, bias=None):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        c = x.shape[1]
        count = 0 if self.padding else x.size // c
        local = np.zeros((2 * c + 1,), dtype=np.float64)
        if count:
            x64 = x.astype(np.float64)
            mean_r = x64.mean(axis=axes)
            local[:c] = mean_r
            local[c:2 * c] = ((x64 - mean_r.reshape(shape)) ** 2).sum(axis=axes)
            local[2 * c] = count
        every = self.comm.allgather(local)
        counts = every[:, 2 * c]
        n = counts.sum()
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {int(n)} over all ranks "
                             f"(input size {tuple(x.shape)} on this rank)")
        # Chan et al.'s combination of per-rank moments, in rank order: the same numbers on every rank.
        mean = (every[:, :c] * counts[:, None]).sum(axis=0) / n
        m2 = (every[:, c:2 * c] + counts[:, None] * (every[:, :c] - mean) ** 2).sum(axis=0)
        var = m2 / n
        if self.rm is not None:
            m = self.momentum
            self.rm *= 1 - m
            self.rm += (m * mean).astype(self.rm.dtype)
            self.rv *= 1 - m
            self.rv += (m * var * n / (n - 1)).astype(self.rv.dtype)
        mean32 = mean.astype(x.dtype)
        invstd = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = (x - mean32.reshape(shape)) * invstd.reshape(shape)
        self.xhat, self.invstd, self.axes, self.bshape, self.weight, self.n = xhat, invstd, axes, shape, weight, n
        if weight is None:
            return xhat
        return xhat * weight.reshape(shape) + bias.reshape(shape)

    def backward(self, gy):
        xhat, axes, shape = self.xhat, self.axes, self.bshape
        nparams = len(self.needs) - 1
        gw = (gy * xhat).sum(axis=axes) if nparams and self.needs[1] else None
        gb = gy.sum(axis=axes) if nparams and self.needs[2] else None
        gxhat = gy if self.weight is None else gy * self.weight.reshape(shape)
        c = xhat.shape[1]
        sums = np.empty((2 * c,), dtype=np.float64)
        sums[:c] = gxhat.sum(axis=axes)
        sums[c:] = (gxhat * xhat).sum(axis=axes)
        if self.padding:  # placeholder rows: the loss gives them no gradient; keep rounding out too
            sums[:] = 0
        self.comm.allreduce_(sums, account=False)
        s1 = sums[:c].astype(xhat.dtype).reshape(shape)
        s2 = sums[c:].astype(xhat.dtype).reshape(shape)
        if self.padding:  # placeholder rows are not in the batch: no gradient reaches them
            gx = np.zeros_like(gxhat)
        else:
            gx = (gxhat - (s1 + xhat * s2) / xhat.dtype.type(self.n)) * self.invstd.reshape(shape)
        return (gx, gw, gb)[: 1 + nparams]


class SyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of a data-parallel job (PyTorch's ``nn.SyncBatchNorm``).

    Args:
        num_features, eps, momentum, affine, track_running_stats: as
            :class:`~trainkit.nn.BatchNorm2d`; any input of 2 or more
            dimensions ``(N, C, ...)`` is accepted.
        comm: the job's communicator (None: behave as plain batch norm).

    ``padding`` (set by the trainer per step) marks a rank that holds no row
    of the current batch: it takes part in the reductions with nothing.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, comm=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        object.__setattr__(self, "comm", comm)
        object.__setattr__(self, "padding", False)

    def _check_input_dim(self, input) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    def forward(self, input):
        comm = self.comm
        if comm is None or comm.size == 1 or not self.training:
            return super().forward(input)
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"{self._get_name()}: expected {self.num_features} channels in dimension 1, "
                             f"got input of shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked._array += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._array)
        bias = self.bias
        if self.weight is not None and bias is None:
            bias = Tensor(np.zeros((self.num_features,), dtype=input.dtype))
        inputs = (input,) if self.weight is None else (input, self.weight, bias)
        rm = self.running_mean._array if self.running_mean is not None else None
        rv = self.running_var._array if self.running_var is not None else None
        return _SyncBatchNormOp.apply(*inputs, comm=comm, running_mean=rm, running_var=rv, momentum=factor,
                                      eps=self.eps, padding=self.padding)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, comm=None) -> Module:
        """``module`` with every batch-norm layer replaced by a :class:`SyncBatchNorm` sharing its
        parameters and buffers (as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``)."""
        return convert_sync_batchnorm(module, comm)


def convert_sync_batchnorm(module: Module, comm=None) -> Module:
    """See :meth:`SyncBatchNorm.convert_sync_batchnorm`; the same Parameter objects are kept, so an
    optimizer built on the model keeps working."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, comm=comm)
        for name in ("weight", "bias"):
            if name in module._parameters:
                out.register_parameter(name, module._parameters[name])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            out.register_buffer(name, module._buffers.get(name))
        out.train(module.training)
        return out
    for name, child in list(module._modules.items()):
        if child is not None:
            converted = convert_sync_batchnorm(child, comm)
            if converted is not child:
                module._modules[name] = converted
    return module
