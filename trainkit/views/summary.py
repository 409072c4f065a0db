"""Model summary (a table of layers with shapes, parameters and multiply-adds) and its Graphviz picture.

    summary = summarize(config, model, input_shape)
    render_summary(summary, console)                # rich table + totals
    text = to_dot(summary)                          # Graphviz DOT
    render_dot(text, "model.svg")                   # needs the 'dot' program

Independent of the CLI; ``trainkit summary`` and ``trainkit train`` call these.
Shapes and multiply-adds come from the layers' declared shape rules (per
sample, for inference: a linear layer counts ``in * out``, a convolution
``C_out * H_out * W_out * C_in * kH * kW``, batch norm one per element,
activations and pooling none). Undeclared custom layers have no count (shown
as ``?``; the total then covers the other layers only).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trainkit.assemble.model import ModelPlan, plan_model
from trainkit.errors import TrainkitError
from trainkit.nn.graph import INPUT
from trainkit.nn.module import Module
from trainkit.registry import LAYERS, fmt
from trainkit.utils.text import cell, shown
from trainkit.utils.units import human_bytes, human_count  # noqa: F401 - re-exported for callers

__all__ = ["SummaryRow", "Summary", "summarize", "render_summary", "to_dot", "render_dot", "write_dot",
           "dot_available", "human_bytes", "human_count"]


@dataclass
class SummaryRow:
    """One layer: name, YAML type, input names, per-sample output shape, parameters, multiply-adds."""

    name: str
    type: str
    inputs: list[str]
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    macs: int | None
    description: str = ""


@dataclass
class Summary:
    """The model's rows and totals.

    ``param_bytes`` is the memory of the parameters, ``buffer_bytes`` that of
    buffers such as batch norm running statistics; ``macs`` sums the known
    per-sample multiply-adds (``macs_complete`` is False when a layer has none).
    """

    name: str
    input_shape: tuple[int, ...]
    rows: list[SummaryRow]
    output: str
    params: int
    trainable: int
    param_bytes: int
    buffer_bytes: int
    macs: int
    macs_complete: bool
    final_shape: tuple[int, ...] | None = None

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the model's output (one output of a multi-output node: ``lstm.h_n``)."""
        if self.final_shape is not None:
            return self.final_shape
        return next(r.output_shape for r in self.rows if r.name == self.output)

    def to_dict(self) -> dict:
        """JSON-friendly form (for ``--json`` output and run directories)."""
        return {"name": self.name, "input_shape": list(self.input_shape), "output": self.output,
                "params": self.params, "trainable": self.trainable, "param_bytes": self.param_bytes,
                "buffer_bytes": self.buffer_bytes, "macs": self.macs, "macs_complete": self.macs_complete,
                "rows": [{"name": r.name, "type": r.type, "inputs": r.inputs,
                          "output_shape": list(r.output_shape), "params": r.params, "macs": r.macs}
                         for r in self.rows]}


def summarize(config, model: Module, input_shape, plan: ModelPlan | None = None) -> Summary:
    """Describe ``model`` (built from ``config`` for samples of ``input_shape``).

    Shapes and multiply-adds come from the config's shape inference (custom
    layers are run once on a zero sample, using the model's own modules);
    parameter counts from the model itself.
    """
    if plan is None:
        modules = dict(model.named_modules())
        plan = plan_model(config, input_shape, modules=modules)
    rows = []
    for n in plan.nodes:
        sub = model.get_submodule(n.name)
        params = list(sub.parameters())
        rows.append(SummaryRow(n.name, n.type, list(n.inputs), n.out_shape,
                               sum(p.numel() for p in params),
                               sum(p.numel() for p in params if p.requires_grad), n.macs,
                               sub.extra_repr()))
    all_params = list(model.parameters())
    known = [r.macs for r in rows if r.macs is not None]
    return Summary(
        name=config.name, input_shape=tuple(plan.input_shape), rows=rows, output=plan.output,
        params=sum(p.numel() for p in all_params),
        trainable=sum(p.numel() for p in all_params if p.requires_grad),
        param_bytes=sum(p._array.nbytes for p in all_params),
        buffer_bytes=sum(b._array.nbytes for b in model.buffers()),
        macs=int(sum(known)), macs_complete=len(known) == len(rows), final_shape=tuple(plan.output_shape))


