"""The training loop: epochs, evaluation, metrics rows, checkpoints, exact resume, signals, divergence.

A checkpoint holds everything the loop's future depends on: weights, optimizer
and scheduler state, the global RNG (dropout), the loader's generator and
position (so an interrupted epoch continues with the same batches and
augmentations), the partial epoch's metric accumulators, the step counter, the
best metric and early-stopping counters. Resuming from it therefore gives the
same weights and metrics as a run that was never stopped.

The trainer reads the typed config (``config.resolved``) and writes through a
:class:`~trainkit.train.run.Run` (metrics rows, ``run.json`` progress,
console output, checkpoints in its directory). Metric names, the metric that
picks the best checkpoint and which metrics are logged come from the one
table in :mod:`trainkit.registry.tasks`.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..autograd import random as tkrandom
from ..errors import CheckpointError, DivergedError
from ..nn.utils import clip_grad_norm_
from ..registry.tasks import TASKS, find_metric
from .carry import carry_hidden
from .callbacks import default_callbacks
from .checkpoint import check_state_fits, load_checkpoint, save_checkpoint
from .evaluate import align_target, evaluate
from .metrics import make_meter
from .state import check_loop_state, nonfinite

CHECKPOINT_FORMAT = "trainkit-train-state/1"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped training (exit code 130)."""

    exit_code = 130


@dataclass
class LoopState:
    """Counters the loop carries between epochs (and across a resume)."""

    epoch: int = 0                 # completed epochs
    step: int = 0                  # optimizer steps taken
    best: dict | None = None       # {"name", "value", "epoch"}
    es_best: float | None = None   # early stopping: best watched value
    es_wait: int = 0
    in_epoch: dict | None = None   # partial epoch (interrupt checkpoint): meter state, seconds
    history: list = field(default_factory=list)


