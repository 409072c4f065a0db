"""``make_dot``: the recorded autograd graph as a Graphviz picture, in the manner of torchviz.

Nodes follow torchviz's colours: grey ops (titled with torch's node names and
showing their output shape, dtype and the memory they saved for backward),
light-blue leaves that receive a ``.grad`` (parameters by name and shape), a
green output, orange saved arrays (``show_saved``); tensors that need no
gradient (the input batch) are white with a dashed border and dashed edges,
so which inputs need gradients is visible at a glance. A tensor used by
several ops (a residual's fan-out, a shared parameter) is one node with
several out-edges.
"""
from __future__ import annotations

from trainkit.autograd.graph import node_name
from trainkit.autograd.tensor import Tensor
from trainkit.utils.units import human_bytes

from .dot import Dot, VEdge, View, VNode, to_dot
from .group import group
from .walk import describe, op_attrs, op_title, saved_arrays, saved_bytes, walk

__all__ = ["make_dot", "build_view"]


def make_dot(output, params=None, show_attrs: bool = False, show_saved: bool = False, max_attr_chars: int = 50, *,
             trace=None, depth: int | None = None, collapse: bool = True, backward: bool = False) -> Dot:
    """Draw the graph that computed ``output`` (a Tensor or a tuple of Tensors).

    Call it after the forward pass and before ``backward()`` (which frees the graph).

    Args:
        output: the tensor(s) whose graph is drawn, e.g. the loss.
        params: ``{name: tensor}`` naming leaves, e.g. ``dict(model.named_parameters())``; other tensors
            (``{"input": x}``) are named too.
        show_attrs: list each op's configuration (stride, dim...) and constant operands.
        show_saved: draw each array an op keeps for backward as an orange node.
        max_attr_chars: longest attribute text shown.
        trace: a :class:`~trainkit.viz.ModuleTrace` recorded around the forward pass: ops are grouped
            into clusters per module and repeated blocks are drawn once with a count.
        depth: with a trace, draw each module call at this nesting depth as one box.
        collapse: with a trace, collapse runs of identical blocks (default True).
        backward: also draw the backward pass: the nodes in the order backward runs them, the gradient
            edges reversed, and one ``AccumulateGrad`` per leaf; the forward nodes are then titled with
            the forward operation (``Convolution`` for ``ConvolutionBackward0``).

    Returns:
        a :class:`~trainkit.viz.Dot` (``.source``, ``.save(path)``, ``.render(...)``).
    """
    if depth is not None and trace is None:
        raise ValueError("depth needs a trace: record the forward pass inside `with ModuleTrace(model) as trace:`")
    view = build_view(output, params, show_attrs=show_attrs, show_saved=show_saved, max_attr_chars=max_attr_chars,
                      trace=trace, depth=depth, collapse=collapse, backward=backward)
    return Dot(to_dot(view))


def _param_names(params) -> dict:
    if params is None:
        return {}
    if not hasattr(params, "items"):
        raise TypeError("params must be a dict of {name: Tensor}, e.g. dict(model.named_parameters())")
    names = {}
    for name, t in params.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"params[{name!r}] is a {type(t).__name__}, not a Tensor")
        names.setdefault(id(t), str(name))
    return names


