"""Streaming metrics: classification (accuracy, confusion matrix, per-class P/R/F1), regression, language models.

Which metrics a task has, which of them are logged and under which column, is
the one table in :mod:`trainkit.registry.tasks`; a meter computes every metric
of its task's row (:meth:`values`) and logs the columns the table names
(:meth:`epoch_metrics`).
"""
from __future__ import annotations

import math

import numpy as np

from trainkit.registry.tasks import TASKS


class _Meter:
    """What both meters share: values and logged columns named by the task table."""

    task = ""

    def values(self, prefix: str) -> dict:
        """Every metric of the task, ``{f"{prefix}_{name}": value}`` (what early stopping and schedulers watch)."""
        return {f"{prefix}_{m.name}": getattr(self, m.name) for m in TASKS[self.task].metrics}

    def epoch_metrics(self, prefix: str) -> dict:
        """The metrics that have a ``metrics.jsonl`` column, under their column names (``val_acc``)."""
        return {f"{prefix}_{m.column}": getattr(self, m.name) for m in TASKS[self.task].logged()}


class ClassificationMeter(_Meter):
    """Accumulates loss and a confusion matrix over batches."""

    task = "classification"

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.loss_sum = 0.0
        self.n = 0

    def update(self, loss: float, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Add a batch: ``loss`` is the batch's mean loss, ``outputs`` the logits (N, C)."""
        b = targets.shape[0]
        self.loss_sum += float(loss) * b
        self.n += b
        pred = outputs.argmax(axis=1) if outputs.ndim > 1 and outputs.shape[1] > 1 else (outputs.reshape(-1) > 0)
        idx = targets.reshape(-1).astype(np.int64) * self.num_classes + pred.astype(np.int64)
        self.confusion += np.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n if self.n else math.nan

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else math.nan

    def state(self) -> dict:
        """Exact JSON state (for a mid-epoch checkpoint)."""
        return {"loss_sum": self.loss_sum, "n": self.n, "confusion": self.confusion.tolist()}

    def load(self, state: dict) -> None:
        self.loss_sum, self.n = float(state["loss_sum"]), int(state["n"])
        self.confusion = np.asarray(state["confusion"], dtype=np.int64)

    def report(self, class_names: list[str] | None = None) -> dict:
        """Accuracy, loss, per-class precision/recall/F1/support and the confusion matrix."""
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        support = cm.sum(axis=1)
        predicted = cm.sum(axis=0)
        names = class_names or [str(i) for i in range(self.num_classes)]
        per_class = []
        for i in range(self.num_classes):
            p = tp[i] / predicted[i] if predicted[i] else 0.0
            r = tp[i] / support[i] if support[i] else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            per_class.append({"class": names[i], "precision": round(float(p), 6), "recall": round(float(r), 6),
                              "f1": round(float(f1), 6), "support": int(support[i])})
        present = [c for c in per_class if c["support"]]
        macro_f1 = sum(c["f1"] for c in present) / len(present) if present else 0.0
        return {"accuracy": self.accuracy, "loss": self.loss, "n": self.n, "macro_f1": round(macro_f1, 6),
                "per_class": per_class, "confusion_matrix": cm.tolist(), "class_names": names}



class RegressionMeter(_Meter):
    """Accumulates loss, squared and absolute errors and target moments over batches."""

    task = "regression"

    def __init__(self):
        self.loss_sum = 0.0
        self.n = 0          # samples
        self.m = 0          # target elements
        self.sse = 0.0
        self.sae = 0.0
        self.sy = 0.0
        self.syy = 0.0

    def update(self, loss: float, outputs: np.ndarray, targets: np.ndarray) -> None:
        b = targets.shape[0]
        self.loss_sum += float(loss) * b
        self.n += b
        o = outputs.astype(np.float64).reshape(b, -1)
        t = targets.astype(np.float64).reshape(b, -1)
        d = o - t
        self.m += t.size
        self.sse += float((d * d).sum())
        self.sae += float(np.abs(d).sum())
        self.sy += float(t.sum())
        self.syy += float((t * t).sum())

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n if self.n else math.nan

    @property
    def mse(self) -> float:
        return self.sse / self.m if self.m else math.nan

    @property
    def mae(self) -> float:
        return self.sae / self.m if self.m else math.nan

    @property
    def rmse(self) -> float:
        return math.sqrt(self.mse) if self.m else math.nan

    @property
    def r2(self) -> float:
        if not self.m:
            return math.nan
        ss_tot = self.syy - self.sy * self.sy / self.m
        return 1.0 - self.sse / ss_tot if ss_tot > 0 else math.nan

    def state(self) -> dict:
        return dict(vars(self))

    def load(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def report(self, class_names=None) -> dict:
        return {"loss": self.loss, "mse": self.mse, "mae": self.mae, "rmse": self.rmse, "r2": self.r2, "n": self.n}


class LanguageModelMeter(_Meter):
    """Accumulates the loss over tokens: loss per token, perplexity and bits per character.

    ``update`` takes the batch's mean loss per token and weighs it by the
    batch's token count, so the epoch's loss is the mean over every token (as
    PyTorch's word_language_model and nanoGPT report it). ``n`` counts tokens.
    ``chars`` says whether a token is a character: ``bpc`` is None otherwise.
    """

    task = "language_model"

    def __init__(self, chars: bool = True):
        self.chars = bool(chars)
        self.loss_sum = 0.0
        self.n = 0

    def update(self, loss: float, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Add a batch: ``loss`` is its mean loss per token, ``targets`` its token ids (any shape)."""
        tokens = int(targets.size)
        self.loss_sum += float(loss) * tokens
        self.n += tokens

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n if self.n else math.nan

    @property
    def ppl(self) -> float | None:
        loss = self.loss
        # exp overflows a float past 709 nats per token; no trained model gets near it, a diverging one stops first
        return math.exp(loss) if loss < 709 else None

    @property
    def bpc(self) -> float | None:
        return self.loss / math.log(2) if self.chars else None

    def state(self) -> dict:
        """Exact JSON state (for a mid-epoch checkpoint)."""
        return {"loss_sum": self.loss_sum, "n": self.n}

    def load(self, state: dict) -> None:
        self.loss_sum, self.n = float(state["loss_sum"]), int(state["n"])

    def report(self, class_names=None) -> dict:
        """Loss per token, perplexity, bits per character and the token count."""
        return {"loss": self.loss, "ppl": self.ppl, "bpc": self.bpc, "n": self.n, "tokens": self.n}


def make_meter(task: str, num_classes: int | None, options: dict | None = None):
    """The meter for a task; ``options`` are the meter's own (a language model's ``{"chars": False}``)."""
    if task == "language_model":
        return LanguageModelMeter(**(options or {}))
    return ClassificationMeter(num_classes) if task == "classification" else RegressionMeter()