class Trainer:
    """Runs the epochs of one run directory; see the module docstring for what it guarantees.

    Args:
        parts: the prepared config, data, model, loss, optimizer and scheduler
            (:class:`~trainkit.assemble.prepare.Prepared`).
        run: the run directory it writes to (:class:`~trainkit.train.run.Run`).
    """

    def __init__(self, parts, run):
        self.run = run
        self.spec = parts.config.resolved.train
        self.model, self.loss_fn = parts.model, parts.loss_fn
        self.optimizer, self.scheduler, self.bundle = parts.optimizer, parts.scheduler, parts.bundle
        self.config_hash = parts.fingerprint
        self.task, self.num_classes = self.bundle.task, self.bundle.num_classes
        # a language model's meter needs to know whether its tokens are characters (bits per character)
        self.meter_options = getattr(self.bundle, "meter_options", None)
        self.train_loader = self.bundle.train_loader(seed=parts.config.resolved.seed)
        self.eval_split = "val" if self.bundle.val is not None else ("test" if self.bundle.test is not None else None)
        self.eval_loader = self.bundle.eval_loader(self.eval_split) if self.eval_split else None
        self.state = LoopState()
        self._stop_signal: int | None = None
        #: The checkpoint in ``checkpoints/last`` that is known to be good (finite, written by this
        #: run): "epoch 3", "epoch 3 (mid-epoch 4)", or None before the first one.
        self.good_checkpoint: str | None = None
        self.callbacks = default_callbacks(self)  # see train/callbacks.py; their state rides in checkpoints
        #: Set by a callback to end training after the current epoch (Keras' ``stop_training``).
        self.should_stop = False

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self.run.path

    @property
    def log(self):
        """Console and ``train.log`` output."""
        return self.run.log

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_payload(self, in_epoch: dict | None = None):
        # save_checkpoint makes the arrays dense itself (np.ascontiguousarray would turn 0-d ones 1-d)
        model_state = {k: v._array for k, v in self.model.state_dict().items()}
        arrays = {f"optimizer.{k}": v for k, v in self.optimizer.state_arrays().items()}
        st = self.state
        meta = {
            "format": CHECKPOINT_FORMAT,
            "epoch": st.epoch, "step": st.step, "best": st.best,
            "early_stopping": {"best": st.es_best, "wait": st.es_wait},
            "in_epoch": in_epoch,
            "optimizer": self.optimizer.state_json(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": {"global": tkrandom.get_rng_state(), "train_loader": self.train_loader.state_dict()},
            "config_hash": self.config_hash,
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
        }
        return model_state, arrays, meta

    def save(self, which: str, in_epoch: dict | None = None) -> None:
        """Write checkpoint ``which`` (``last`` or ``best``) of the current state.

        Raises:
            DivergedError: a weight or optimizer buffer is NaN or infinite; nothing is written, so
                the checkpoints on disk stay the last good ones.
        """
        model_state, arrays, meta = self._checkpoint_payload(in_epoch)
        bad = nonfinite(model_state) + nonfinite(arrays)
        if bad:
            raise DivergedError(self._nonfinite_message(bad))
        save_checkpoint(self.run_dir / "checkpoints" / which, model_state, arrays, meta)
        self.run.checkpointed()
        if which == "last":
            st = self.state
            self.good_checkpoint = f"epoch {st.epoch}" + (f" (mid-epoch {st.epoch + 1})" if in_epoch else "")

    def restore(self, directory: Path) -> dict:
        """Load a full training state from a checkpoint directory (for --resume)."""
        model_state, arrays, meta = load_checkpoint(directory)
        self.load_payload(model_state, arrays, meta, Path(directory))
        return meta

    def load_payload(self, model_state: dict, arrays: dict, meta: dict, source: Path) -> None:
        """Apply a training state (a checkpoint's three parts; ``source`` names it in errors).

        :meth:`restore` reads them from a checkpoint; a data-parallel rank gets
        them from rank 0 (:mod:`trainkit.distributed`), which read the checkpoint.
        """
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source}: not a trainkit training checkpoint (format {meta.get('format')!r})")
        expected = {k: (tuple(v.shape), v.dtype) for k, v in self.model.state_dict().items()}
        check_state_fits(model_state, expected, source=Path(source) / "model.safetensors")
        for name, tensors in (("model.safetensors", model_state), ("state.safetensors", arrays)):
            bad = nonfinite(tensors)
            if bad:
                raise CheckpointError(f"{Path(source) / name}: {', '.join(bad[:5])} hold NaN or infinite values; "
                                      "a diverged state cannot be resumed")
        check_loop_state(meta, Path(source), steps_per_epoch=len(self.train_loader),
                         fresh_meter=make_meter(self.task, self.num_classes, self.meter_options).state(),
                         optimizer_groups=self.optimizer.state_json()["param_groups"],
                         scheduler_state=self.scheduler.state_dict() if self.scheduler is not None else None)
        try:
            self.model.load_state_dict({k: model_state[k] for k in expected})
            opt_arrays = {k[len("optimizer."):]: v for k, v in arrays.items() if k.startswith("optimizer.")}
            self.optimizer.load_flat_state(opt_arrays, meta["optimizer"])
            if self.scheduler is not None and meta.get("scheduler") is not None:
                self.scheduler.load_state_dict(meta["scheduler"])
            tkrandom.set_rng_state(meta["rng"]["global"])
            self.train_loader.load_state_dict(meta["rng"]["train_loader"])
            st = self.state
            st.epoch, st.step, st.best = int(meta["epoch"]), int(meta["step"]), meta.get("best")
            st.es_best, st.es_wait = meta["early_stopping"]["best"], int(meta["early_stopping"]["wait"])
            st.in_epoch = meta.get("in_epoch")
        except CheckpointError as exc:  # the optimizer's own refusal: say which file it came from
            raise CheckpointError(f"{Path(source) / 'state.safetensors'}: {exc}") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"{source}: training state is incomplete or does not fit this run ({exc})") from None
        states = meta.get("callbacks") or {}
        if not isinstance(states, dict):
            raise CheckpointError(f"{Path(source) / 'state.json'}: callbacks must be a mapping, found "
                                  f"{type(states).__name__}")
        for cb in self.callbacks:
            try:
                cb.load_state_dict(states.get(cb.name))
            except (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError) as exc:
                raise CheckpointError(f"{Path(source) / 'state.json'}: callbacks.{cb.name} does not fit this run "
                                      f"({type(exc).__name__}: {exc})") from None
        st = self.state
        self.good_checkpoint = f"epoch {st.epoch}" + (f" (mid-epoch {st.epoch + 1})" if st.in_epoch else "")

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum
        self.log.print("\n[yellow]stopping after this step (Ctrl-C again to abort at once)...[/]")

    # ------------------------------------------------------------------ loop
    def fit(self) -> LoopState:
        """Train up to ``train.epochs``; raises Interrupted or DivergedError."""
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        try:
            for cb in self.callbacks:
                cb.on_fit_start(self)
            state = self._fit()
            for cb in self.callbacks:
                cb.on_fit_end(self)
            return state
        finally:
            for cb in self.callbacks:
                cb.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)

    def _fit(self) -> LoopState:
        epochs = self.spec.epochs
        st = self.state
        self.log.epoch_header(self.task, self.eval_split, getattr(self.bundle, "console_metrics", None))
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while st.epoch < epochs and not self._es_triggered():  # an early-stopped run stays stopped
            epoch = st.epoch + 1
            row, meters = self._train_epoch(epoch)
            self._end_epoch(epoch, row, meters)
            if self.should_stop:
                break
            if self._es_triggered():
                self.log.print(f"early stopping: {self.spec.early_stopping.metric} has not improved "
                               f"for {st.es_wait} epochs")
                break
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return st

    def _train_epoch(self, epoch: int):
        st, model = self.state, self.model
        meter = make_meter(self.task, self.num_classes, self.meter_options)
        t_before = 0.0
        if st.in_epoch is not None:  # resuming an interrupted epoch
            meter.load(st.in_epoch["meter"])
            t_before = float(st.in_epoch["seconds"])
            st.in_epoch = None
        grad_clip = self.spec.grad_clip
        params = [p for p in model.parameters() if p.requires_grad]
        callbacks = self.callbacks
        model.train()
        n_batches = len(self.train_loader)
        t0 = time.perf_counter()
        with carry_hidden(model, self.train_loader), self.log.progress(epoch, n_batches, self.spec.log_every) as bar:
            for x, y in self.train_loader:
                value, out, y = self._train_step(x, y, epoch, params, grad_clip)
                st.step += 1
                if self.scheduler is not None:
                    self.scheduler.after_step()
                for cb in callbacks:
                    cb.on_train_batch_end(self, value)
                meter.update(value, out, y)
                bar.advance(meter.loss, self._images_in(x))
                if self._stop_requested() and self.train_loader.state_dict()["batches_done"]:
                    self._interrupt(epoch, meter, t_before + time.perf_counter() - t0)
        seconds = t_before + time.perf_counter() - t0
        row = {"epoch": epoch, **meter.epoch_metrics("train")}
        return row, {"train": meter, "seconds": seconds}

    def _train_step(self, x, y, epoch: int, params: list, grad_clip) -> tuple:
        """One optimizer step on a batch: ``(loss value, outputs, targets)``, the arrays the meter counts."""
        out = self.model(x)
        y = align_target(out, y)
        loss = self.loss_fn(out, y)
        value = loss.item()
        if not math.isfinite(value):
            raise DivergedError(self._diverged_message(epoch, value))
        opt = self.optimizer
        opt.zero_grad()
        loss.backward()
        self._after_backward()
        if grad_clip:
            clip_grad_norm_(params, grad_clip)
        opt.step()
        return value, out._array, y._array

    def _after_backward(self) -> None:
        """The callbacks' look at the step's gradients (before clipping and the update)."""
        for cb in self.callbacks:
            cb.on_after_backward(self)

    def _images_in(self, x) -> int:
        """Samples a step trained on (the progress bar's images/s)."""
        return x.shape[0]

    def _stop_requested(self) -> bool:
        """Whether a signal asked training to stop (a data-parallel run stops when any rank was asked)."""
        return self._stop_signal is not None

    def _evaluate(self, loader):
        """The metrics of the model on ``loader`` (the validation pass after an epoch)."""
        return evaluate(self.model, loader, self.loss_fn, self.task, self.num_classes, self.meter_options,
                        getattr(self.bundle, "tta", "none"))

    def _interrupt(self, epoch, meter, seconds):
        self.save("last", in_epoch={"meter": meter.state(), "seconds": seconds})
        raise Interrupted(f"interrupted during epoch {epoch}")

    def _kept(self) -> str:
        """Which checkpoint a diverged run leaves to resume from (never one with NaN weights)."""
        if self.good_checkpoint is None:
            return "no good checkpoint was written (nothing to resume from)"
        return f"the last good checkpoint ({self.good_checkpoint}) is kept in {self.run_dir / 'checkpoints' / 'last'}"

    def _advice(self) -> str:
        lr = self.optimizer.param_groups[0]["lr"]
        return (f"Try a lower learning rate (optimizer.lr is {lr:g}; e.g. --set optimizer.lr={lr / 10:g}) "
                "or set train.grad_clip.")

    def _diverged_message(self, epoch, value) -> str:
        done = self.train_loader.state_dict()["batches_done"]
        return (f"training diverged: the loss became {value} at epoch {epoch}, step {self.state.step + 1} "
                f"(batch {done} of {len(self.train_loader)}); {self._kept()}. {self._advice()}")

    def _nonfinite_message(self, names: list[str]) -> str:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return (f"training diverged: after step {self.state.step} (epoch {self.state.epoch + 1}) {shown} "
                f"hold NaN or infinite values, although the loss was finite; {self._kept()}. {self._advice()}")

    def _check_finite(self) -> None:
        """Weights and optimizer state must be finite before an epoch's row, evaluation or checkpoint."""
        bad = nonfinite({k: v._array for k, v in self.model.state_dict().items()})
        bad += nonfinite({f"optimizer.{k}": v for k, v in self.optimizer.state_arrays().items()})
        if bad:
            raise DivergedError(self._nonfinite_message(bad))

    def _end_epoch(self, epoch: int, row: dict, meters: dict) -> None:
        st, spec = self.state, self.spec
        self._check_finite()
        lr = self.optimizer.param_groups[0]["lr"]
        evaluate_now = self.eval_loader is not None and (epoch % spec.eval_every == 0 or epoch == spec.epochs)
        row.update({f"val_{m.column}": None for m in TASKS[self.task].logged()})
        values = meters["train"].values("train")  # every metric of the task, logged or not
        if evaluate_now:
            vm = self._evaluate(self.eval_loader)
            row.update(vm.epoch_metrics("val"))
            values.update(vm.values("val"))
        seconds = meters["seconds"]
        n = meters["train"].n
        row.update({"lr": lr, "seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1) if seconds else None})
        if self.scheduler is not None:
            watched = row
            if self.scheduler.metric is not None:
                watched = {self.scheduler.metric: values.get(self.scheduler.metric), "train_loss": row["train_loss"]}
                watched = {k: v for k, v in watched.items() if v is not None}
            self.scheduler.after_epoch(watched)
        st.epoch = epoch
        self.run.metrics.append(row)  # the row goes in before the checkpoint that covers it
        improved = self._update_best(epoch, values)
        self._update_early_stopping(values)
        self.log.epoch_row(row, self.task, improved)
        for cb in self.callbacks:  # before the checkpoint, which carries their state (a resume repeats the rest)
            cb.on_epoch_end(self, epoch, row, values)
        if improved:
            self.save("best")
        stopping = self._stop_requested()
        if epoch % spec.checkpoint_every == 0 or epoch == spec.epochs or stopping or self._es_triggered():
            self.save("last")
        self.run.update(epochs_done=epoch, best_metric=st.best)
        st.history.append(row)
        if stopping:
            raise Interrupted(f"interrupted after epoch {epoch}")

    def _update_best(self, epoch: int, values: dict) -> bool:
        best = TASKS[self.task].best
        split, metric = find_metric(best, self.task)
        name = f"{split}_{metric.column}"  # run.json and checkpoints name it by its column (val_acc)
        value = values.get(best)
        if value is None or not math.isfinite(value):  # a NaN metric is never the best
            return False
        better = (lambda a, b: a > b) if metric.mode == "max" else (lambda a, b: a < b)
        if self.state.best is None or better(value, self.state.best["value"]):
            self.state.best = {"name": name, "value": value, "epoch": epoch, "split": self.eval_split}
            return True
        return False

    def _update_early_stopping(self, values: dict) -> None:
        es = self.spec.early_stopping
        if es is None:
            return
        value = values.get(es.metric)
        if value is None:  # a val metric on an epoch without evaluation
            return
        st = self.state
        sign = 1 if es.mode == "max" else -1
        if st.es_best is None or sign * (value - st.es_best) > es.min_delta:
            st.es_best, st.es_wait = value, 0
        else:
            st.es_wait += 1

    def _es_triggered(self) -> bool:
        es = self.spec.early_stopping
        return es is not None and self.state.es_wait >= es.patience

    @property
    def finished(self) -> bool:
        """Every epoch is done, or early stopping ended the run (and no epoch is half done)."""
        return self.state.in_epoch is None and (self.state.epoch >= self.spec.epochs or self._es_triggered())
