"""The end-of-run report (report.json, report.md) and plots (curves.png, confusion_matrix.png)."""
from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from ..registry.tasks import TASKS
from trainkit.utils.text import cell, shown, visible
from trainkit.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text


def _fmt(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4f}"


def report_markdown(report: dict) -> str:
    """report.md: the headline numbers, the per-class table and the confusion matrix."""
    split = report["split"]
    r = report[split]
    lines = [f"# Report: {report.get('run', '')}", "",
             f"Checkpoint `{report['checkpoint']}` (epoch {report.get('epoch')}), {split} split, {r['n']} samples.", ""]
    if report["task"] == "classification":
        lines += [f"- accuracy: **{_fmt(r['accuracy'], True)}**", f"- loss: {_fmt(r['loss'])}",
                  f"- macro F1: {_fmt(r['macro_f1'])}", "", "| class | precision | recall | F1 | support |",
                  "|---|---:|---:|---:|---:|"]
        for c in r["per_class"]:
            lines.append(f"| {c['class']} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
        names = r["class_names"]
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| true \\ pred | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for name, row in zip(names, r["confusion_matrix"]):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    elif report["task"] == "language_model":
        lines[-2] = lines[-2].replace(" samples.", " tokens.")
        lines += [f"- perplexity: **{_fmt(r['ppl'])}**", f"- loss per token: {_fmt(r['loss'])} nats"]
        if r.get("bpc") is not None:
            lines.append(f"- bits per character: {_fmt(r['bpc'])}")
    else:
        lines += [f"- MSE: {_fmt(r['mse'])}", f"- MAE: {_fmt(r['mae'])}", f"- RMSE: {_fmt(r['rmse'])}",
                  f"- R²: {_fmt(r['r2'])}", f"- loss: {_fmt(r['loss'])}"]
    return "\n".join(lines) + "\n"


def report_tables(report: dict) -> list:
    """Rich renderables for the console: headline, per-class table, confusion matrix."""
    split = report["split"]
    r = report[split]
    out = []
    if report["task"] == "classification":
        out.append(f"[bold]{split} accuracy {_fmt(r['accuracy'], True)}[/]  loss {_fmt(r['loss'])}  "
                   f"macro F1 {_fmt(r['macro_f1'])}  ({r['n']} samples, checkpoint {shown(report['checkpoint'])}, "
                   f"epoch {report.get('epoch')})")
        t = Table(title="per class")
        for col in ("class", "precision", "recall", "F1", "support"):
            t.add_column(col, justify="left" if col == "class" else "right")
        for c in r["per_class"]:
            t.add_row(cell(c["class"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
                      str(c["support"]))
        out.append(t)
        cm = Table(title="confusion matrix (rows: true, columns: predicted)")
        cm.add_column("")
        for name in r["class_names"]:
            cm.add_column(cell(visible(name)[:6]), justify="right")
        for name, row in zip(r["class_names"], r["confusion_matrix"]):
            cm.add_row(cell(name), *[str(v) for v in row])
        out.append(cm)
    elif report["task"] == "language_model":
        bpc = f"  bits/char {_fmt(r['bpc'])}" if r.get("bpc") is not None else ""
        out.append(f"[bold]{split} perplexity {_fmt(r['ppl'])}[/]  loss {_fmt(r['loss'])} nats/token{bpc}  "
                   f"({r['n']:,} tokens, checkpoint {report['checkpoint']}, epoch {report.get('epoch')})")
    else:
        out.append(f"[bold]{split} MSE {_fmt(r['mse'])}[/]  MAE {_fmt(r['mae'])}  RMSE {_fmt(r['rmse'])}  "
                   f"R² {_fmt(r['r2'])}  ({r['n']} samples, checkpoint {shown(report['checkpoint'])}, "
                   f"epoch {report.get('epoch')})")
    return out


def write_report(run_dir: Path, report: dict) -> None:
    atomic_write_json(run_dir / "report.json", report)
    atomic_write_text(run_dir / "report.md", report_markdown(report))


def _plot_text(text) -> str:
    """User text as matplotlib shows it literally: control characters visible, ``$`` not starting mathtext
    (a class named ``$\\x$`` would otherwise fail to draw)."""
    return visible(text).replace("$", r"\$")


def _png(fig, tight: bool = True) -> bytes:
    """The figure as PNG bytes; ``tight=False`` for a figure whose margins are set (``bbox_inches="tight"``
    draws the whole figure twice: a third of the plotting time of a short run)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, **({"bbox_inches": "tight"} if tight else {}))
    return buf.getvalue()


def write_plots(run_dir: Path, rows: list[dict], report: dict | None, task: str | None = None) -> list[str]:
    """curves.png (loss and the task's main metric per epoch) and confusion_matrix.png; returns the files written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    if rows:
        epochs = [r["epoch"] for r in rows]
        if task is None:
            task = "classification" if "train_acc" in rows[0] else "regression"
        second = TASKS[task].metric(TASKS[task].console[0]).column
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric in zip(axes, ("loss", second)):
            for split, style in (("train", "-o"), ("val", "-s")):
                pts = [(e, r.get(f"{split}_{metric}")) for e, r in zip(epochs, rows) if r.get(f"{split}_{metric}") is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=split, markersize=3)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.set_ylabel({"acc": "accuracy"}.get(metric, metric))
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(_plot_text(run_dir.name))
        # fixed margins (two panels of numbers; the class names of the confusion matrix need the tight box)
        fig.subplots_adjust(left=0.07, right=0.985, bottom=0.12, top=0.89, wspace=0.22)
        atomic_write_bytes(run_dir / "curves.png", _png(fig, tight=False))
        plt.close(fig)
        written.append("curves.png")
    if report is not None and report["task"] == "classification":
        r = report[report["split"]]
        import numpy as np
        cm = np.asarray(r["confusion_matrix"])
        k = cm.shape[0]
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * k + 2), max(3.5, 0.5 * k + 1.5)))
        im = ax.imshow(cm, cmap="Blues")
        names = [_plot_text(n) for n in r["class_names"]]
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
        fig.colorbar(im, ax=ax)
        ax.set_title(f"{report['split']} confusion matrix ({_fmt(r['accuracy'], True)})")
        atomic_write_bytes(run_dir / "confusion_matrix.png", _png(fig))
        plt.close(fig)
        written.append("confusion_matrix.png")
    return written
