"""The :class:`Diagnostics` callback: measures while the trainer runs, writes a row per epoch, warns."""
from __future__ import annotations

import math

import numpy as np
from rich.markup import escape

from trainkit.autograd import random as tkrandom
from trainkit.autograd.function import no_grad

from ..callbacks import Callback
from .advice import Advice, Advisor
from .layers import activation_stats, tracked_layers
from .records import RowWriter, append_row, plain, read_rows, truncate_after

__all__ = ["Diagnostics"]

_ACC_KEYS = ("grad_sum", "grad_max", "grad_n", "upd_sum", "upd_max", "upd_n", "grad_nonfinite")
#: Update/weight ratios of larger tensors are estimated from about this many evenly strided elements (the
#: weight copy and the difference of a measured step were a third of the cost on a 1.7M-parameter MLP).
UPDATE_SAMPLE = 1 << 16


def _sampled(a: np.ndarray) -> tuple[np.ndarray, float]:
    """A strided view of at most ~UPDATE_SAMPLE elements of ``a`` and the factor from its sums to ``a``'s.

    The stride is coprime with the last dimension, so the sample visits every column and every row
    alike (a stride that divided the row length would see the same few columns only).
    """
    flat = a.reshape(-1)
    n = flat.size
    if n <= UPDATE_SAMPLE:
        return flat, 1.0
    k = -(-n // UPDATE_SAMPLE)
    row = a.shape[-1] if a.ndim > 1 else 1
    while math.gcd(k, row) != 1:
        k += 1
    view = flat[::k]
    return view, n / view.size


def _sq(a: np.ndarray) -> tuple[float, int]:
    """Sum of squares of ``a`` over its finite values, and how many values are not finite."""
    v = a.reshape(-1)
    s = float(np.dot(v, v))
    if math.isfinite(s):
        return s, 0
    finite = np.isfinite(v)
    kept = v[finite].astype(np.float64)  # float64: large finite values must not overflow the sum
    return float(np.dot(kept, kept)), int(v.size - np.count_nonzero(finite))


class Diagnostics(Callback):
    """Per-layer gradient, weight, update and activation statistics, rows in ``diagnostics.jsonl``, advice.

    See :mod:`trainkit.train.diagnostics` for what is measured and when. The
    cost per measured step is a few passes over the parameters (gradient
    norms, a copy of the weights before the step and the norm of the change);
    unmeasured steps cost two Python calls.

    Args:
        trainer: the :class:`~trainkit.train.trainer.Trainer` it watches.
        spec: ``train.diagnostics`` (:class:`~trainkit.config.resolved.DiagnosticsSpec`).
    """

    name = "diagnostics"

    def __init__(self, trainer, spec):
        self.spec = spec
        self.layers = tracked_layers(trainer.model)
        self._params = [(i, p) for i, layer in enumerate(self.layers) for p in layer.params]
        optimizer = trainer.optimizer
        self.advisor = Advisor(spec, lr=lambda: optimizer.param_groups[0]["lr"] if optimizer is not None else None)
        self._sinks: list = []
        self._probe_x = None
        self._reset_epoch()
        self._first: list[float | None] = [None] * len(self.layers)
        self._before = None  # [(layer, param, copy of (a sample of) its array, scale)] during a measured step
        self._step_grads: list = []
        self._step_bad: list = []
        self._writer = RowWriter(trainer.run_dir)
        self._last_row: dict | None = None  # the newest row, kept in checkpoints too (see records.py)

    # ------------------------------------------------------------------ extension point
    def add_sink(self, fn) -> None:
        """Also hand each epoch's numbers to ``fn(epoch, row, arrays)`` (e.g. a TensorBoard writer's histograms).

        ``row`` is the epoch's ``diagnostics.jsonl`` object; ``arrays`` maps
        ``"weights"``, ``"grads"`` (the last step's) and ``"activations"`` (the
        probe batch's) to ``{name: ndarray}``. Arrays are gathered only while a
        sink is registered.
        """
        self._sinks.append(fn)

    # ------------------------------------------------------------------ state
    def _reset_epoch(self) -> None:
        n = len(self.layers)
        self._acc = {k: [0.0] * n for k in _ACC_KEYS}
        self._advice: list[Advice] = []

    def state_dict(self) -> dict:
        """The epoch's accumulators, first gradient norms, warnings so far and the advisor's memory."""
        return plain({"layers": [layer.name for layer in self.layers], "acc": self._acc, "first": self._first,
                      "advice": [a.to_dict() for a in self._advice], "advisor": self.advisor.state_dict(),
                      "row": self._last_row})

    def load_state_dict(self, state: dict | None) -> None:
        """Continue from a checkpoint's state (a checkpoint without one starts afresh)."""
        if not state or state.get("layers") != [layer.name for layer in self.layers]:
            return
        self._acc = {k: [0.0 if v is None else float(v) for v in state["acc"][k]] for k in _ACC_KEYS}
        self._first = list(state["first"])
        self._advice = [Advice(**a) for a in state["advice"]]
        self.advisor.load_state_dict(state["advisor"])
        row = state.get("row")
        if row is not None and not isinstance(row, dict):
            raise TypeError(f"row must be a mapping or null, found {type(row).__name__}")
        self._last_row = row

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer) -> None:
        # rows past the checkpoint were written by a killed process and will be written again; the
        # checkpoint's own row comes back if a power cut lost it
        done = trainer.state.epoch
        truncate_after(trainer.run_dir, done)
        row = self._last_row
        if done and row is not None and row.get("epoch") == done:
            rows = read_rows(trainer.run_dir)
            if not rows or rows[-1]["epoch"] < done:
                append_row(trainer.run_dir, row)
        if self.spec.activations and self._probe_x is None:
            bundle = trainer.bundle
            loader = bundle.eval_loader("val" if bundle.val is not None else "train")
            for batch in loader:  # the eval loader's own order: no RNG drawn, the train loader untouched
                self._probe_x = batch[0]
                break

    def on_after_backward(self, trainer) -> None:
        if trainer.state.step % self.spec.every:
            return
        n = len(self.layers)
        sq, bad, size, seen = [0.0] * n, [0] * n, [0] * n, [False] * n
        before = []
        for i, p in self._params:
            if p.grad is not None:
                s, nbad = _sq(p.grad._array)
                sq[i] += s
                bad[i] += nbad
                size[i] += p.grad._array.size
                seen[i] = True
            view, scale = _sampled(p._array)
            before.append((i, p, view.copy(), scale))
        acc = self._acc
        self._step_grads = [math.sqrt(sq[i]) if seen[i] else None for i in range(n)]
        self._step_bad = [bad[i] / size[i] if size[i] else 0.0 for i in range(n)]
        for i, g in enumerate(self._step_grads):
            if g is None:
                continue
            acc["grad_sum"][i] += g
            acc["grad_max"][i] = max(acc["grad_max"][i], g)
            acc["grad_n"][i] += 1
            acc["grad_nonfinite"][i] = max(acc["grad_nonfinite"][i], self._step_bad[i])
        self._before = before

    def on_train_batch_end(self, trainer, loss: float) -> None:
        before, self._before = self._before, None
        if before is None:
            return
        n = len(self.layers)
        diff, norm = [0.0] * n, [0.0] * n
        for i, p, old, scale in before:
            norm[i] += scale * _sq(old)[0]
            np.subtract(_sampled(p._array)[0], old, out=old)
            diff[i] += scale * _sq(old)[0]
        ratios = [math.sqrt(diff[i] / norm[i]) if norm[i] > 0 else None for i in range(n)]
        acc = self._acc
        for i, r in enumerate(ratios):
            if r is not None:
                acc["upd_sum"][i] += r
                acc["upd_max"][i] = max(acc["upd_max"][i], r)
                acc["upd_n"][i] += 1
        first = [g if f is None and g is not None and g > 0 and math.isfinite(g) else f
                 for f, g in zip(self._first, self._step_grads)]
        advice = self.advisor.check_step(trainer.state.epoch + 1, trainer.state.step, self.layers,
                                         self._step_grads, self._step_bad, self._first, ratios)
        self._first = first
        self._say(trainer, advice)

    def on_epoch_end(self, trainer, epoch: int, row: dict, values: dict) -> None:
        arrays = {"weights": {}, "grads": {}, "activations": {}} if self._sinks else None
        acts = self._probe(trainer, arrays) if self.spec.activations else {}
        records = [self._record(i, acts.get(i, {}), arrays) for i in range(len(self.layers))]
        classes = trainer.num_classes if trainer.task == "classification" else None
        advice = self.advisor.check_epoch(epoch, trainer.state.step, self.layers, records, row.get("train_loss"),
                                          row.get("val_loss"), classes)
        self._say(trainer, advice)
        out = {"epoch": epoch, "step": trainer.state.step, "layers": records,
               "warnings": [a.to_dict() for a in self._advice]}
        self._writer.append(out)
        self._last_row = plain(out)
        for sink in self._sinks:
            sink(epoch, out, arrays)
        self._reset_epoch()

    def on_fit_end(self, trainer) -> None:
        self._writer.wait()

    # ------------------------------------------------------------------ helpers
    def _say(self, trainer, advice: list[Advice]) -> None:
        self._advice.extend(advice)
        if not self.spec.warnings:
            return
        for a in advice:
            where = f"epoch {a.epoch}" + (f", step {a.step}" if a.step is not None else "")
            trainer.log.print(f"[bold yellow]warning[/] ({where}): {escape(a.message)}", highlight=False)

    def _record(self, i: int, act: dict, arrays) -> dict:
        layer, acc = self.layers[i], self._acc
        rec = {"name": layer.name, "type": layer.type}
        if layer.params:
            sq, bad, size = 0.0, 0, 0
            for p in layer.params:
                s, nb = _sq(p._array)
                sq, bad, size = sq + s, bad + nb, size + p._array.size
            gn, un = acc["grad_n"][i], acc["upd_n"][i]
            rec.update(grad_norm=acc["grad_sum"][i] / gn if gn else None, grad_norm_max=acc["grad_max"][i] if gn else None,
                       weight_norm=math.sqrt(sq), update_ratio=acc["upd_sum"][i] / un if un else None,
                       update_ratio_max=acc["upd_max"][i] if un else None, grad_nonfinite=acc["grad_nonfinite"][i],
                       weight_nonfinite=bad / size if size else 0.0)
            if arrays is not None:
                for k, p in enumerate(layer.params):
                    arrays["weights"][f"{layer.name}.{k}"] = p._array
                    if p.grad is not None:
                        arrays["grads"][f"{layer.name}.{k}"] = p.grad._array
        rec.update(act)
        return rec

    def _probe(self, trainer, arrays) -> dict:
        """Run the probe batch through the model with forward hooks on the watched layers."""
        if self._probe_x is None:
            return {}
        model = trainer.model
        stats: dict[int, dict] = {}

        def hook_for(i, layer):
            def hook(module, args, output):
                stats[i] = activation_stats(output, layer.relu_like)
                if arrays is not None and hasattr(output, "_array"):
                    arrays["activations"][layer.name] = output._array.copy()
            return hook

        handles = [layer.module.register_forward_hook(hook_for(i, layer)) for i, layer in enumerate(self.layers)]
        modes = [(m, m.training) for m in model.modules()]
        rng = tkrandom.get_rng_state()  # a custom layer may draw even in eval mode: the run must not notice
        try:
            model.eval()
            with no_grad():
                model(self._probe_x)
        finally:
            for h in handles:
                h.remove()
            for m, mode in modes:
                m.training = mode
            tkrandom.set_rng_state(rng)
        return stats
