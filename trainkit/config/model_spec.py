"""The ``model`` section's structure: a ``layers`` list or a ``graph`` of named nodes.

This module checks only the *shape* of the section (well-formed items, unique
node names, inputs that exist, no cycles, no unused nodes, an output). Layer
types and their arguments belong to the layer registry; the graph builder
checks them, or passes a ``validate_layer`` hook to :func:`check_model` so
that its problems are reported together with the schema's.

:func:`model_nodes` gives the builder one uniform list for both forms; it is the
one place where the section becomes nodes, so constructs that expand into
several nodes (a ``repeat:`` of N identical blocks, whose modules nest as
``blocks.3.attn``) expand there, and everything after it (shapes, summary,
gradcheck, did-you-mean) sees plain nodes. An input ``"lstm.h_n"`` names one
output of a multi-output node (node names have no dots).

``repeat:`` (:data:`REPEAT`) stacks N copies of a block, each with its own
weights. In the graph form a node ``{name: blocks, repeat: 4, graph: [...]}``
holds the block's nodes (``input`` inside it is the block's input: the node's
input for the first copy, the previous copy's output after that; ``output``
names the block's output, by default its last node; a block may also read
nodes defined before it), or ``{name: blocks, repeat: 4, type: T, ...args}``
repeats one layer. Later nodes read the last copy's output as ``blocks``. The
copies expand to nodes named ``blocks.0.attn`` ... ``blocks.3.attn`` whose
modules nest as PyTorch's do, so state-dict keys are ``blocks.3.attn.in_proj_weight``.
In the layers form an item ``repeat: {times: 4, layers: [...]}`` expands to
nested ``nn.Sequential`` containers (keys ``2.3.0.weight``; ``2.3.weight`` for a
one-layer block). An expanded node keeps the YAML position of the block node it
copies, so every problem is reported inside the block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Union

from trainkit.nn.graph import INPUT
from trainkit.registry import INVALID, Checker, found, suggest, unknown_key

#: ``validate_layer(type_name, args, args_path)`` returns problems as
#: ``(key_path, message)`` pairs (or bare messages, placed at ``args_path``).
LayerValidator = Callable[[str, dict, tuple], list[Union[tuple, str]]]

#: Keys of a graph node that are not layer arguments.
NODE_KEYS = ("name", "type", "inputs")
#: The key of the repeat construct (a graph node's key; a layers item's name).
REPEAT = "repeat"
#: Most copies a repeat makes: every copy becomes layers, so a count is bounded before expanding it.
MAX_REPEAT = 1024
# Node names become parameter-name prefixes ("stem.weight"), so no dots.
_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ModelNode:
    """One layer of the model, the same for the ``layers`` and the ``graph`` forms.

    ``name`` is the parameter prefix ("0", "1", ... for ``layers``, the node name
    for ``graph``); ``inputs`` name earlier layers, ``"input"``, or one named
    output of a multi-output layer (``"lstm.h_n"``); ``path`` is the config key
    path of the item and ``args_path`` that of its arguments (use
    ``config.problem(args_path + ("kernel_size",), msg)`` to report on an argument).
    Read-only: the typed config holds these.
    """

    name: str
    type: str
    args: dict
    inputs: list[str]
    path: tuple
    args_path: tuple = field(default=())


def type_path(node: ModelNode) -> tuple:
    """Where a node's type is written: the graph form's ``type:`` key, or the layers form's mapping key."""
    return node.path + ("type",) if node.path[1] == "graph" else node.args_path


def split_ref(ref: str, nodes) -> tuple[str, str]:
    """``(node, output)`` for an input reference: a node (``blocks.3.attn``) or one output of one (``lstm.h_n``).

    ``nodes`` holds the (expanded) node names: a reference that is one names the
    node; otherwise its last dot separates the output's name (``""`` if none).
    """
    if ref in nodes:
        return ref, ""
    node, _, out = ref.rpartition(".")
    return (node, out) if node else (ref, "")


def model_nodes(model: dict) -> list[ModelNode]:
    """The layers of a *resolved* model section, in execution order (``repeat:`` blocks expanded)."""
    return expand_model(model)[0]


def expand_model(model: dict) -> tuple[list[ModelNode], str]:
    """The layers of a *resolved* model section in execution order, and the reference of its output."""
    if "layers" in model:
        nodes = _expand_layers(model["layers"], ("model", "layers"), "", INPUT)
        return nodes, nodes[-1].name
    nodes, scope = _expand_graph(model["graph"], ("model", "graph"), "", INPUT, {})
    output = model.get("output") or model["graph"][-1]["name"]
    return nodes, _resolve(output, INPUT, scope)


