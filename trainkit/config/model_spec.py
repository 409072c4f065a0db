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


def model_nodes(model: dict) -> list[ModelNode]:
    """The layers of a *resolved* model section, in execution order."""
    specs: list[ModelNode] = []
    if "layers" in model:
        for i, item in enumerate(model["layers"]):
            path = ("model", "layers", i)
            if isinstance(item, str):
                typ, args, apath = item, {}, path
            else:
                typ, args = next(iter(item.items()))
                apath = path + (typ,)
            inputs = [specs[-1].name] if specs else [INPUT]
            specs.append(ModelNode(str(i), typ, dict(args or {}), inputs, path, apath))
        return specs
    for i, node in enumerate(model["graph"]):
        path = ("model", "graph", i)
        args = {k: v for k, v in node.items() if k not in NODE_KEYS}
        inputs = [node["inputs"]] if isinstance(node["inputs"], str) else list(node["inputs"])
        specs.append(ModelNode(node["name"], node["type"], args, inputs, path, path))
    return specs


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
        for spec in model_nodes(out):
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


def _check_graph(value, path, ck):
    nodes = value["graph"]
    gpath = path + ("graph",)
    if not isinstance(nodes, list) or not nodes:
        return {"graph": ck.error(gpath, f"expected a non-empty list of nodes "
                                        f"{{name, type, inputs, ...args}}, found {found(nodes)}"),
                "output": None}
    out_nodes: list = []
    where: dict[str, int] = {}   # node name -> index of its first definition
    ok = True
    for i, node in enumerate(nodes):
        npath = gpath + (i,)
        if not isinstance(node, dict):
            ck.error(npath, f"expected a node mapping {{name, type, inputs, ...args}}, found {found(node)}")
            ok = False
            continue
        name, typ = node.get("name"), node.get("type")
        for key in ("name", "type"):
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
        out_nodes.append({"name": name, "type": typ, "inputs": inputs,
                          **{k: v for k, v in node.items() if k not in NODE_KEYS}})
        out_nodes[-1]["_names"] = names
    if not ok:
        return {"graph": INVALID, "output": value.get("output")}
    # References: earlier names are fine; later ones are an ordering mistake or a cycle.
    for i, node in enumerate(out_nodes):
        ipath = gpath + (i, "inputs")
        for ref in node["_names"]:
            ref = ref.split(".", 1)[0]  # "lstm.h_n": one output of node lstm (checked by the builder)
            if ref == INPUT:
                continue
            if ref not in where:
                ck.error(ipath, f"unknown input '{ref}'{suggest(ref, list(where) + [INPUT])} "
                                f"(known: input, {', '.join(where)})")
                ok = False
            elif where[ref] >= i:
                cycle = _find_cycle(out_nodes, where, i)
                if cycle:
                    ck.error(ipath, "cycle in the graph: " + " -> ".join(cycle))
                else:
                    ck.error(ipath, f"input '{ref}' is defined later (node {where[ref]}); "
                                    "list nodes after the nodes they read")
                ok = False
    output = value.get("output", out_nodes[-1]["name"])
    if not isinstance(output, str) or output.split(".", 1)[0] not in where:
        ck.error(path + ("output",), f"output must name a node{suggest(output, where)} "
                                     f"(nodes: {', '.join(where)}), found {found(output)}")
        ok = False
    if ok:
        used = {ref.split(".", 1)[0] for n in out_nodes for ref in n["_names"]} | {output.split(".", 1)[0]}
        for i, node in enumerate(out_nodes):
            if node["name"] not in used:
                ck.error(gpath + (i, "name"), f"node '{node['name']}' is never used (it is not an "
                                              f"input of any node nor the output '{output}')")
                ok = False
    for node in out_nodes:
        del node["_names"]
    return {"graph": out_nodes if ok else INVALID, "output": output}


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
