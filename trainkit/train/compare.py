"""``trainkit compare RUN RUN...``: several runs side by side — curves, config differences, final metrics.

:func:`load_runs` reads each run directory (``run.json``, ``config.yaml``,
``metrics.jsonl``, ``report.json`` when present) without building anything;
:func:`config_differences` names the differing values by the dotted keys ``--set`` takes
(``optimizer.lr``, ``model.layers.3.linear.out_features``); :func:`final_metrics` takes each run's last epoch, best
checkpoint and test result; :func:`write_compare_plot` overlays the loss and
the main metric (train dashed, val solid, one colour per run). A sweep calls
the same functions, or reads ``trainkit compare --json``.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..config.loader import read_config_text
from ..config.yamlsafe import parse_yaml
from ..errors import ConfigError, RunDirError, TrainkitError
from ..registry.tasks import TASKS
from trainkit.utils.atomic import atomic_write_bytes
from .rundir import MetricsLog, open_run

__all__ = ["RunData", "load_runs", "config_differences", "final_metrics", "main_metric", "write_compare_plot",
           "compare_tables", "MAX_RUNS"]

#: More runs than this make an unreadable plot and table: compare a subset.
MAX_RUNS = 20
_MISSING = "—"


@dataclass
class RunData:
    """What compare needs from one run directory."""

    path: Path
    label: str
    info: dict
    config: dict
    rows: list[dict]
    report: dict | None = None
    task: str = "classification"
    extra: dict = field(default_factory=dict)


def _task(rows: list[dict], report: dict | None, info: dict) -> str:
    task = (report or {}).get("task") or (info.get("data") or {}).get("task")
    if task in TASKS:
        return task
    keys = set(rows[0]) if rows else set()
    return next((name for name, t in TASKS.items() if f"train_{t.metric(t.console[0]).column}" in keys),
                "classification")


def _read_report(path: Path) -> dict | None:
    file = path / "report.json"
    if not file.is_file():
        return None
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{file}: cannot read the report ({exc})") from None
    return report if isinstance(report, dict) else None


def load_run(path) -> RunData:
    """Read one run directory (refused with a RunDirError when it is not one)."""
    path = Path(path)
    info = open_run(path).data
    try:
        config = parse_yaml(read_config_text(path / "config.yaml"), str(path / "config.yaml"))[0]
    except ConfigError as exc:
        raise RunDirError(f"{path}: cannot read its config.yaml ({exc})") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path / 'config.yaml'}: expected a mapping")
    rows = MetricsLog(path).rows()
    report = _read_report(path)
    return RunData(path, path.name, info, config, rows, report, _task(rows, report, info))


def load_runs(paths) -> list[RunData]:
    """Read every run; two paths to the same directory, or more than :data:`MAX_RUNS`, are refused."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise TrainkitError("compare needs at least two run directories")
    if len(paths) > MAX_RUNS:
        raise TrainkitError(f"compare takes at most {MAX_RUNS} runs, got {len(paths)}")
    seen = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise TrainkitError(f"{p}: given twice (also as {seen[key]})")
        seen[key] = p
    runs = [load_run(p) for p in paths]
    names = [r.label for r in runs]
    if len(set(names)) < len(names):  # same folder name under different parents: show the parent too
        for r in runs:
            r.label = f"{r.path.parent.name}/{r.path.name}"
    return runs


def _layer_text(item) -> str:
    if isinstance(item, dict) and len(item) == 1:
        (typ, args), = item.items()
        inner = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in (args or {}).items())
        return f"{typ}({inner})" if inner else str(typ)
    return str(item)


def _layer_types(config) -> list | None:
    layers = (config.get("model") or {}).get("layers") if isinstance(config.get("model"), dict) else None
    if not isinstance(layers, list):
        return None
    return [next(iter(x)) if isinstance(x, dict) and len(x) == 1 else x for x in layers]


def config_differences(runs: list[RunData]) -> list[tuple[str, list]]:
    """``(dotted key, [value per run])`` for every key whose value is not the same in all runs.

    A key a run lacks shows as ``—``. ``name`` is left out: run labels name the runs.
    Layer lists of different structure are compared as one ``model.layers`` row
    (``flatten -> linear(out_features=64) -> relu ...``), not argument by argument.
    """
    configs = [dict(r.config) for r in runs]
    types = [_layer_types(c) for c in configs]
    if any(t is not None for t in types) and any(t != types[0] for t in types[1:]):
        for c in configs:
            layers = (c.get("model") or {}).get("layers")
            if isinstance(layers, list):
                c["model"] = {**c["model"], "layers": " -> ".join(_layer_text(x) for x in layers)}
    out: list[tuple[str, list]] = []
    _differences([{k: v for k, v in c.items() if k != "name"} for c in configs], "", out)
    return out


def _same(values: list) -> bool:
    first = json.dumps(values[0], sort_keys=True, default=str)
    return all(json.dumps(v, sort_keys=True, default=str) == first for v in values[1:])