def _expand_layers(items: list, path: tuple, prefix: str, previous: str, bare: bool = False) -> list[ModelNode]:
    """Layers-form items as nodes named ``prefix + index`` (``bare``: a one-item block is named ``prefix``)."""
    specs: list[ModelNode] = []
    for i, item in enumerate(items):
        ipath = path + (i,)
        name = prefix.rstrip(".") if bare else f"{prefix}{i}"
        if isinstance(item, str):
            typ, args, apath = item, {}, ipath
        else:
            typ, args = next(iter(item.items()))
            apath = ipath + (typ,)
        if typ == REPEAT:
            block = args["layers"]
            for k in range(args["times"]):
                sub = _expand_layers(block, ipath + (REPEAT, "layers"), f"{name}.{k}.", previous, len(block) == 1)
                specs += sub
                previous = sub[-1].name
            continue
        specs.append(ModelNode(name, typ, dict(args or {}), [previous], ipath, apath))
        previous = name
    return specs


def _node_inputs(node: dict) -> list[str]:
    return [node["inputs"]] if isinstance(node["inputs"], str) else list(node["inputs"])


def _resolve(ref: str, input_ref: str, scope: dict) -> str:
    """A YAML input reference (``attn``, ``lstm.h_n``, ``input``) as the expanded node's reference."""
    base, dot, out = ref.partition(".")
    return (input_ref if base == INPUT else scope[base]) + dot + out


def _expand_graph(items: list, path: tuple, prefix: str, input_ref: str, outer: dict
                  ) -> tuple[list[ModelNode], dict[str, str]]:
    """Graph-form nodes with ``prefix`` on their names; returns them and ``{YAML name: reference}``."""
    local: dict[str, str] = {}
    specs: list[ModelNode] = []
    for i, node in enumerate(items):
        npath = path + (i,)
        scope = {**outer, **local}
        refs = [_resolve(r, input_ref, scope) for r in _node_inputs(node)]
        name = prefix + node["name"]
        if REPEAT not in node:
            args = {k: v for k, v in node.items() if k not in NODE_KEYS}
            specs.append(ModelNode(name, node["type"], args, refs, npath, npath))
            local[node["name"]] = name
            continue
        current = refs[0]
        for k in range(node[REPEAT]):
            copy = f"{name}.{k}"
            if "graph" in node:
                sub, sub_scope = _expand_graph(node["graph"], npath + ("graph",), copy + ".", current, scope)
                specs += sub
                current = _resolve(node["output"], current, sub_scope)
            else:
                args = {key: v for key, v in node.items() if key not in NODE_KEYS + (REPEAT,)}
                specs.append(ModelNode(copy, node["type"], args, [current], npath, npath))
                current = copy
        local[node["name"]] = current
    return specs, local


def check_model(value, path: tuple, ck: Checker, validate_layer: LayerValidator | None = None):
    """Check the ``model`` section; return it with defaults filled in (or INVALID)."""
    if not isinstance(value, dict):
        return ck.error(path, f"expected a mapping with 'layers' or 'graph', found {found(value)}")
    allowed = ("layers", "graph", "output")
    for key in value:
        if key not in allowed:
            ck.error(path + (key,), unknown_key(key, allowed))
    if ("layers" in value) == ("graph" in value):
        which = "both" if "layers" in value else "neither"
        return ck.error(path, f"give exactly one of 'layers' (a sequential list) or 'graph' "
                              f"(named nodes); found {which}")
    if "layers" in value:
        if "output" in value:
            ck.error(path + ("output",), "'output' belongs to the graph form; a layers list "
                                         "outputs its last layer")
        out = {"layers": _check_layers(value["layers"], path + ("layers",), ck)}
    else:
        out = _check_graph(value, path, ck)
    if validate_layer is not None and INVALID not in out.values():
        checked = set()
        for spec in model_nodes(out):
            if spec.args_path in checked:  # a repeated block's layers: once, at their place in the block
                continue
            checked.add(spec.args_path)
            for p in validate_layer(spec.type, spec.args, spec.args_path) or []:
                if isinstance(p, str):
                    ck.error(spec.args_path, p)
                else:
                    ck.error(tuple(p[0]), p[1])
    return out


def _layer_type(name, path, ck) -> bool:
    if not isinstance(name, str) or not name.strip():
        ck.error(path, f"expected a layer type name, found {found(name)}")
        return False
    return True


