"""The tasks trainkit trains for and the one table of their metric names.

Every place that names a metric reads this table: the config schema (which
names ``early_stopping.metric`` and the plateau scheduler may watch), the
meters (which values they compute and which go into ``metrics.jsonl``), the
trainer (the per-epoch row, the choice of the best checkpoint, early
stopping), the console's epoch table and the plots.

A metric is named ``<split>_<metric>`` with split ``train`` or ``val``
(``val_accuracy``); its column in ``metrics.jsonl`` may be shorter
(``val_acc``) or absent (a metric computed for watching only, such as ``r2``).
A metric a run cannot compute (``bpc`` of a word vocabulary) is logged as null.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "Task", "TASKS", "SPLITS", "metric_names", "find_metric", "metric_mode"]

#: The splits a metric can be measured on (``val`` is the test split when there is no validation split).
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Metric:
    """One metric of a task.

    Attributes:
        name: the name after the split prefix (``accuracy``).
        mode: ``max`` when higher is better, else ``min``.
        column: its column in ``metrics.jsonl`` after the split prefix (``acc``), or
            None when it is computed for watching only.
        doc: one line for the docs.
    """

    name: str
    mode: str
    column: str | None
    doc: str


@dataclass(frozen=True)
class Task:
    """A kind of problem: its metrics, the metric choosing the best checkpoint, its default loss.

    ``console`` names the metrics shown in the per-epoch table (after the loss).
    """

    name: str
    metrics: tuple[Metric, ...]
    best: str
    default_loss: str
    console: tuple[str, ...]
    doc: str

    def metric(self, name: str) -> Metric | None:
        """The metric called ``name`` (without split), or None."""
        return next((m for m in self.metrics if m.name == name), None)

    def logged(self) -> tuple[Metric, ...]:
        """The metrics that have a ``metrics.jsonl`` column, in column order."""
        return tuple(m for m in self.metrics if m.column is not None)


_LOSS = Metric("loss", "min", "loss", "mean loss per sample")
TASKS: dict[str, Task] = {
    "classification": Task(
        "classification",
        (_LOSS, Metric("accuracy", "max", "acc", "fraction of samples whose highest logit is the true class")),
        best="val_accuracy", default_loss="cross_entropy", console=("accuracy",),
        doc="class indices as targets; the model outputs one logit per class"),
    "regression": Task(
        "regression",
        (_LOSS, Metric("mse", "min", "mse", "mean squared error per target value"),
         Metric("mae", "min", "mae", "mean absolute error per target value"),
         Metric("rmse", "min", None, "square root of the mse"),
         Metric("r2", "max", None, "coefficient of determination (1 - SSE/SST)")),
        best="val_loss", default_loss="mse", console=("mae",),
        doc="real-valued targets"),
    "language_model": Task(
        "language_model",
        (Metric("loss", "min", "loss", "mean cross-entropy per token, in nats"),
         Metric("ppl", "min", "ppl", "perplexity: exp(loss per token)"),
         Metric("bpc", "min", "bpc", "bits per character: loss per token / ln 2 (character vocabularies; "
                                     "null for word vocabularies)")),
        best="val_loss", default_loss="cross_entropy", console=("ppl", "bpc"),
        doc="next-token prediction on a token stream; the model outputs one logit per vocabulary entry "
            "at every position"),
}


def metric_names(task: str | None = None) -> list[str]:
    """Every ``<split>_<metric>`` name of ``task`` (of any task when None), in table order."""
    tasks = [TASKS[task]] if task is not None else list(TASKS.values())
    names: list[str] = []
    for split in SPLITS:
        for t in tasks:
            names += [f"{split}_{m.name}" for m in t.metrics if f"{split}_{m.name}" not in names]
    return names


def find_metric(name: str, task: str | None = None) -> tuple[str, Metric] | None:
    """``(split, Metric)`` for ``val_accuracy`` and the like (in ``task``, or any task), or None."""
    split, _, rest = str(name).partition("_")
    if split not in SPLITS:
        return None
    for t in ([TASKS[task]] if task is not None else TASKS.values()):
        m = t.metric(rest)
        if m is not None:
            return split, m
    return None


def metric_mode(name: str) -> str:
    """``max`` or ``min`` for a metric name (``min`` for an unknown one)."""
    found = find_metric(name)
    return found[1].mode if found else "min"
