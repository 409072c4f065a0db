"""``RUN/report.html``: one self-contained page about a run, readable offline.

It holds the run's facts, the diagnostics' warnings, the loss and metric
curves (hover: the epoch's values), the per-epoch table, the test report
(per-class table, confusion matrix), the per-layer diagnostics as layer x
epoch heatmaps (hover: the value), the model (summary table and layer graph,
an SVG when Graphviz is installed, else the DOT text) and the config. It is
built only from the run directory's files (plus the model summary when the
caller has one), so ``trainkit report RUN`` rebuilds it at any time. Nothing
is fetched: styles, script, pictures and data are inline, user text escaped.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import RunDirError
from ..registry.tasks import TASKS
from ..views.html import CSS, SCRIPT, color_scale, dot_svg, esc, heatmap_png, json_for_script, line_chart, table
from trainkit.utils.atomic import atomic_write_text
from .diagnostics import read_rows
from .diagnostics.plot import PANELS, ZERO_DECADES, panel_matrix
from .rundir import MetricsLog, open_run

__all__ = ["build_html", "write_html_report", "REPORT_HTML"]

REPORT_HTML = "report.html"
#: Text files shown in the page are cut at this size (a config is at most 1 MiB anyway).
MAX_TEXT = 1024 * 1024
_COLORS = {"train": "#2563eb", "val": "#ea580c"}


def _text(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TEXT + 1)
    except OSError:
        return None
    text = raw[:MAX_TEXT].decode("utf-8", errors="replace")
    return text + ("\n... (cut)" if len(raw) > MAX_TEXT else "")


def _report(path: Path) -> dict | None:
    text = _text(path / "report.json")
    if text is None:
        return None
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) and isinstance(report.get(report.get("split")), dict) else None


def _num(v, pct: bool = False) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "-"
    if pct:
        return f"{100 * v:.2f}%"
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _task(rows, report, info) -> str:
    task = (report or {}).get("task") or (info.get("data") or {}).get("task")
    return task if task in TASKS else ("classification" if rows and "train_acc" in rows[0] else "regression")


# ---------------------------------------------------------------------- sections
def _facts(info: dict, rows: list[dict], report: dict | None) -> str:
    data = info.get("data") or {}
    best = info.get("best_metric") or {}
    facts = [("status", info.get("status")), ("run", info.get("id")),
             ("dataset", f"{data.get('dataset', '-')} ({data.get('task', '-')}; train {data.get('train', '-')}, "
                         f"val {data.get('val', '-')}, test {data.get('test', '-')})" if data else "-"),
             ("epochs", f"{info.get('epochs_done', '-')} of {info.get('epochs_planned', '-')}"),
             ("best", f"{best.get('name')} {_num(best.get('value'), str(best.get('name', '')).endswith('acc'))} "
                      f"(epoch {best.get('epoch')})" if best else "-"),
             ("started", info.get("start_time")), ("ended", info.get("end_time")),
             ("duration", f"{info.get('duration_s', 0) or 0:.1f} s"), ("seed", info.get("seed")),
             ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
             ("command", " ".join(map(str, info.get("command") or [])))]
    if info.get("message"):
        facts.insert(1, ("message", info["message"]))
    kv = "".join(f"<div>{esc(k)}</div><div>{esc(v if v is not None else '-')}</div>" for k, v in facts)
    headline = ""
    if report is not None:
        split = report["split"]
        r = report[split]
        if report.get("task") == "classification":
            headline = (f"{esc(split)} accuracy {_num(r.get('accuracy'), True)} · loss {_num(r.get('loss'))} · "
                        f"macro F1 {_num(r.get('macro_f1'))}")
        else:
            headline = (f"{esc(split)} MSE {_num(r.get('mse'))} · MAE {_num(r.get('mae'))} · "
                        f"R² {_num(r.get('r2'))}")
        headline = (f'<div class="headline">{headline}</div><div class="muted">{_num(r.get("n"))} samples, '
                    f'checkpoint {esc(report.get("checkpoint"))} (epoch {esc(report.get("epoch"))})</div>')
    return f'<div class="card">{headline}<div class="kv" style="margin-top:8px">{kv}</div></div>'


def _warnings(diag_rows: list[dict]) -> str:
    if not diag_rows:
        return '<p class="muted">No diagnostics were recorded (train.diagnostics was off, or no epoch finished).</p>'
    warnings = [w for r in diag_rows for w in r.get("warnings", []) if isinstance(w, dict)]
    if not warnings:
        return '<div class="ok">No warnings: no layer looked unhealthy.</div>'
    out = []
    for w in warnings:
        where = f"epoch {w.get('epoch')}" + (f", step {w.get('step')}" if w.get("step") is not None else "")
        out.append(f'<div class="warn"><b>{esc(str(w.get("kind", "")).replace("_", " "))}</b> '
                   f'<span class="muted">({esc(where)})</span><br>{esc(w.get("message"))}</div>')
    return "".join(out)


def _curves(rows: list[dict], task: str) -> str:
    if not rows:
        return '<p class="muted">No epoch finished yet.</p>'
    epochs = [r["epoch"] for r in rows]
    metric = TASKS[task].metric(TASKS[task].console[0])
    title = {"acc": "accuracy"}.get(metric.column, metric.column)
    charts = []
    for key, name, pct in (("loss", "loss", False), (metric.column, title, metric.column == "acc")):
        series = [{"name": split, "values": [r.get(f"{split}_{key}") for r in rows], "color": _COLORS[split],
                   "dashed": split == "train"} for split in ("train", "val")]
        series = [s for s in series if any(v is not None for v in s["values"])]
        charts.append(line_chart(f"chart-{key}", name, epochs, series, percent=pct))
    if any(r.get("lr") is not None for r in rows):
        charts.append(line_chart("chart-lr", "learning rate", epochs,
                                 [{"name": "lr", "values": [r.get("lr") for r in rows], "color": "#059669"}]))
    return f'<div class="charts">{"".join(charts)}</div>'


def _epoch_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return ""
    body = [[r.get(c) if c == "epoch" else _num(r.get(c), c.endswith("_acc")) for c in columns] for r in rows]
    return f'<div class="scroll">{table(columns, body)}</div>'


#: Confusion matrices with more classes than this are drawn as a heatmap (one pixel per cell) instead of a table.
MAX_TABLE_CLASSES = 30


def _heat_block(key: str, title: str, labels: list[str], cols: list, m: np.ndarray, vmin: float, vmax: float,
                scale: tuple[str, str], x_name: str, first_last: tuple[str, str], cell_w: int, cell_h: int) -> str:
    ylabels = "".join(f'<span style="height:{cell_h}px;line-height:{cell_h}px">{esc(label)}</span>'
                      for label in labels)
    return (f'<figure class="heat-fig"><h3>{esc(title)}</h3><div class="heat"><div class="yl">{ylabels}</div>'
            f'<img class="tk-heat" data-panel="{esc(key)}" alt="{esc(title)}" src="{heatmap_png(m, vmin, vmax)}" '
            f'width="{cell_w * len(cols)}" height="{cell_h * len(labels)}">'
            f'<div class="xl"><span>{esc(x_name)} {esc(first_last[0])}</span><span>{esc(first_last[1])}</span></div>'
            f'<div class="scale">{esc(scale[0])}<img alt="" src="{color_scale(vmin, vmax)}">{esc(scale[1])}</div>'
            f'</div></figure>')


def _test_report(report: dict | None, heat: dict) -> str:
    if report is None:
        return '<p class="muted">No test report (the data has no test or validation split, or training did not ' \
               'complete).</p>'
    r = report[report["split"]]
    if report.get("task") != "classification":
        keys = [k for k in ("mse", "mae", "rmse", "r2", "loss", "n") if k in r]
        return table(["metric", "value"], [[k, _num(r[k])] for k in keys])
    per_class = table(["class", "precision", "recall", "F1", "support"],
                      [[c.get("class"), _num(c.get("precision")), _num(c.get("recall")), _num(c.get("f1")),
                        c.get("support")] for c in r.get("per_class", [])])
    names = [str(n) for n in r.get("class_names", [])]
    cm = np.asarray(r.get("confusion_matrix") or [], dtype=np.float64)
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        return per_class
    if len(names) > MAX_TABLE_CLASSES:
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        heat["confusion"] = {"title": "count", "labels": names, "x": "predicted", "epochs": names,
                             "values": cm.astype(int).tolist()}
        block = _heat_block("confusion", "confusion matrix (rows: true class; colour: share of the row)", names,
                            names, share, 0.0, 1.0, ("0", "1"), "predicted", (names[0], names[-1]), 6, 12)
        return f'<div class="charts"><div><h3>per class</h3><div class="scroll">{per_class}</div></div>{block}</div>'
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>"
    body = []
    for name, row in zip(names, cm):
        total = row.sum() or 1.0
        cells = []
        for v in row:
            a = v / total
            color = "#fff" if a > 0.55 else "#1d2330"
            cells.append(f'<td class="num" style="background:rgba(37,99,235,{a:.3f});color:{color}" '
                         f'title="{100 * a:.1f}% of the row">{int(v)}</td>')
        body.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    matrix = (f'<div class="scroll"><table class="cm"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
              f'</div><p class="muted">Rows: true class; shade: share of the row (recall on the diagonal).</p>')
    return f'<div class="charts"><div><h3>per class</h3>{per_class}</div><div><h3>confusion matrix</h3>' \
           f'{matrix}</div></div>'


def _heatmaps(diag_rows: list[dict]) -> tuple[str, dict]:
    if not diag_rows:
        return "", {}
    blocks, data = [], {}
    for key, title, log in PANELS:
        labels, epochs, m = panel_matrix(diag_rows, key, log)
        if not labels:
            continue
        _, _, raw = panel_matrix(diag_rows, key, False)
        finite = m[np.isfinite(m)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if key in ("dead_fraction", "nonfinite"):
            vmin, vmax = 0.0, 1.0
        cell_w = max(4, min(26, 520 // max(len(epochs), 1)))
        scale = (f"10^{vmin:.1f}", f"10^{vmax:.1f}") if log else (f"{vmin:.3g}", f"{vmax:.3g}")
        blocks.append(_heat_block(key, title, labels, epochs, m, vmin, vmax, scale, "epoch",
                                  (str(epochs[0]), str(epochs[-1])), cell_w, 14))
        values = [[None if not math.isfinite(v) else float(f"{v:.4g}") for v in row] for row in raw]
        data[key] = {"title": title.replace(" (log10)", ""), "labels": labels, "x": "epoch", "epochs": epochs,
                     "values": values}
    last = diag_rows[-1]
    cols = ["grad_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "dead_fraction"]
    rows = [[f"{layer.get('name')} ({layer.get('type')})"] + [_num(layer.get(c)) for c in cols]
            for layer in last.get("layers", [])]
    detail = (f'<h3>per layer, epoch {esc(last.get("epoch"))}</h3><div class="scroll">'
              f'{table(["layer"] + cols, rows)}</div>')
    note = (f'<p class="muted">Log-scale panels draw an exact zero {ZERO_DECADES} decade below the smallest value; '
            f'grey: not measured. Hover a cell for its value.</p>')
    return f'<div class="heats">{"".join(blocks)}</div>{note}{detail}', data


def _model(summary, dot_text: str | None, note: str | None) -> str:
    parts = []
    if summary is not None:
        rows = [[r.name, r.type, " x ".join(map(str, r.output_shape)), f"{r.params:,}",
                 "-" if r.macs is None else f"{r.macs:,}"] for r in summary.rows]
        parts.append(f'<p>{summary.params:,} parameters ({summary.trainable:,} trainable); input '
                     f'{esc(" x ".join(map(str, summary.input_shape)))} per sample.</p>'
                     f'<div class="scroll">{table(["layer", "type", "output shape", "params", "mult-adds"], rows, numeric_from=2)}'
                     f'</div>')
    if dot_text:
        svg = dot_svg(dot_text)
        if svg is not None:
            parts.append(f'<h3>layer graph</h3><div class="graph card">{svg}</div>')
        else:
            parts.append('<h3>layer graph</h3><p class="muted">Graphviz\'s <code>dot</code> is not installed '
                         '(e.g. <code>apt install graphviz</code>), so here is the graph as DOT text; '
                         '<code>dot -Tsvg</code> draws it.</p>' f"<pre>{esc(dot_text)}</pre>")
    if note:
        parts.append(f'<p class="muted">{esc(note)}</p>')
    return "".join(parts) or '<p class="muted">The model could not be described.</p>'


# ---------------------------------------------------------------------- page
def build_html(run_dir, summary=None, dot_text: str | None = None, model_note: str | None = None) -> str:
    """The page for the run in ``run_dir`` (see the module docstring).

    Args:
        summary: the model's :class:`~trainkit.views.summary.Summary`, if the caller built it.
        dot_text: the layer graph in DOT (rendered to SVG when Graphviz is installed).
        model_note: why the model is not shown, when it could not be rebuilt.
    """
    run_dir = Path(run_dir)
    info = open_run(run_dir).data
    rows = MetricsLog(run_dir).rows()
    report = _report(run_dir)
    try:
        diag_rows = read_rows(run_dir)
    except RunDirError as exc:
        diag_rows, model_note = [], f"{model_note + '; ' if model_note else ''}diagnostics unreadable: {exc}"
    task = _task(rows, report, info)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    heat_html, heat_data = _heatmaps(diag_rows)
    payload = {"rows": [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}
                        for r in rows], "columns": columns, "heat": heat_data}
    config = _text(run_dir / "config.yaml")
    title = f"{info.get('name') or run_dir.name} — trainkit report"
    sections = [
        ("warnings", "Diagnostics warnings", _warnings(diag_rows)),
        ("curves", "Curves", _curves(rows, task) + '<p class="muted">Hover a chart for the epoch\'s values; '
                                                    'train dashed, val solid.</p>'),
        ("epochs", "Per epoch", _epoch_table(rows, columns)),
        ("test", "Test report", _test_report(report, heat_data)),
        ("diagnostics", "Per-layer diagnostics", heat_html or _warnings(diag_rows)),
        ("model", "Model", _model(summary, dot_text, model_note)),
        ("config", "Config", f"<pre>{esc(config) if config is not None else '(no config.yaml)'}</pre>"),
    ]
    nav = "".join(f'<a href="#{key}">{esc(name)}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{esc(name)}</h2>{content}</section>' for key, name, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{esc(info.get('name') or run_dir.name)}</h1><nav>{nav}</nav>{_facts(info, rows, report)}{body}"
            f'<p class="muted">Written by trainkit from {esc(run_dir.name)}; rebuild with '
            f"<code>trainkit report {esc(run_dir.name)}</code>.</p></main><div id=\"tip\"></div>"
            f'<script type="application/json" id="tk-data">{json_for_script(payload)}</script>'
            f"<script>{SCRIPT}</script></body></html>\n")


def write_html_report(run_dir, summary=None, dot_text: str | None = None, model_note: str | None = None) -> Path:
    """Write ``RUN/report.html`` atomically and return its path."""
    path = Path(run_dir) / REPORT_HTML
    atomic_write_text(path, build_html(run_dir, summary, dot_text, model_note))
    return path