def _check_layers(items, path, ck):
    if not isinstance(items, list) or not items:
        return ck.error(path, "expected a non-empty list of layers (each a name or "
                              f"'name: {{args}}'), found {found(items)}")
    out = []
    ok = True
    for i, item in enumerate(items):
        ipath = path + (i,)
        if isinstance(item, dict) and "type" in item:
            ck.error(ipath, "write a layer as 'name: {args}' (e.g. '- linear: {out_features: 10}'); "
                            "'type:' items belong to the graph form")
            ok = False
        elif isinstance(item, dict) and len(item) == 1 and next(iter(item)) == REPEAT:
            block = _check_repeat_item(item[REPEAT], ipath + (REPEAT,), ck)
            ok = block is not INVALID and ok
            out.append({REPEAT: block})
        elif isinstance(item, dict) and len(item) == 1:
            typ, args = next(iter(item.items()))
            if not _layer_type(typ, ipath, ck):
                ok = False
            elif args is not None and not isinstance(args, dict):
                ck.error(ipath + (typ,), f"layer arguments must be a mapping like "
                                         f"{{out_features: 10}}, found {found(args)}")
                ok = False
            else:
                out.append({typ: dict(args or {})})
        elif isinstance(item, str):
            ok = _layer_type(item, ipath, ck) and ok
            out.append(item)
        else:
            ck.error(ipath, f"expected a layer name or a one-key mapping 'name: {{args}}', "
                            f"found {found(item) if not isinstance(item, dict) else f'{len(item)} keys'}")
            ok = False
    return out if ok else INVALID


def _check_count(value, path, ck) -> int | object:
    """A repeat count: an integer in 1..MAX_REPEAT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        return ck.error(path, f"expected the number of copies, an integer from 1 to {MAX_REPEAT}, "
                              f"found {found(value)}")
    return value


def _check_repeat_item(value, path, ck):
    """A layers-form ``repeat: {times: N, layers: [...]}``."""
    if not isinstance(value, dict):
        return ck.error(path, f"expected a mapping {{times: N, layers: [...]}}, found {found(value)}")
    ok = True
    for key in value:
        if key not in ("times", "layers"):
            ck.error(path + (key,), unknown_key(key, ("times", "layers")))
            ok = False
    for key in ("times", "layers"):
        if key not in value:
            ck.error(path, f"repeat is missing required key '{key}' (repeat: {{times: N, layers: [...]}})")
            ok = False
    if not ok:
        return INVALID
    times = _check_count(value["times"], path + ("times",), ck)
    layers = _check_layers(value["layers"], path + ("layers",), ck)
    return INVALID if INVALID in (times, layers) else {"times": times, "layers": layers}


def _check_graph(value, path, ck):
    checked, output, _ = _check_nodes(value["graph"], path + ("graph",), value.get("output"), path + ("output",),
                                      ck, {})
    return {"graph": checked, "output": output}


def _check_repeat_node(node: dict, npath: tuple, ck: Checker, visible: dict) -> tuple[dict | None, set]:
    """A graph-form repeat node's own keys and block; returns (its keys to keep, or None; outer names it reads)."""
    count = _check_count(node[REPEAT], npath + (REPEAT,), ck)
    if "graph" in node and "type" in node:
        ck.error(npath, "a repeat node repeats either a block ('graph: [...]') or one layer ('type: ...'), "
                        "not both")
        return None, set()
    if "graph" not in node:
        if "output" in node:
            ck.error(npath + ("output",), "'output' names a node of a repeated block ('graph: [...]')")
        if "type" not in node:
            ck.error(npath, "a repeat node needs 'graph' (the block of nodes to repeat) or 'type' (one layer)")
            return None, set()
        keep = {k: v for k, v in node.items() if k not in ("name", "inputs", "output")}
        return (keep if count is not INVALID else None), set()
    for key in node:
        if key not in ("name", REPEAT, "inputs", "graph", "output"):
            ck.error(npath + (key,), unknown_key(key, ("name", REPEAT, "inputs", "graph", "output")))
    block, output, reads = _check_nodes(node["graph"], npath + ("graph",), node.get("output"), npath + ("output",),
                                        ck, visible)
    if INVALID in (block, count) or output is INVALID:
        return None, reads
    return {REPEAT: count, "graph": block, "output": output}, reads


