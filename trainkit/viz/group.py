"""Keeping large graphs readable: module clusters, repeated blocks collapsed, a depth limit.

Given a :class:`~trainkit.viz.walk.RawGraph` and a
:class:`~trainkit.viz.trace.ModuleTrace`, :func:`group` decides where each op
is drawn:

* each module call with more than one drawn node becomes a cluster named after
  the module; a layer that recorded a single op labels that op instead;
* a run of consecutive calls of sibling blocks of one class that recorded the
  same ops with the same shapes (a transformer's 12 blocks, a ResNet stage's
  identical blocks) is drawn once, as one cluster titled ``blocks.0 ...
  blocks.11 · Block ×12``; the other blocks' ops map onto the first block's,
  and their own parameters are named ``blocks.{0..11}.attn.weight``;
* with ``depth=N`` every module call at nesting depth N (0: the model and a
  loss called on its own, 1: their children...) is one box: its ops and the
  parameters used only inside it are folded into the box, which shows the
  output shape and the parameter count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Grouping", "group"]


@dataclass
class Box:
    """A module call drawn as one node (``depth``)."""

    key: str
    span: object
    ops: list = field(default_factory=list)
    params: int = 0


@dataclass
class Grouping:
    """Where each part of the raw graph is drawn (see the module docstring).

    Attributes:
        rep: raw key -> drawn key (the op itself, a box, or the first block's counterpart).
        hidden: leaf keys not drawn (used only inside boxes or by collapsed blocks).
        boxes: box key -> :class:`Box`.
        clusters: cluster key -> (label, parent cluster key or None).
        cluster_of: drawn key -> cluster key.
        notes: op key -> ``"name · Type"`` for a layer that recorded only that op.
        leaf_names: leaf key -> a name for the parameters of a collapsed run.
        block_of: op key -> (run number, block index) for ops of collapsed runs.
    """

    rep: dict = field(default_factory=dict)
    hidden: set = field(default_factory=set)
    boxes: dict = field(default_factory=dict)
    clusters: dict = field(default_factory=dict)
    cluster_of: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    leaf_names: dict = field(default_factory=dict)
    block_of: dict = field(default_factory=dict)

    def drawn(self, key: str) -> str:
        """The key under which raw node ``key`` is drawn."""
        return self.rep.get(key, key)

    def chain_edge(self, src: str, dst: str) -> bool:
        """Whether the edge links two different blocks of one collapsed run (the repetition itself)."""
        a, b = self.block_of.get(src), self.block_of.get(dst)
        return a is not None and b is not None and a[0] == b[0] and a[1] != b[1]


def _ancestors(span):
    while span is not None:
        yield span
        span = span.parent


def _signature(raw, keys) -> tuple:
    """What a block recorded: each op's class and output shape and dtype, in creation order."""
    return tuple((type(raw.ops[k]).__name__, tuple(raw.out_of[k].shape), str(raw.out_of[k]._array.dtype)) for k in keys)


def _runs(spans, members, raw) -> list:
    """Lists of >= 2 consecutive sibling block calls of one class with identical recorded ops."""
    runs = []
    parents = {}
    for s in spans:
        parents.setdefault(id(s.parent), []).append(s)
    for siblings in parents.values():
        i = 0
        while i < len(siblings):
            s = siblings[i]
            sig = (s.type, _signature(raw, members.get(id(s), [])))
            j = i + 1
            while (j < len(siblings) and s.has_children and members.get(id(s))
                   and (siblings[j].type, _signature(raw, members.get(id(siblings[j]), []))) == sig):
                j += 1
            if j - i >= 2:
                runs.append(siblings[i:j])
            i = j
    return runs


def _range_name(names: list) -> str:
    """``['h.0', ..., 'h.11']`` -> ``'h.{0..11}'``."""
    m = [re.fullmatch(r"(.*?)(\d+)", n) for n in names]
    if all(m) and len({x.group(1) for x in m}) == 1:
        return f"{m[0].group(1)}{{{m[0].group(2)}..{m[-1].group(2)}}}"
    return f"{names[0]}[x{len(names)}]"


def group(raw, trace=None, depth: int | None = None, collapse: bool = True, leaf_names: dict | None = None) -> Grouping:
    """Decide clusters, collapsed runs and depth boxes for ``raw`` (everything flat without a ``trace``)."""
    g = Grouping()
    if trace is None:
        return g
    leaf_names = leaf_names or {}
    index = {id(s): i for i, s in enumerate(trace.spans)}  # a span's number names its box and cluster
    scopes = trace.scopes(raw.ops.values())
    span_of = {k: scopes.get(id(op)) for k, op in raw.ops.items()}
    members: dict = {}  # id(span) -> op keys recorded inside it (nested calls included), oldest first
    for k in sorted(raw.ops, key=lambda k: raw.ops[k]._seq):
        for s in _ancestors(span_of[k]):
            members.setdefault(id(s), []).append(k)
    consumers: dict = {}
    for src, dst, _ in raw.edges:
        consumers.setdefault(src, []).append(dst)

    # repeated blocks: map each later block's ops onto the first block's
    first_blocks = {}
    renames = []  # (first block's name + ".", the run's name) for the labels inside a collapsed run
    if collapse:
        runs = _runs(trace.spans, members, raw)
        if depth is not None:  # a run folded into a depth box is hidden by the box already
            runs = [run for run in runs if run[0].depth < depth]
        for n, run in enumerate(runs):
            first = members[id(run[0])]
            for b, span in enumerate(run):
                for k0, k in zip(first, members[id(span)]):
                    g.block_of[k] = (n, b)
                    if b:
                        g.rep[k] = k0
            first_blocks[id(run[0])] = run
            prefix = run[0].name + "."
            general = _range_name([s.name for s in run])
            renames.append((prefix, general + "."))
            for leaf, users in consumers.items():
                if leaf not in raw.leaves:
                    continue
                if all(g.block_of.get(u, (None, 0))[1] > 0 for u in users):
                    g.hidden.add(leaf)
                elif leaf_names.get(leaf, "").startswith(prefix):
                    g.leaf_names[leaf] = general + "." + leaf_names[leaf][len(prefix):]

    # depth boxes: every op under a call at the given depth folds into that call's box
    if depth is not None:
        for k in raw.ops:
            target = g.drawn(k)
            box_span = next((s for s in _ancestors(span_of[target]) if s.depth == depth), None)
            if box_span is None:
                continue
            key = f"box{index[id(box_span)]}"
            box = g.boxes.setdefault(key, Box(key, box_span))
            if target == k:
                box.ops.append(k)
            g.rep[k] = key
        for leaf, users in consumers.items():
            t = raw.leaves.get(leaf)
            if t is None or not t.requires_grad or leaf in g.hidden:
                continue
            homes = {g.drawn(u) for u in users}
            if len(homes) == 1 and next(iter(homes)) in g.boxes:
                g.hidden.add(leaf)
                g.boxes[next(iter(homes))].params += int(t._array.size)

    # clusters: module calls with more than one drawn node (or a collapsed run)
    drawn_span = {}
    for k in raw.ops:
        d = g.drawn(k)
        if d == k:
            drawn_span[k] = span_of[k]
    for key, box in g.boxes.items():
        drawn_span[key] = box.span.parent
    direct: dict = {}
    for d, s in drawn_span.items():
        if s is not None:
            direct.setdefault(id(s), []).append(d)
    spans_by_id = {id(s): s for s in trace.spans}
    clustered = set()
    for s in trace.spans:
        if not s.name or id(s) not in members:
            continue
        inner = [d for d, sp in drawn_span.items() if sp is not None and s in _ancestors(sp)]
        if len(inner) > 1 or (inner and id(s) in first_blocks):
            clustered.add(id(s))
    for d, s in drawn_span.items():
        if s is not None and id(s) not in clustered and len(direct.get(id(s), [])) == 1 and d in raw.ops:
            title = next((new + s.title[len(old):] for old, new in renames if s.title.startswith(old)), s.title)
            g.notes[d] = f"{title} · {s.type}"
    for sid in clustered:
        s = spans_by_id[sid]
        parent = next((p for p in _ancestors(s.parent) if id(p) in clustered), None)
        title = next((new + s.title[len(old):] for old, new in renames if s.title.startswith(old)), s.title)
        label = f"{title} · {s.type}"
        if sid in first_blocks:
            run = first_blocks[sid]
            label = f"{run[0].title} … {run[-1].title} · {s.type} ×{len(run)}"
        g.clusters[f"m{index[id(s)]}"] = (label, None if parent is None else f"m{index[id(parent)]}")
    for d, s in drawn_span.items():
        home = next((p for p in _ancestors(s) if id(p) in clustered), None)
        if home is not None:
            g.cluster_of[d] = f"m{index[id(home)]}"
    return g
