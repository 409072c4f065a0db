"""The trainer of one rank: the single-process :class:`~trainkit.train.trainer.Trainer` with its data,
step, metrics and writes made data-parallel.

What changes against a single process, and nothing else:

* data: the training loader hands out this rank's rows of every global batch
  (:class:`~.sampler.ShardedLoader`), evaluation runs whole batches
  ``rank, rank + size, ...`` (:class:`~.sampler.BatchShardLoader`);
* step: after ``backward`` one Allreduce (:class:`~.allreduce.GradientAllreduce`)
  makes every rank's gradient the global batch's, then clipping and the
  optimizer step run as in a single process, identically on every rank;
  the same call agrees on the loss (divergence is decided on the global
  loss) and on stopping (a signal on any rank stops every rank after the
  same step);
* metrics: loss sums, counts and confusion matrices are summed over the
  ranks at the end of an epoch (and of an evaluation), so the table is a
  single process's;
* writes: only rank 0 writes checkpoints; they hold the global state
  (weights, optimizer, loader position, partial-epoch metrics), so a run
  resumes with any number of ranks.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..autograd.random import batch_share
from ..autograd.tensor import Tensor
from ..errors import DivergedError
from ..nn.utils import clip_grad_norm_
from ..train.evaluate import align_target, evaluate
from ..train.metrics import make_meter
from ..train.trainer import Trainer
from ..utils.atomic import StorageError
from .allreduce import GradientAllreduce, loss_weight
from .sampler import BatchShardLoader, ShardedLoader
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = ["DistributedTrainer", "reduce_meter"]


def reduce_meter(meter, comm, flag: float = 0.0) -> float:
    """Sum a meter's state over the ranks in place; ``flag`` rides along (returns its sum)."""
    state = meter.state()
    keys = sorted(state)
    parts = [np.asarray(state[k], dtype=np.float64).reshape(-1) for k in keys]
    buf = np.concatenate(parts + [np.array([flag], dtype=np.float64)])
    comm.allreduce_(buf, account=False)
    out, at = {}, 0
    for key, part in zip(keys, parts):
        values = buf[at:at + part.size]
        at += part.size
        orig = state[key]
        if isinstance(orig, (list, tuple, np.ndarray)):
            arr = np.asarray(orig)
            kind = np.rint(values).astype(np.int64) if arr.dtype.kind in "iub" else values
            out[key] = kind.reshape(arr.shape).tolist()
        elif isinstance(orig, (int, np.integer)) and not isinstance(orig, bool):
            out[key] = int(round(float(values[0])))
        else:
            out[key] = float(values[0])
    meter.load(out)
    return float(buf[-1])