def _check_nodes(nodes, gpath: tuple, output, opath: tuple, ck: Checker, outer: dict):
    """The nodes of a graph (or of a repeated block, where ``input`` is the block's input and ``outer``
    holds the names of the enclosing graph it may read). Returns (checked nodes or INVALID, the output
    name, the outer names read)."""
    if not isinstance(nodes, list) or not nodes:
        return (ck.error(gpath, f"expected a non-empty list of nodes {{name, type, inputs, ...args}}, "
                                f"found {found(nodes)}"), output, set())
    out_nodes: list = []
    where: dict[str, int] = {}   # node name -> index of its first definition
    reads: set = set()           # names of the enclosing graph read here
    ok = True
    for i, node in enumerate(nodes):
        npath = gpath + (i,)
        if not isinstance(node, dict):
            ck.error(npath, f"expected a node mapping {{name, type, inputs, ...args}}, found {found(node)}")
            ok = False
            continue
        name, typ = node.get("name"), node.get("type")
        for key in ("name",) + (() if REPEAT in node else ("type",)):
            if key not in node:
                ck.error(npath, f"node is missing required key '{key}'")
                ok = False
        if "name" in node:
            if not isinstance(name, str) or not _NODE_NAME.match(name) or name == INPUT:
                ck.error(npath + ("name",), "expected a node name of letters, digits and '_' "
                         f"(not starting with a digit, not 'input'), found {found(name)}")
                ok = False
            elif name in where:
                ck.error(npath + ("name",), f"duplicate node name '{name}' (first used by node {where[name]})")
                ok = False
            else:
                where[name] = i
        if "type" in node and not _layer_type(typ, npath + ("type",), ck):
            ok = False
        # Without 'inputs' a node reads the node listed before it (the first reads the input).
        inputs = node.get("inputs", out_nodes[-1]["name"] if out_nodes else INPUT)
        if isinstance(inputs, str):
            names = [inputs]
        elif isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
            names = inputs
        else:
            ck.error(npath + ("inputs",), f"expected a node name or a non-empty list of node names, "
                                          f"found {found(inputs)}")
            ok = False
            names = []
        entry = {"name": name, "inputs": inputs}
        if REPEAT in node:
            if len(names) > 1:
                ck.error(npath + ("inputs",), f"a repeat node reads one input, found {len(names)}")
                ok = False
            visible = {**outer, **{n: -1 for n in where if n != name}}
            keep, used = _check_repeat_node(node, npath, ck, visible)
            reads |= {r for r in used if r not in where}
            entry["_block_reads"] = {r for r in used if r in where}
            if keep is None:
                ok = False
            else:
                entry.update(keep)
        else:
            entry.update({"type": typ, **{k: v for k, v in node.items() if k not in NODE_KEYS}})
        entry["_names"] = names
        out_nodes.append(entry)
    if not ok:
        return INVALID, output, reads
    # References: earlier names are fine; later ones are an ordering mistake or a cycle.
    known = list(where) + [n for n in outer if n not in where]
    for i, node in enumerate(out_nodes):
        ipath = gpath + (i, "inputs")
        for ref in node["_names"]:
            ref = ref.split(".", 1)[0]  # "lstm.h_n": one output of node lstm (checked by the builder)
            if ref == INPUT:
                continue
            if ref not in where and ref in outer:
                reads.add(ref)
                continue
            if ref not in where:
                ck.error(ipath, f"unknown input '{ref}'{suggest(ref, known + [INPUT])} "
                                f"(known: input, {', '.join(known)})")
                ok = False
            elif where[ref] >= i:
                cycle = _find_cycle(out_nodes, where, i)
                if cycle:
                    ck.error(ipath, "cycle in the graph: " + " -> ".join(cycle))
                else:
                    ck.error(ipath, f"input '{ref}' is defined later (node {where[ref]}); "
                                    "list nodes after the nodes they read")
                ok = False
    if output is None:
        output = out_nodes[-1]["name"]
    if not isinstance(output, str) or output.split(".", 1)[0] not in where:
        ck.error(opath, f"output must name a node{suggest(output, where)} "
                        f"(nodes: {', '.join(where)}), found {found(output)}")
        ok = False
    if ok:
        used = {ref.split(".", 1)[0] for n in out_nodes for ref in n["_names"]} | {output.split(".", 1)[0]}
        used |= {r for n in out_nodes for r in n.get("_block_reads", ())}
        for i, node in enumerate(out_nodes):
            if node["name"] not in used:
                ck.error(gpath + (i, "name"), f"node '{node['name']}' is never used (it is not an "
                                              f"input of any node nor the output '{output}')")
                ok = False
    for node in out_nodes:
        del node["_names"]
        node.pop("_block_reads", None)
    return (out_nodes if ok else INVALID), output, reads


def _find_cycle(nodes, where, start) -> list[str] | None:
    """A cycle through node ``start`` as a list of names, or None."""
    target = nodes[start]["name"]
    stack = [(target, [target])]
    seen = set()
    while stack:
        name, trail = stack.pop()
        for ref in nodes[where[name]]["_names"]:
            ref = ref.split(".", 1)[0]
            if ref == target:
                return _order(trail + [target])
            if ref in where and ref not in seen:
                seen.add(ref)
                stack.append((ref, trail + [ref]))
    return None


def _order(trail: list[str]) -> list[str]:
    # ``trail`` follows inputs backwards (node <- its input); show data flow forwards.
    return trail[::-1]
