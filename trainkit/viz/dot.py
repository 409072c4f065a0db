"""DOT text for a drawn graph, and :class:`Dot`: the text with ``save`` and ``render``.

The DOT is written here directly (the ``graphviz`` Python package is not
needed); rendering to SVG or PNG runs Graphviz's ``dot`` program when it is on
PATH, else raises :class:`GraphvizNotFound`, which says how to install it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from trainkit.errors import TrainkitError

__all__ = ["Dot", "GraphvizNotFound", "View", "VNode", "VEdge", "quote", "to_dot", "INSTALL_HINT"]

INSTALL_HINT = "install Graphviz, e.g. 'apt install graphviz' (Debian/Ubuntu) or 'brew install graphviz' (macOS)"
FORMATS = ("svg", "png", "pdf")


class GraphvizNotFound(TrainkitError):
    """The Graphviz ``dot`` program is not on PATH (the CLI exits with code 2)."""


def quote(text) -> str:
    """A DOT string literal; line breaks become DOT's centred ``\\n``."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass
class VNode:
    """A drawn node: ``kind`` picks its style, ``lines`` its label (first line the title)."""

    key: str
    kind: str
    lines: list
    cluster: str | None = None
    tooltip: str = ""


@dataclass
class VEdge:
    """A drawn edge; ``style`` is solid (a gradient flows back along it), dashed (none) or dotted (saved)."""

    src: str
    dst: str
    style: str = "solid"
    label: str = ""


@dataclass
class View:
    """Nodes, edges and nested clusters (key -> (label, parent key)), ready to be written as DOT."""

    title: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    clusters: dict = field(default_factory=dict)

    def add(self, node: VNode) -> VNode:
        """Add (or replace) a node."""
        self.nodes[node.key] = node
        return node


# torchviz's colours: grey ops, light blue leaves that get a .grad, orange saved tensors, green outputs
_STYLE = {
    "op": 'fillcolor="lightgrey"',
    "param": 'fillcolor="lightblue"',
    "leaf": 'fillcolor="lightblue"',
    "data": 'fillcolor="white", style="filled,dashed"',
    "output": 'fillcolor="darkolivegreen1"',
    "saved": 'fillcolor="orange"',
    "module": 'fillcolor="#fdf0d5", shape=box3d',
    "grad": 'fillcolor="#e4dcf1"',
    "acc": 'fillcolor="lightblue", style="filled,rounded"',
    "seed": 'fillcolor="darkolivegreen1", style="filled,rounded"',
}
_EDGE = {"solid": "", "dashed": 'style=dashed, color="gray50"', "dotted": 'style=dotted, dir=none, color="orange3"'}


def to_dot(view: View, name: str = "trainkit") -> str:
    """The DOT text of ``view``: clusters as nested ``subgraph cluster_*`` blocks, then the edges."""
    out = [f"digraph {quote(name)} {{",
           '  graph [rankdir=TB, ranksep=0.25, nodesep=0.2, fontname="monospace", fontsize=10'
           + (f", label={quote(chr(10).join(view.title))}, labelloc=t" if view.title else "") + "];",
           '  node [shape=box, style=filled, fontname="monospace", fontsize=10, height=0.2];',
           '  edge [fontname="monospace", fontsize=9, arrowsize=0.6];']
    children: dict = {}
    for key, (_, parent) in view.clusters.items():
        children.setdefault(parent, []).append(key)
    members: dict = {}
    for node in view.nodes.values():
        members.setdefault(node.cluster if node.cluster in view.clusters else None, []).append(node)

    def emit(cluster, indent):
        pad = "  " * indent
        for node in members.get(cluster, []):
            attrs = [f"label={quote(chr(10).join(node.lines))}", _STYLE.get(node.kind, "")]
            if node.tooltip:
                attrs.append(f"tooltip={quote(node.tooltip)}")
            out.append(f"{pad}{quote(node.key)} [{', '.join(a for a in attrs if a)}];")
        for sub in children.get(cluster, []):
            label = view.clusters[sub][0]
            out.append(f"{pad}subgraph {quote('cluster_' + sub)} {{")
            out.append(f'{pad}  graph [label={quote(label)}, style="rounded,dashed", color="gray40", labeljust=l];')
            emit(sub, indent + 1)
            out.append(f"{pad}}}")

    emit(None, 1)
    for e in view.edges:
        attrs = [a for a in (_EDGE.get(e.style, ""), f"label={quote(e.label)}" if e.label else "") if a]
        out.append(f"  {quote(e.src)} -> {quote(e.dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_program() -> str | None:
    """The path of Graphviz's ``dot`` program, or None."""
    return shutil.which("dot")


def render_text(source: str, outfile, fmt: str | None = None) -> Path:
    """Render DOT ``source`` to ``outfile`` (format from ``fmt`` or the suffix: svg, png, pdf).

    Raises:
        GraphvizNotFound: ``dot`` is not installed.
        TrainkitError: an unknown format, or ``dot`` failed.
    """
    outfile = Path(outfile)
    fmt = (fmt or outfile.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise TrainkitError(f"cannot render '{outfile}': choose one of {', '.join(FORMATS)} (the file's suffix)")
    exe = dot_program()
    if exe is None:
        raise GraphvizNotFound(f"cannot render '{outfile}': the Graphviz 'dot' program is not on PATH; "
                               f"{INSTALL_HINT}")
    try:
        proc = subprocess.run([exe, f"-T{fmt}", "-o", str(outfile)], input=source.encode(), capture_output=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        raise TrainkitError(f"Graphviz dot took more than 5 minutes on '{outfile}'; try --depth") from None
    if proc.returncode != 0:
        raise TrainkitError(f"Graphviz dot failed on '{outfile}': {proc.stderr.decode(errors='replace').strip()}")
    return outfile


class Dot:
    """A graph in DOT: ``.source`` is the text; ``save`` writes it, ``render`` draws it with Graphviz.

    The interface follows the ``graphviz`` package's ``Digraph`` (what torchviz
    returns), so notebook and script code written for torchviz keeps working.
    """

    def __init__(self, source: str):
        self.source = source

    def __str__(self) -> str:
        return self.source

    def save(self, filename="graph.dot", directory=None) -> str:
        """Write the DOT text to ``filename`` (inside ``directory`` if given); returns the path."""
        path = Path(directory, filename) if directory is not None else Path(filename)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source)
        return os.fspath(path)

    def render(self, filename="graph", directory=None, format: str = "svg", cleanup: bool = False,  # noqa: A002
               outfile=None, view: bool = False) -> str:
        """Save the DOT text as ``filename`` and render it to ``filename.<format>`` (or ``outfile``).

        Returns the rendered file's path. ``cleanup=True`` removes the DOT file
        afterwards. ``view`` is accepted for compatibility and ignored.

        Raises:
            GraphvizNotFound: the ``dot`` program is missing (the DOT file is still written).
        """
        source_path = Path(self.save(filename, directory))
        if outfile is not None:
            target, fmt = Path(outfile), Path(outfile).suffix.lstrip(".") or format
        else:
            target, fmt = source_path.with_name(source_path.name + "." + format), format
        try:
            render_text(self.source, target, fmt)
        finally:
            if cleanup:
                source_path.unlink(missing_ok=True)
        return os.fspath(target)

    def pipe(self, format: str = "svg") -> bytes:  # noqa: A002
        """The rendered picture as bytes (needs ``dot``)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / f"graph.{format}"
            render_text(self.source, target, format)
            return target.read_bytes()

    def _repr_svg_(self):  # Jupyter shows the picture when Graphviz is installed, else the text
        return self.pipe("svg").decode() if dot_program() else None