class DistributedTrainer(Trainer):
    """A :class:`~trainkit.train.trainer.Trainer` on one rank of a data-parallel job (see the module docstring).

    Args:
        parts: the prepared run (every rank prepares the same config).
        run: rank 0's :class:`~trainkit.train.run.Run`; on the other ranks a run that writes nothing.
        comm: the job's :class:`~trainkit.distributed.communicator.Communicator`.
    """

    def __init__(self, parts, run, comm):
        super().__init__(parts, run)
        self.comm = comm
        self.train_loader = ShardedLoader(self.train_loader, comm.rank, comm.size)
        if self.eval_loader is not None:
            self.eval_loader = BatchShardLoader(self.eval_loader, comm.rank, comm.size)
        self.synced_norm = bool(getattr(self.spec, "sync_batchnorm", False)) and comm.size > 1
        if self.synced_norm:
            self.model = convert_sync_batchnorm(self.model, comm)
        self._sync_layers = [m for m in self.model.modules() if isinstance(m, SyncBatchNorm)]
        self.reducer = GradientAllreduce(self.model, [p for p in self.model.parameters() if p.requires_grad], comm)
        self._agreed_stop = False
        if comm.rank != 0:  # callbacks (diagnostics) observe and write on rank 0 only; their state rides there
            self.callbacks = []
        self.step_seconds = 0.0  # forward, backward, Allreduce and update of every step

    # ------------------------------------------------------------------ state on every rank
    def state_payload(self):
        """The training state rank 0 sends to the others before training (a checkpoint's three parts)."""
        return self._checkpoint_payload(self.state.in_epoch)

    def load_shared_state(self, payload, source) -> None:
        """Take rank 0's state; the partial epoch's metric sums stay on rank 0 (they are summed over ranks)."""
        self.load_payload(*payload, source=source)
        st = self.state
        if st.in_epoch is not None and self.comm.rank != 0:
            st.in_epoch = {**st.in_epoch, "meter": make_meter(self.task, self.num_classes, self.meter_options).state()}

    def save(self, which: str, in_epoch: dict | None = None) -> None:
        """Rank 0 writes; the state is the same on every rank."""
        if self.comm.rank == 0:
            super().save(which, in_epoch)

    # ------------------------------------------------------------------ the step
    def _train_step(self, x, y, epoch: int, params: list, grad_clip) -> tuple:
        t0 = time.perf_counter()
        share = self.train_loader.share
        rows = share.fetched()
        for m in self._sync_layers:
            m.padding = share.padding
        with batch_share(share.total, rows.start, rows.stop):
            out = self.model(x)
        y = align_target(out, y)
        opt = self.optimizer
        opt.zero_grad()
        if share.padding:
            d, mean = loss_weight(self.loss_fn, y._array[:0])
            d, value_r = 0.0, 0.0
        else:
            loss = self.loss_fn(out, y)
            d, mean = loss_weight(self.loss_fn, y._array)
            value_r = loss.item() if d else 0.0
        if d:
            # d_r * L_r (or L_r for a summed loss): the global gradient is the sum over ranks / sum of d_r
            scale = d if mean else 1.0
            loss.backward(Tensor(np.asarray(scale, dtype=loss._array.dtype)))
        else:  # no row counts here: take part in every reduction with a zero gradient
            (out.sum() * 0.0).backward()
        value, stop = self.reducer.reduce(denominator=d, loss_sum=value_r * d if mean else value_r,
                                          rows_fraction=share.rows / share.total,
                                          stop=self._stop_signal is not None, mean=mean)
        self._agreed_stop = self._agreed_stop or stop
        if not math.isfinite(value):
            raise DivergedError(self._diverged_message(epoch, value))
        self._after_backward()  # rank 0's callbacks see the averaged (global) gradients
        if grad_clip:
            clip_grad_norm_(params, grad_clip)
        opt.step()
        self.step_seconds += time.perf_counter() - t0
        keep = slice(0, 0) if share.padding else slice(None)
        return value, out._array[keep], y._array[keep]

    def _images_in(self, x) -> int:
        return self.train_loader.share.total

    def _stop_requested(self) -> bool:
        return self._agreed_stop

    # ------------------------------------------------------------------ metrics
    def _train_epoch(self, epoch: int):
        row, meters = super()._train_epoch(epoch)
        # Rank 0's row must hold every rank's samples; a signal that came after the last step is agreed here.
        flag = reduce_meter(meters["train"], self.comm, 1.0 if self._stop_signal is not None else 0.0)
        self._agreed_stop = self._agreed_stop or flag > 0
        row = {"epoch": epoch, **meters["train"].epoch_metrics("train")}
        return row, meters

    def _evaluate(self, loader):
        meter = evaluate(self.model, loader, self.loss_fn, self.task, self.num_classes, self.meter_options,
                         getattr(self.bundle, "tta", "none"))
        reduce_meter(meter, self.comm)
        return meter

    def _interrupt(self, epoch, meter, seconds):
        reduce_meter(meter, self.comm)
        super()._interrupt(epoch, meter, seconds)

    def fit(self):
        """Train as :meth:`Trainer.fit`; rank 0 then records the Allreduce's share of the step time."""
        try:
            return super().fit()
        finally:
            if self.comm.rank == 0:
                self._record_traffic()

    def traffic(self) -> dict:
        """This rank's gradient Allreduce: calls, seconds (waiting for the other ranks included), share of
        the step time, and the floats each call carries."""
        comm = self.comm
        share = comm.allreduce_seconds / self.step_seconds if self.step_seconds else None
        return {"allreduce_calls": comm.allreduce_calls, "allreduce_s": round(comm.allreduce_seconds, 4),
                "step_s": round(self.step_seconds, 4),
                "allreduce_share": round(share, 5) if share is not None else None,
                "floats_per_call": int(self.reducer.offsets[-1])}

    def _record_traffic(self) -> None:
        t = self.traffic()
        if not t["allreduce_calls"]:
            return
        try:
            info = self.run.info.data.get("distributed") if getattr(self.run, "info", None) else None
            self.run.update(distributed={**(info or {}), **t})
            self.log.print(f"allreduce: {t['allreduce_calls']} steps, {t['allreduce_s']:.2f} s of "
                           f"{t['step_s']:.1f} s of steps ({100 * t['allreduce_share']:.1f}%), "
                           f"{t['floats_per_call']:,} gradients per call", highlight=False)
        except (StorageError, OSError):
            pass  # a report line is not worth hiding the reason training stopped
