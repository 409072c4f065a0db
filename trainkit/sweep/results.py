"""What a sweep leaves at the end: the table of trials, ``trials.csv``, ``best.yaml``, ``sweep.png``."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..utils.atomic import atomic_write_bytes, atomic_write_text
from ..utils.text import cell

__all__ = ["best_trial", "trials_table", "write_results"]

STATE_STYLE = {"complete": "green", "pruned": "yellow", "failed": "red", "running": "dim"}


def best_trial(trials: list[dict], goal: str) -> dict | None:
    """The complete trial with the best value (None when none completed)."""
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None and math.isfinite(t["value"])]
    if not done:
        return None
    return (max if goal == "maximize" else min)(done, key=lambda t: t["value"])


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if not isinstance(v, str) else v


def trials_table(trials: list[dict], spec: dict, title: str):
    """A rich table of the trials (parameter names and values shown literally, never as markup)."""
    from rich.table import Table

    best = best_trial(trials, spec["goal"])
    table = Table(title=cell(title))
    table.add_column("trial", justify="right")
    table.add_column("state")
    table.add_column(cell(f"{spec['metric']} ({'max' if spec['goal'] == 'maximize' else 'min'})"), justify="right")
    table.add_column("epochs", justify="right")
    for name in spec["parameters"]:
        table.add_column(cell(name), justify="right")
    for t in trials:
        value = f"{t['value']:.4f}" if t["value"] is not None else "-"
        state = t["state"] if t["state"] != "running" else "unfinished"
        mark = " *" if best is not None and t["number"] == best["number"] else ""
        table.add_row(str(t["number"]) + mark, f"[{STATE_STYLE.get(t['state'], 'dim')}]{state}[/]", value,
                      str(t["epochs"] or "-"), *(cell(_value(t["params"].get(n))) for n in spec["parameters"]))
    return table


def write_results(path: Path, trials: list[dict], spec: dict) -> list[str]:
    """Write trials.csv, best.yaml (when a trial completed) and sweep.png; returns lines to print."""
    from ..config import dump_yaml, parse_yaml

    lines = []
    names = list(spec["parameters"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "state", spec["metric"], "epochs", *names, "run_dir", "message"])
    for t in trials:
        w.writerow([t["number"], t["state"], "" if t["value"] is None else repr(t["value"]), t["epochs"] or "",
                    *(_value(t["params"].get(n)) for n in names), t["run_dir"], t.get("message") or ""])
    atomic_write_text(path / "trials.csv", buf.getvalue())
    lines.append(f"trials: {path / 'trials.csv'}")
    best = best_trial(trials, spec["goal"])
    if best is not None:
        run_config = path / best["run_dir"] / "config.yaml"
        data, _ = parse_yaml(run_config.read_text(), str(run_config))
        data.pop("sweep", None)
        head = (f"# best trial {best['number']} of the sweep in {path.name}: {spec['metric']} "
                f"{best['value']:.6g}\n# " + ", ".join(f"{k}={_value(v)}" for k, v in best["params"].items())
                + f"\n# train it:  trainkit train {path / 'best.yaml'}\n")
        atomic_write_text(path / "best.yaml", head.replace("\n# ", "\n# ").replace("\r", "") + dump_yaml(data))
        lines.append(f"best trial {best['number']}: {spec['metric']} {best['value']:.4f}; config: {path / 'best.yaml'}")
    else:
        lines.append("no trial completed: no best.yaml")
    png = _plot(trials, spec)
    if png is not None:
        atomic_write_bytes(path / "sweep.png", png)
        lines.append(f"plot: {path / 'sweep.png'}")
    return lines


def _plot(trials: list[dict], spec: dict) -> bytes | None:
    """The metric against each parameter (complete trials as dots, pruned ones as crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [t for t in trials if t["value"] is not None]
    if not shown:
        return None
    names = list(spec["parameters"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        p = spec["parameters"][name]
        numeric = p["space"] not in ("choice", "grid") or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in p["values"])
        labels = None if numeric else [_value(v) for v in dict.fromkeys(map(_value, p["values"]))]
        for state, marker, color in (("complete", "o", "tab:blue"), ("pruned", "x", "tab:orange")):
            pts = [t for t in shown if t["state"] == state]
            xs = [t["params"][name] if numeric else labels.index(_value(t["params"][name])) for t in pts]
            ax.scatter(xs, [t["value"] for t in pts], marker=marker, color=color, label=state)
        if p["space"] == "loguniform" or (p["space"] == "int" and p["log"]):
            ax.set_xscale("log")
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(name)
        ax.set_ylabel(spec["metric"])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out.getvalue()