def build_view(output, params=None, *, show_attrs=False, show_saved=False, max_attr_chars=50, trace=None,
               depth=None, collapse=True, backward=False) -> View:
    """The nodes, edges and clusters :func:`make_dot` writes (see there for the arguments)."""
    raw = walk(output)
    by_id = _param_names(params)
    names = {k: by_id[id(t)] for k, t in raw.leaves.items() if id(t) in by_id}
    grp = group(raw, trace, depth, collapse, names)
    view = View(clusters=dict(grp.clusters))
    order = {k: i + 1 for i, k in enumerate(raw.ops)}  # raw.ops is in the order backward runs them
    consumers: dict = {}
    for src, dst, _ in raw.edges:
        consumers.setdefault(src, []).append(dst)

    for k in reversed(list(raw.ops)):  # oldest first: Graphviz lays out in that order
        op = raw.ops[k]
        if grp.drawn(k) != k:
            continue
        lines = [op_title(op, forward=backward)]
        if k in grp.notes:
            lines.append(grp.notes[k])
        lines.append(describe(raw.out_of[k]))
        arrays = saved_arrays(op)
        nbytes = saved_bytes(arrays)
        if nbytes:
            lines.append(f"saved {human_bytes(nbytes)}")
        if show_attrs:
            attrs = op_attrs(op, max_attr_chars) + [("const", repr(c)[:max_attr_chars]) for c in raw.constants.get(k, [])]
            lines += [f"{a}: {v}" for a, v in attrs]
        view.add(VNode(k, "op", lines, grp.cluster_of.get(k)))
        if show_saved:
            for i, (name, a) in enumerate(arrays):
                sk = f"{k}_saved{i}"
                view.add(VNode(sk, "saved", [name, f"{tuple(a.shape)} {a.dtype}", human_bytes(a.nbytes)],
                               grp.cluster_of.get(k)))
                view.edges.append(VEdge(sk, k, "dotted"))

    for key, box in grp.boxes.items():
        # the box's output: its newest op whose result is used outside the box (or is an output)
        leaving = [k for k in box.ops if any(grp.drawn(c) != key for c in consumers.get(k, ()))
                   or any(o.grad_fn is raw.ops[k] for _, o in raw.outputs)]
        out = raw.out_of[max(leaving or box.ops, key=lambda k: raw.ops[k]._seq)]
        lines = [box.span.title, box.span.type, describe(out), f"{len(box.ops)} op" + "s" * (len(box.ops) != 1)]
        if box.params:
            lines.append(f"{box.params:,} params")
        view.add(VNode(key, "module", lines, grp.cluster_of.get(key)))

    for lk, t in raw.leaves.items():
        if lk in grp.hidden:
            continue
        name = grp.leaf_names.get(lk) or names.get(lk)
        homes = {grp.cluster_of.get(grp.drawn(c)) for c in consumers.get(lk, ())}
        cluster = homes.pop() if len(homes) == 1 else None
        if t.requires_grad:
            view.add(VNode(lk, "param" if name else "leaf", [name or "(leaf)", describe(t)], cluster))
        else:
            view.add(VNode(lk, "data", [name or "tensor", describe(t), "no grad"], cluster))

    seen: dict = {}
    for src, dst, grad in raw.edges:
        if src in grp.hidden or grp.chain_edge(src, dst):
            continue
        s, d = grp.drawn(src), grp.drawn(dst)
        if s == d:
            continue
        if (s, d) in seen:
            if grad:
                seen[(s, d)].style = "solid"
            continue
        seen[(s, d)] = edge = VEdge(s, d, "solid" if grad else "dashed")
        view.edges.append(edge)

    for ok, t in raw.outputs:
        src = grp.drawn(raw.op_key(t.grad_fn)) if t.grad_fn is not None else next(
            k for k, leaf in raw.leaves.items() if leaf is t)
        view.add(VNode(ok, "output", ["output" if len(raw.outputs) == 1 else f"output {ok[3:]}", describe(t)]))
        view.edges.append(VEdge(src, ok))

    total = saved_bytes([a for op in raw.ops.values() for a in saved_arrays(op)])
    n_params = sum(1 for t in raw.leaves.values() if t.requires_grad)
    view.title = [f"{len(raw.ops)} ops, {n_params} leaf tensors needing grad, "
                  f"{human_bytes(total)} saved for backward",
                  "solid edge: a gradient flows back; dashed: no gradient"]
    if backward:
        _add_backward(view, raw, grp, names, order)
    return view


def _add_backward(view: View, raw, grp, names: dict, order: dict) -> None:
    """Put the forward drawing in a cluster and add the backward pass beside it."""
    for key, (label, parent) in list(view.clusters.items()):
        view.clusters[key] = (label, parent or "forward")
    view.clusters["forward"] = ("forward: the recorded graph", None)
    view.clusters["backward"] = ("backward: nodes in execution order, gradients flowing to .grad", None)
    for node in view.nodes.values():
        node.cluster = node.cluster if node.cluster in view.clusters else "forward"
    forward_edges = list(view.edges)
    added = {}
    for key, node in list(view.nodes.items()):
        if node.kind == "op":
            op = raw.ops[key]
            added[key] = view.add(VNode(f"b_{key}", "grad", [f"#{order[key]} {node_name(op)}",
                                                            "grad " + describe(raw.out_of[key])], "backward"))
        elif node.kind == "module":
            box = grp.boxes[key]
            first = min(order[k] for k in box.ops)
            added[key] = view.add(VNode(f"b_{key}", "grad", [f"#{first} {box.span.title} backward",
                                                            f"{len(box.ops)} nodes"], "backward"))
        elif node.kind in ("param", "leaf"):
            t = raw.leaves[key]
            name = node.lines[0] if node.kind == "param" else "(leaf)"
            added[key] = view.add(VNode(f"acc_{key}", "acc", ["AccumulateGrad", f"{name}.grad {describe(t)}"],
                                        "backward"))
    seen = set()
    for e in forward_edges:
        if e.style != "solid" or e.src not in added or e.dst not in added:
            continue
        pair = (added[e.dst].key, added[e.src].key)
        if pair not in seen:
            seen.add(pair)
            view.edges.append(VEdge(*pair))
    for ok, t in raw.outputs:
        if t.grad_fn is None:
            continue
        root = grp.drawn(raw.op_key(t.grad_fn))
        view.add(VNode(f"seed_{ok}", "seed", ["backward()", "grad " + describe(t)], "backward"))
        view.edges.append(VEdge(f"seed_{ok}", added[root].key))