def _differences(values: list, prefix: str, out: list) -> None:
    """Descend while every run has a mapping (or a list of one length) here; else compare whole values."""
    if _same(values):
        return
    if all(isinstance(v, dict) for v in values):
        keys: list = []
        for v in values:
            keys += [k for k in v if k not in keys]
        for k in keys:
            _differences([v.get(k, _MISSING) for v in values], f"{prefix}.{k}" if prefix else str(k), out)
    elif all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        for i in range(len(values[0])):
            _differences([v[i] for v in values], f"{prefix}.{i}", out)
    else:
        out.append((prefix, values))


def main_metric(task: str) -> tuple[str, str]:
    """``(column, title)`` of the task's main metric: ``("acc", "accuracy")``, ``("r2", "R²")``..."""
    metric = TASKS[task].metric(TASKS[task].console[0])
    return metric.column, {"acc": "accuracy", "r2": "R²"}.get(metric.column, metric.column)


def final_metrics(run: RunData) -> dict:
    """The run's status, epochs, last train/val loss and main metric, best checkpoint and test result."""
    column, _ = main_metric(run.task)
    last = run.rows[-1] if run.rows else {}
    last_val = next((r for r in reversed(run.rows) if r.get("val_loss") is not None), {})
    best = run.info.get("best_metric") or {}
    out = {"status": run.info.get("status"), "epochs": last.get("epoch"),
           "train_loss": last.get("train_loss"), f"train_{column}": last.get(f"train_{column}"),
           "val_loss": last_val.get("val_loss"), f"val_{column}": last_val.get(f"val_{column}"),
           "best": {"name": best.get("name"), "value": best.get("value"), "epoch": best.get("epoch")} if best else None,
           "test": None, "seconds": sum(r.get("seconds") or 0 for r in run.rows) or None}
    rep = run.report
    if rep and isinstance(rep.get(rep.get("split")), dict):
        split = rep[rep["split"]]
        key = {"acc": "accuracy"}.get(column, column)
        out["test"] = {"split": rep["split"], "loss": split.get("loss"), column: split.get(key)}
    return out


def _fmt(value, column: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _MISSING
    if isinstance(value, float):
        return f"{100 * value:.2f}%" if column.endswith("acc") else f"{value:.4g}"
    return str(value)


def compare_tables(runs: list[RunData]) -> list:
    """Rich tables: the configs' differences and the final metrics (user text escaped)."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
    diffs = config_differences(runs)
    if diffs:
        t = Table(title="config differences")
        t.add_column("key")
        for r in runs:
            t.add_column(escape(r.label), overflow="fold")
        for key, values in diffs:
            t.add_row(escape(key), *[escape(v if isinstance(v, str) else json.dumps(v, default=str))
                                     for v in values])
        tables.append(t)
    else:
        tables.append("[dim]the configs are identical (apart from their names)[/]")
    titles = {main_metric(r.task)[1] for r in runs}
    title = titles.pop() if len(titles) == 1 else "metric"
    t = Table(title="final metrics (last epoch; best checkpoint; its test result)")
    cols = ["run", "status", "epochs", "train loss", f"train {title}", "val loss", f"val {title}", "best",
            "test loss", f"test {title}"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("run", "status", "best") else "right", no_wrap=c == "run")
    for r in runs:
        m = final_metrics(r)
        column, _ = main_metric(r.task)
        best = m["best"]
        best_text = f"{_fmt(best['value'], best['name'] or '')} (epoch {best['epoch']})" if best else _MISSING
        test = m["test"] or {}
        t.add_row(escape(r.label), escape(str(m["status"])), _fmt(m["epochs"]), _fmt(m["train_loss"]),
                  _fmt(m[f"train_{column}"], column), _fmt(m["val_loss"]), _fmt(m[f"val_{column}"], column),
                  escape(best_text), _fmt(test.get("loss")), _fmt(test.get(column), column))
    tables.append(t)
    return tables


def compare_json(runs: list[RunData]) -> dict:
    """The machine-readable form of the tables (``trainkit compare --json``)."""
    return {"runs": [{"path": str(r.path), "label": r.label, "task": r.task, **final_metrics(r)} for r in runs],
            "config_differences": {key: values for key, values in config_differences(runs)}}


def write_compare_plot(runs: list[RunData], path) -> Path:
    """Overlay the runs' loss and main-metric curves (train dashed, val solid) in one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors
    metric_titles = set()
    for k, run in enumerate(runs):
        column, title = main_metric(run.task)
        metric_titles.add(title)
        for ax, metric in zip(axes, ("loss", column)):
            for split, style in (("train", "--"), ("val", "-")):
                pts = [(r["epoch"], r.get(f"{split}_{metric}")) for r in run.rows
                       if isinstance(r.get(f"{split}_{metric}"), (int, float))]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colours[k % len(colours)],
                            marker="o" if split == "val" else None, markersize=3,
                            label=f"{run.label} ({split})")
    axes[0].set_ylabel("loss")
    axes[1].set_ylabel(" / ".join(sorted(metric_titles)))
    from matplotlib.ticker import MaxNLocator
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(f"{len(runs)} runs: train dashed, val solid", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * math.ceil(len(labels) / 4), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
