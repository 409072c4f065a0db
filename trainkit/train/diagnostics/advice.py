"""From per-layer numbers to advice: each rule names the layer, what it saw and a fix.

Rules and their thresholds (``train.diagnostics``, defaults in
:data:`trainkit.config.schema.DIAGNOSTICS`):

* ``update_ratio``: optimizer steps change a layer's weights by more than
  ``update_ratio`` (0.1) of their norm, on average over the last three measured
  steps (at least two). Healthy training sits near 1e-3; far above it the
  learning rate is too high. The run's first step does not count there (Adam's
  first step moves every weight by the full learning rate, whatever the
  gradients), but any one step above ten times the threshold (a step that
  moves the weights by more than their own size) fires at once.
* ``exploding``: a layer's gradient norm grew to ``exploding`` (1000) times its
  first measured value, or became non-finite.
* ``vanishing``: a layer's mean gradient norm over the epoch is below
  ``vanishing`` (1e-4) of the largest layer's: the layers before it barely learn.
* ``dead_units``: more than ``dead_units`` (90%) of the units after a ReLU never
  fire on the probe batch.
* ``loss_stuck``: a classifier's train loss stayed within 2% of ln(classes) —
  the cross-entropy of predicting the class prior of balanced classes — for
  ``stuck_epochs`` (2) epochs.
* ``overfitting``: the val loss rose while the train loss fell on
  ``overfit_epochs`` (3) evaluations in a row, to more than 5% above its best
  (smaller wiggles of a small validation set are noise).
* ``nonfinite``: NaN/inf in a layer's weights or activations.

Each kind is reported once per run (dead units once per layer), with the epoch
(and step) where it was first seen.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Advice", "Advisor", "STUCK_TOLERANCE", "OVERFIT_MARGIN", "UPDATE_WINDOW"]

#: "Near ln(classes)": within this fraction of it.
STUCK_TOLERANCE = 0.02
#: Overfitting: the val loss must also have risen this far above its best.
OVERFIT_MARGIN = 0.05
#: Update/weight ratios: the rule averages this many recent measured steps...
UPDATE_WINDOW = 3
#: ... or fires at once on one step above this many times the threshold.
SPIKE = 10


@dataclass
class Advice:
    """One warning: what kind, where and when it was first seen, and the message shown."""

    kind: str
    epoch: int
    step: int | None
    layer: str | None
    message: str

    def to_dict(self) -> dict:
        """The JSON form stored in ``diagnostics.jsonl``."""
        return asdict(self)


def _layers_text(labels: list[str], limit: int = 3) -> str:
    """``layer 3 (linear)`` or ``layers 1 (linear), 3 (linear), 5 (linear) and 13 more``."""
    shown = ", ".join(labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"layer{'s' if len(labels) > 1 else ''} {shown}{more}"


class Advisor:
    """Applies the rules; remembers what it already said and the loss history the rules need.

    Args:
        spec: the ``train.diagnostics`` settings (:class:`~trainkit.config.resolved.DiagnosticsSpec`).
        lr: a function returning the current learning rate (quoted in advice).
    """

    def __init__(self, spec, lr=lambda: None):
        self.spec = spec
        self.lr = lr
        self.issued: set[str] = set()
        self.losses: list[list] = []  # [epoch, train_loss, val_loss or None], the last few epochs
        self.best_val: float | None = None
        self.updates: list[list] = []  # per-layer update/weight ratios of the last measured steps

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """What a checkpoint keeps (issued warnings, recent losses)."""
        return {"issued": sorted(self.issued), "losses": self.losses, "best_val": self.best_val,
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.issued = set(state.get("issued", ()))
        self.losses = [list(x) for x in state.get("losses", ())]
        self.best_val = state.get("best_val")
        self.updates = [list(x) for x in state.get("updates", ())]

    def _new(self, key: str) -> bool:
        if key in self.issued:
            return False
        self.issued.add(key)
        return True

    def _lr_hint(self) -> str:
        lr = self.lr()
        if not isinstance(lr, (int, float)) or not lr > 0:
            return "lower the learning rate"
        return f"lower the learning rate (optimizer.lr is {lr:g}; e.g. --set optimizer.lr={lr / 10:g})"

    # ------------------------------------------------------------------ per measured step
    def check_step(self, epoch: int, step: int, layers, grad_norms, grad_nonfinite, first_grads,
                   update_ratios) -> list[Advice]:
        """Rules on one measured step (``step`` counts from 1): update/weight ratio, exploding or
        non-finite gradients.

        All lists are per layer (None where a layer has no measurement):
        this step's gradient norms, shares of non-finite gradient values and
        update/weight ratios, and each layer's first measured gradient norm.
        """
        out = []
        labels = [layer.label for layer in layers]
        bad = [i for i, f in enumerate(grad_nonfinite) if f]
        if bad and self._new("nonfinite_grad"):
            i = bad[0]
            out.append(Advice("exploding", epoch, step, layers[i].name,
                              f"non-finite gradients (NaN/inf) in {_layers_text([labels[j] for j in bad])} "
                              f"at step {step} ({100 * grad_nonfinite[i]:.1f}% of {labels[i]}'s values): "
                              f"{self._lr_hint()} or set train.grad_clip (e.g. 1.0)."))
        grown = [i for i, (g, g0) in enumerate(zip(grad_norms, first_grads))
                 if g is not None and g0 and math.isfinite(g) and g > self.spec.exploding * g0]
        if grown and self._new("exploding"):
            i = max(grown, key=lambda j: grad_norms[j] / first_grads[j])
            out.append(Advice("exploding", epoch, step, layers[i].name,
                              f"exploding gradients in layer {labels[i]}: gradient norm {grad_norms[i]:.3g} at "
                              f"step {step}, {grad_norms[i] / first_grads[i]:.0f}x its first value "
                              f"({first_grads[i]:.3g}); {self._lr_hint()} or set train.grad_clip (e.g. 1.0)."))
        if step > 1:
            self.updates = (self.updates + [list(update_ratios)])[-UPDATE_WINDOW:]
        means = []
        for i in range(len(layers)):
            seen = [u[i] for u in self.updates if i < len(u) and u[i] is not None]
            means.append(sum(seen) / len(seen) if len(seen) >= 2 else None)
        # one step that moves weights by more than their own size is never healthy; below that,
        # only a sustained ratio counts
        spike = [r if r is not None and r > SPIKE * self.spec.update_ratio else None for r in update_ratios]
        if any(r is not None for r in spike):
            out += self._updates(epoch, step, layers, spike, f"at step {step}")
        else:
            out += self._updates(epoch, step, layers, means, f"mean of the last {len(self.updates)} measured steps")
        return out

    def _updates(self, epoch: int, step: int, layers, ratios, how: str) -> list[Advice]:
        over = [i for i, r in enumerate(ratios) if r is not None and r > self.spec.update_ratio]
        if not over or not self._new("update_ratio"):
            return []
        labels = [layer.label for layer in layers]
        i = max(over, key=lambda j: ratios[j])
        others = [labels[j] for j in over if j != i]
        also = f"; also {_layers_text(others)}" if others else ""
        return [Advice("update_ratio", epoch, step, layers[i].name,
                       f"update/weight ratio {ratios[i]:.3g} in layer {labels[i]} ({how}{also}), above "
                       f"{self.spec.update_ratio:g}: an optimizer step changes its weights by "
                       f"{100 * ratios[i]:.0f}% of their size (healthy: about 0.1%). The learning rate is "
                       f"likely too high: {self._lr_hint()}.")]

    # ------------------------------------------------------------------ per epoch
    def check_epoch(self, epoch: int, step: int, layers, records: list[dict], train_loss, val_loss,
                    num_classes: int | None) -> list[Advice]:
        """Rules on an epoch's records (one dict per layer) and losses."""
        out = []
        labels = [layer.label for layer in layers]
        out += self._vanishing(epoch, step, layers, labels, records)
        for i, rec in enumerate(records):
            dead = rec.get("dead_fraction")
            if dead is not None and dead > self.spec.dead_units and self._new(f"dead_units:{layers[i].name}"):
                before = next((labels[j] for j in range(i - 1, -1, -1) if layers[j].params), None)
                bias = f"; check the initialisation (bias) of layer {before}" if before else ""
                out.append(Advice("dead_units", epoch, step, layers[i].name,
                                  f"{100 * dead:.0f}% dead units after layer {labels[i]}: they output 0 for every "
                                  f"sample of the probe batch (more than {100 * self.spec.dead_units:.0f}%), so they "
                                  f"pass no gradient. {self._lr_hint().capitalize()} or use leaky_relu{bias}."))
        bad = [i for i, r in enumerate(records) if (r.get("weight_nonfinite") or r.get("act_nonfinite"))]
        if bad and self._new("nonfinite"):
            out.append(Advice("nonfinite", epoch, step, layers[bad[0]].name,
                              f"non-finite values (NaN/inf) in the weights or outputs of "
                              f"{_layers_text([labels[i] for i in bad])}: {self._lr_hint()}, set train.grad_clip, "
                              f"and check the input data for NaN."))
        self.losses = (self.losses + [[epoch, train_loss, val_loss]])[-(max(self.spec.stuck_epochs,
                                                                              self.spec.overfit_epochs) + 1):]
        out += self._stuck(epoch, step, num_classes)
        out += self._overfitting(epoch, step)
        return out

    def _vanishing(self, epoch, step, layers, labels, records) -> list[Advice]:
        norms = [(i, r["grad_norm"]) for i, r in enumerate(records) if r.get("grad_norm") is not None
                 and math.isfinite(r["grad_norm"])]
        if len(norms) < 2:
            return []
        top_i, top = max(norms, key=lambda t: t[1])
        if not top > 0:
            return []
        # a layer whose units are dead passes exactly no gradient to the layers before it: that is
        # the dead-units warning's story, not this one's
        dead = [j for j, r in enumerate(records) if (r.get("dead_fraction") or 0) > self.spec.dead_units]
        low = [i for i, g in norms if g < self.spec.vanishing * top and not (g == 0 and any(j > i for j in dead))]
        if not low or not self._new("vanishing"):
            return []
        i = low[0]
        return [Advice("vanishing", epoch, step, layers[i].name,
                       f"vanishing gradients in {_layers_text([labels[j] for j in low])}: gradient norm "
                       f"{records[i]['grad_norm']:.2g}, {records[i]['grad_norm'] / top:.1e} of the largest "
                       f"(layer {labels[top_i]}, {top:.2g}), so the layers near the input barely learn. Deep "
                       f"stacks of sigmoid/tanh shrink gradients: use relu or gelu, add batch_norm/layer_norm or "
                       f"residual connections, or use fewer layers.")]

    def _stuck(self, epoch, step, num_classes) -> list[Advice]:
        n = self.spec.stuck_epochs
        if not num_classes or num_classes < 2 or len(self.losses) < n:
            return []
        prior = math.log(num_classes)
        recent = [loss for _, loss, _ in self.losses[-n:]]
        if any(loss is None or abs(loss - prior) > STUCK_TOLERANCE * prior for loss in recent):
            return []
        if not self._new("loss_stuck"):
            return []
        return [Advice("loss_stuck", epoch, step, None,
                       f"loss stuck near ln({num_classes}) = {prior:.3f} for {n} epochs (train loss {recent[-1]:.4f}): "
                       f"the model predicts the class prior and has learned nothing from the inputs. Look at the "
                       f"other warnings (dead units, vanishing gradients); try another learning rate; check that "
                       f"the labels belong to the inputs.")]

    def _overfitting(self, epoch, step) -> list[Advice]:
        n = self.spec.overfit_epochs
        evals = [(e, t, v) for e, t, v in self.losses if v is not None and t is not None]
        best, latest = self.best_val, evals[-1][2] if evals else None
        if latest is not None and math.isfinite(latest):
            self.best_val = latest if best is None else min(best, latest)
        if len(evals) < n + 1 or best is None:
            return []
        last = evals[-(n + 1):]
        rising = all(b[2] > a[2] and b[1] < a[1] for a, b in zip(last, last[1:]))
        if not rising or latest <= (1 + OVERFIT_MARGIN) * best or not self._new("overfitting"):
            return []
        (e0, _, v0), (e1, _, v1) = last[0], last[-1]
        return [Advice("overfitting", epoch, step, None,
                       f"val loss rose for {n} evaluations in a row while the train loss fell (epochs {e0}-{e1}: "
                       f"val loss {v0:.4g} -> {v1:.4g}, best {best:.4g}): the model is overfitting. Use train.early_stopping, dropout "
                       f"or weight_decay, data augmentation, or more data; the best checkpoint is kept either way.")]