def render_summary(summary: Summary, console=None) -> None:
    """Print the summary as a rich table with totals (to ``console``, default a new rich Console)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"Model: {shown(summary.name)}", title_justify="left", show_footer=False)
    # A sequential model's inputs are always the row above; show them for graphs only.
    graph = any(r.inputs != [prev] for r, prev in zip(summary.rows, [INPUT] + [r.name for r in summary.rows]))
    table.add_column("Name", style="bold", overflow="fold")
    table.add_column("Type", overflow="fold")
    if graph:
        table.add_column("Inputs", overflow="fold")
    table.add_column("Output shape", no_wrap=True)
    table.add_column("Params", justify="right", no_wrap=True)
    table.add_column("Mult-adds", justify="right", no_wrap=True)
    first = [INPUT, ""] + ([""] if graph else []) + [fmt(summary.input_shape), "", ""]
    table.add_row(*first, style="dim")
    for r in summary.rows:
        cells = [cell(r.name), cell(r.type)] + ([cell(", ".join(r.inputs))] if graph else [])
        table.add_row(*cells, fmt(r.output_shape), f"{r.params:,}" if r.params else "-",
                      "?" if r.macs is None else (f"{r.macs:,}" if r.macs else "-"))
    console.print(table)
    frozen = summary.params - summary.trainable
    lines = [
        f"Parameters: {summary.params:,}"
        + (f" ({summary.trainable:,} trainable, {frozen:,} frozen)" if frozen else "")
        + f" = {human_bytes(summary.param_bytes)}"
        + (f" (+ {human_bytes(summary.buffer_bytes)} buffers)" if summary.buffer_bytes else ""),
        f"Mult-adds per sample: {summary.macs:,} ({human_count(summary.macs)})"
        + ("" if summary.macs_complete else " (custom layers not counted)"),
        f"Input {fmt(summary.input_shape)} -> output {fmt(summary.output_shape)} per sample",
    ]
    for line in lines:
        console.print(line, highlight=False)


_NL = "\\n"  # a line break inside a DOT label


def _dot_quote(text: str) -> str:
    # Backslashes are kept: labels use DOT's own "\n" line breaks.
    return '"' + str(text).replace('"', '\\"') + '"'


def to_dot(summary: Summary) -> str:
    """The layer graph in Graphviz DOT: one box per layer (name, type, shape, params), edges from inputs."""
    lines = [f"digraph {_dot_quote(summary.name)} {{",
             "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];',
             f"  {_dot_quote(INPUT)} [label={_dot_quote(INPUT + _NL + fmt(summary.input_shape))}, "
             'shape=ellipse, fillcolor="#dfeedd"];']
    shapes = {INPUT: summary.input_shape}
    for r in summary.rows:
        label = f"{r.name}{_NL}{r.type}"
        if r.params:
            label += f"{_NL}{r.params:,} params"
        merge = r.type in LAYERS and LAYERS[r.type].merges
        fill = "#fdf0d5" if merge else "#eef3fb"
        if r.name == summary.output:
            fill = "#f8d7da"
        lines.append(f"  {_dot_quote(r.name)} [label={_dot_quote(label)}, "
                     f'fillcolor="{fill}"];')
        shapes[r.name] = r.output_shape
    for r in summary.rows:
        for src in r.inputs:
            lines.append(f"  {_dot_quote(src)} -> {_dot_quote(r.name)} "
                         f"[label={_dot_quote(fmt(shapes.get(src, ())))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    """Whether the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def render_dot(dot_text: str, path, fmt_: str | None = None) -> Path:
    """Render DOT text to ``path`` (svg or png, from ``fmt_`` or the file suffix) with Graphviz.

    Raises:
        TrainkitError: ``dot`` is not installed (the message says how to get it),
            or it failed.
    """
    path = Path(path)
    kind = (fmt_ or path.suffix.lstrip(".")).lower()
    if kind not in ("svg", "png"):
        raise TrainkitError(f"cannot render '{path}': choose an .svg or .png file")
    exe = shutil.which("dot")
    if exe is None:
        raise TrainkitError(f"cannot render {kind.upper()}: the Graphviz 'dot' program is not on PATH "
                            "(install graphviz, e.g. 'apt install graphviz'); the DOT text can be "
                            "rendered elsewhere with 'dot -T" + kind + " model.dot'")
    proc = subprocess.run([exe, f"-T{kind}", "-o", str(path)], input=dot_text.encode(),
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise TrainkitError(f"Graphviz dot failed on '{path}': {proc.stderr.decode(errors='replace').strip()}")
    return path


def write_dot(summary: Summary, path, svg: bool = False, png: bool = False) -> list[str]:
    """Write the DOT file and, when asked, render ``.svg``/``.png`` next to it (same stem).

    Returns one line per file for the console: what was written, or, when
    Graphviz is missing, that the picture was not rendered and how to render it
    later. A failing ``dot`` run raises :class:`TrainkitError`.
    """
    path = Path(path)
    try:
        path.write_text(to_dot(summary))
    except OSError as e:
        raise TrainkitError(f"cannot write '{path}': {e.strerror or e}") from None
    lines = [f"wrote {path}"]
    for kind, wanted in (("svg", svg), ("png", png)):
        if not wanted:
            continue
        target = path.with_suffix("." + kind)
        if not dot_available():
            lines.append(f"{kind.upper()} not rendered: the Graphviz 'dot' program is not on PATH "
                         f"(install graphviz, then run: dot -T{kind} {path} -o {target})")
            continue
        render_dot(path.read_text(), target, kind)
        lines.append(f"wrote {target}")
    return lines
