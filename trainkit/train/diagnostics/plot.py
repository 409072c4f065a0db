"""``diagnostics.png``: one layer x epoch heatmap per quantity of ``diagnostics.jsonl``."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from trainkit.utils.atomic import atomic_write_bytes

__all__ = ["PANELS", "panel_matrix", "write_diagnostics_plot", "ZERO_DECADES"]

#: Log-scale panels draw an exact zero this many decades below the panel's smallest positive value.
ZERO_DECADES = 1

#: (key, title, log scale): the panels, in reading order. ``nonfinite`` is the largest of the three shares.
PANELS = (
    ("grad_norm", "gradient norm (log10)", True),
    ("weight_norm", "weight norm (log10)", True),
    ("update_ratio", "update / weight ratio (log10)", True),
    ("act_mean", "activation mean", False),
    ("act_std", "activation std", False),
    ("dead_fraction", "dead units (share)", False),
    ("nonfinite", "non-finite values (share)", False),
)


def _value(layer: dict, key: str):
    if key == "nonfinite":
        shares = [layer.get(k) for k in ("grad_nonfinite", "weight_nonfinite", "act_nonfinite")]
        shares = [s for s in shares if s is not None]
        return max(shares) if shares else None
    return layer.get(key)


def panel_matrix(rows: list[dict], key: str, log: bool = False) -> tuple[list[str], list[int], np.ndarray]:
    """``(layer labels, epochs, matrix)`` of one quantity: rows are layers that have it, columns epochs.

    Missing values are NaN; with ``log``, values are log10 and an exact zero (an update that rounds away
    entirely, a layer with no gradient at all) sits :data:`ZERO_DECADES` below the smallest positive
    value: the far end of the scale, not a blank.
    """
    epochs = [r["epoch"] for r in rows]
    labels: list[str] = []
    for r in rows:
        for layer in r["layers"]:
            label = f"{layer.get('name')} ({layer.get('type')})"
            if _value(layer, key) is not None and label not in labels:
                labels.append(label)
    m = np.full((len(labels), len(epochs)), np.nan)
    index = {label: i for i, label in enumerate(labels)}
    for j, r in enumerate(rows):
        for layer in r["layers"]:
            v = _value(layer, key)
            i = index.get(f"{layer.get('name')} ({layer.get('type')})")
            if i is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            m[i, j] = v
    if log:
        positive = m[m > 0]
        zero = math.log10(positive.min()) - ZERO_DECADES if positive.size else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(m > 0, np.log10(np.where(m > 0, m, 1.0)), np.where(m == 0, zero, np.nan))
    return labels, epochs, m


def _set_margins(fig, label_chars: int, nrows: int, cols: int) -> None:
    """Margins and gaps in inches, from the longest layer label (7-point text) and the fixed text around each
    panel: what ``tight_layout`` would find, without its extra pass over every text of the figure (it took a
    third of the drawing time)."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    labels = 0.15 + 0.056 * label_chars              # the y tick labels left of each panel
    colorbar = 0.55                                  # a panel's colour bar ticks, right of the share it takes
    left, right, top, bottom = labels, colorbar + 0.1, 0.62, 0.5
    gap_w, gap_h = colorbar + labels, 0.75           # between columns; between rows: x labels + next title
    axes_w = (width - left - right - gap_w * (cols - 1)) / cols
    axes_h = (height - top - bottom - gap_h * (nrows - 1)) / nrows
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=gap_w / max(axes_w, 0.5), hspace=gap_h / max(axes_h, 0.3))


def write_diagnostics_plot(run_dir, rows: list[dict]) -> bool:
    """Draw ``RUN/diagnostics.png`` from the rows; False (nothing written) when there are none."""
    if not rows:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title, panel_matrix(rows, key, log)) for key, title, log in PANELS]
    panels = [p for p in panels if p[2][0]]
    n_layers = max(len(p[2][0]) for p in panels)
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    height = max(2.2, 0.22 * n_layers + 1.2)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, height * nrows), squeeze=False)
    for ax, (key, title, (labels, epochs, m)) in zip(axes.flat, panels):
        finite = m[np.isfinite(m)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if key in ("dead_fraction", "nonfinite"):
            vmin, vmax = 0.0, 1.0
        im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", interpolation="nearest", cmap="viridis",
                       vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-12)
        ax.set_title(title, fontsize=9)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        step = max(1, len(epochs) // 12)
        ax.set_xticks(range(0, len(epochs), step), [str(e) for e in epochs[::step]], fontsize=7)
        ax.set_xlabel("epoch", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    warnings = [w for r in rows for w in r.get("warnings", [])]
    title = f"{Path(run_dir).name}: per-layer diagnostics"
    if warnings:
        title += f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''}: " \
                 + ", ".join(sorted({w['kind'] for w in warnings})) + ")"
    fig.suptitle(title, fontsize=10)
    _set_margins(fig, max(len(label) for p in panels for label in p[2][0]), nrows, cols)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(Path(run_dir) / "diagnostics.png", buf.getvalue())
    return True
