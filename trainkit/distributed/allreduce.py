"""The gradient Allreduce: every rank's gradients combined into the global batch's, in one call per step.

This is the part of ChainerMN's multi-node optimizer that matters here: it
runs between ``loss.backward()`` and ``optimizer.step()``, so the optimizer
(and gradient clipping before it) sees the gradient a single process computes
on the whole global batch, and every rank updates its copy of the weights
identically.

How the global gradient comes out exactly. A mean-reduced loss on the global
batch is ``L = sum_r d_r * L_r / D``: ``L_r`` is rank r's loss (the mean over
its rows), ``d_r`` its denominator (its number of rows; the sum of the target
class weights, or of the non-ignored targets, for a weighted cross entropy)
and ``D`` the sum of the ``d_r``. Each rank back-propagates ``d_r * L_r``; the
gradients, ``d_r``, ``d_r * L_r`` and a stop flag are summed in ONE Allreduce
over one flat buffer, and the sums divided by ``D``. Because back-propagation
is linear in the loss, this holds through sync batch norm too (whose own
reductions then see the global batch's ``d_r``-scaled gradients). A
sum-reduced loss is simply summed.

Batch-norm running statistics (of layers that are not synchronised) travel
in the same buffer, weighted by each rank's share of the batch: the running
mean then equals a single process's exactly (the running variance is the
mean of the ranks' variances, which leaves out the spread between the ranks'
means - the documented per-rank batch-norm caveat), and every rank keeps the
same statistics, so evaluation and checkpoints do not depend on the rank.
"""
from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor
from ..nn.loss import CrossEntropyLoss, NLLLoss
from ..nn.norm import _BatchNorm

__all__ = ["GradientAllreduce", "loss_weight"]


def loss_weight(loss_fn, targets: np.ndarray) -> tuple[float, bool]:
    """``(d, mean)``: rank's denominator ``d`` of a mean-reduced loss (see the module docstring), and whether
    the loss is a mean (False for ``reduction='sum'``, whose rank losses simply add up)."""
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction == "sum":
        return 1.0, False
    if isinstance(loss_fn, (CrossEntropyLoss, NLLLoss)) and targets.dtype.kind in "iu":
        t = targets.reshape(-1)
        keep = t != loss_fn.ignore_index
        weight = getattr(loss_fn, "weight", None)
        if weight is None:
            return float(np.count_nonzero(keep)), True
        w = weight._array if isinstance(weight, Tensor) else np.asarray(weight)
        return float(w[t[keep]].astype(np.float64).sum()), True
    # Losses that average over samples, or over elements (each sample has as many): rows are proportional.
    return float(targets.shape[0]), True


class GradientAllreduce:
    """Sums gradients (and unsynchronised batch-norm statistics) over the ranks in one Allreduce.

    Args:
        model: the model whose batch-norm layers' running statistics are kept equal on all ranks.
        params: the parameters the optimizer updates (the same list, in the same order, on every rank).
        comm: the :class:`~trainkit.distributed.communicator.Communicator`.
    """

    def __init__(self, model, params: list, comm):
        self.model, self.params, self.comm = model, list(params), comm
        dtypes = [p._array.dtype for p in self.params] or [np.dtype(np.float32)]
        self.dtype = np.result_type(*dtypes)
        self.sizes = [p._array.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self._buffer = np.zeros(0, dtype=self.dtype)

    def _norm_layers(self) -> list:
        # Layers that updated their running statistics this step (same on every rank: same model, same mode).
        from .sync_batchnorm import SyncBatchNorm

        return [m for m in self.model.modules()
                if isinstance(m, _BatchNorm) and not isinstance(m, SyncBatchNorm) and m.training
                and m.running_mean is not None]

    def reduce(self, *, denominator: float, loss_sum: float, rows_fraction: float, stop: bool,
               mean: bool = True) -> tuple[float, bool]:
        """Combine this step's gradients; returns ``(global loss value, stop requested on any rank)``.

        Args:
            denominator: this rank's ``d_r`` (0 on a padding step).
            loss_sum: this rank's ``d_r * L_r`` (0 on a padding step).
            rows_fraction: this rank's rows / the global batch's rows (weight of its batch-norm statistics).
            stop: a signal asked this rank to stop.
            mean: the loss is a mean (divide by the summed denominators) rather than a sum.
        """
        norms = self._norm_layers()
        n_grad = int(self.offsets[-1])
        n_params = len(self.params)
        n_stats = sum(2 * m.num_features for m in norms)
        total = n_grad + n_params + n_stats + 3
        if self._buffer.size < total:
            self._buffer = np.zeros(total, dtype=self.dtype)
        buf = self._buffer[:total]
        buf[n_grad:] = 0
        has = buf[n_grad:n_grad + n_params]  # which parameters got a gradient on this rank
        for i, (p, a, b) in enumerate(zip(self.params, self.offsets[:-1], self.offsets[1:])):
            if p.grad is None:
                buf[a:b] = 0
            else:
                buf[a:b] = p.grad._array.reshape(-1)
                has[i] = 1
        at = n_grad + n_params
        for m in norms:
            c = m.num_features
            np.multiply(m.running_mean._array, rows_fraction, out=buf[at:at + c], casting="unsafe")
            np.multiply(m.running_var._array, rows_fraction, out=buf[at + c:at + 2 * c], casting="unsafe")
            at += 2 * c
        buf[at:at + 3] = (loss_sum, denominator, 1.0 if stop else 0.0)

        self.comm.allreduce_(buf)

        value_sum, denom, stops = (float(v) for v in buf[at:at + 3])
        divisor = denom if mean else 1.0
        at = n_grad + n_params
        for m in norms:
            c = m.num_features
            m.running_mean._array[...] = buf[at:at + c]
            m.running_var._array[...] = buf[at + c:at + 2 * c]
            at += 2 * c
        for i, (p, a, b) in enumerate(zip(self.params, self.offsets[:-1], self.offsets[1:])):
            if has[i] == 0:
                p.grad = None
                continue
            g = buf[a:b].reshape(p._array.shape)
            g = g / np.asarray(divisor, dtype=g.dtype) if divisor != 1.0 else g.copy()
            p.grad = Tensor(g.astype(p._array.dtype, copy=False))
        value = value_sum / divisor if divisor else float("nan")
        return value, stops > 0
