"""How ``trainkit predict`` shows its rows: a table, a CSV file, and a progress bar while it runs.

The rows come from :func:`trainkit.train.predict.predict`: ``{"input", "class",
"index", "probability", "top_k"}`` for classification, ``{"input", "value"}``
for regression. User text (file names, class names) is escaped before rich
renders it.
"""
from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from trainkit.utils.atomic import atomic_write_text
from trainkit.utils.text import cell, shown

__all__ = ["prediction_table", "prediction_csv", "write_prediction_csv", "progress_bar"]


def _top(row: dict) -> str:
    return ", ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top_k"])


def prediction_table(rows: list[dict], title: str) -> Table:
    """A rich table: input, predicted class, probability and the top-k (or the predicted value)."""
    table = Table(title=shown(title))
    table.add_column("input", overflow="fold")
    if rows and "value" in rows[0]:
        table.add_column("prediction", justify="right")
        for r in rows:
            v = r["value"]
            table.add_row(cell(r["input"]), ", ".join(f"{x:.6g}" for x in v) if isinstance(v, list) else f"{v:.6g}")
        return table
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("top-k")
    for r in rows:
        table.add_row(cell(r["input"]), cell(r["class"]), f"{r['probability']:.4f}", cell(_top(r)))
    return table


def prediction_csv(rows: list[dict], top_k: int) -> str:
    """CSV text: input, class, index, probability, then class_i/probability_i for the top k
    (regression: input and the value, or value_0, value_1, ... for several outputs)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if rows and "value" in rows[0]:
        width = len(rows[0]["value"]) if isinstance(rows[0]["value"], list) else 0
        w.writerow(["input"] + ([f"value_{i}" for i in range(width)] if width else ["value"]))
        for r in rows:
            v = r["value"]
            w.writerow([r["input"]] + ([repr(x) for x in v] if isinstance(v, list) else [repr(v)]))
        return buf.getvalue()
    k = max((len(r["top_k"]) for r in rows), default=top_k)
    head = ["input", "class", "index", "probability"]
    for i in range(1, k + 1):
        head += [f"class_{i}", f"probability_{i}"]
    w.writerow(head)
    for r in rows:
        line = [r["input"], r["class"], r["index"], repr(r["probability"])]
        for t in r["top_k"]:
            line += [t["class"], repr(t["probability"])]
        w.writerow(line)
    return buf.getvalue()


def write_prediction_csv(path: str | Path, rows: list[dict], top_k: int) -> None:
    """Write :func:`prediction_csv` to ``path`` atomically (a failed run leaves no half file)."""
    atomic_write_text(Path(path), prediction_csv(rows, top_k))


@contextlib.contextmanager
def progress_bar(console: Console):
    """A transient bar of inputs done on ``console`` (stderr) when it is a terminal; yields ``update(done, total)``."""
    if not console.is_terminal:
        yield lambda done, total: None
        return
    progress = Progress(TextColumn("[bold]predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    task = progress.add_task("predict", total=None)
    with progress:
        yield lambda done, total: progress.update(task, completed=done, total=total)
