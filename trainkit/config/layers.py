"""Layer types and arguments of the ``model:`` section, checked against the layer declarations.

:func:`validate_layer` is the config's first-pass check of one layer (its type
names a declared layer, its arguments are the constructor's and pass their
specs); :func:`check_layer_args` is shared with the model builder, which also
checks ``module:Class`` layers once it has imported them. Shapes need the
data's input shape and are checked by the builder (:mod:`trainkit.assemble`).
"""
from __future__ import annotations

import trainkit.nn  # noqa: F401  (declares the built-in layers)
from trainkit.registry import INVALID, LAYERS, REQUIRED, Checker, LayerDeclaration, suggest
from trainkit.registry.layer import accepts_any_keyword

from .model_spec import ModelNode, type_path

__all__ = ["check_layer_args", "is_import_path", "validate_layer", "merge_names", "unknown_layer"]


def is_import_path(type_name) -> bool:
    """Whether a YAML layer type is ``module:Class`` or ``file.py:Class`` rather than a declared name."""
    return isinstance(type_name, str) and ":" in type_name


def merge_names() -> str:
    """``"add, mul or concat"``: the declared merge layers, for messages."""
    names = [n for n, d in LAYERS.items() if d.inputs == "many"]
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1] if names else "a merge"


def check_layer_args(decl: LayerDeclaration, type_name: str, args: dict, apath: tuple, ck: Checker) -> dict | None:
    """The YAML arguments of one layer checked against its declaration; None after a problem.

    Unknown names get a did-you-mean from the constructor's arguments; values
    are checked against the declared specs (undeclared custom layers pass their
    values to the constructor as written).
    """
    names = list(decl.arguments)
    open_names = not decl.checked and accepts_any_keyword(decl.cls)
    ok = True
    out = {}
    suggested = set()
    for key, value in args.items():
        if key not in decl.arguments and not open_names:
            hint = suggest(key, names)
            suggested.add(hint.split("'")[1] if hint else None)
            ck.error(apath + (key,), f"unknown argument '{key}' for {type_name}{hint} "
                                     f"(arguments: {', '.join(names) if names else 'none'})")
            ok = False
            continue
        if decl.checked:
            value = decl.arguments[key].spec.check(value, apath + (key,), ck)
            if value is INVALID:
                ok = False
                continue
        out[key] = value
    for key, arg in decl.arguments.items():
        if arg.default is REQUIRED and key not in args and key != decl.input_arg and key not in suggested:
            ck.error(apath, f"{type_name} is missing required argument '{key}'")  # a misspelling says it above
            ok = False
    if ok and decl.check is not None:
        decl.check(decl.complete(out), apath, ck)
    return out if ok else None


def validate_layer(type_name: str, args: dict, args_path: tuple) -> list[tuple[tuple, str]]:
    """The first-pass check of one layer: its type is declared and its arguments fit.

    ``module:Class`` types are imported only when the model is built (their
    files are relative to the config, and importing runs code).
    """
    graph = len(args_path) >= 2 and args_path[1] == "graph"
    node = ModelNode("?", type_name, args, [], args_path if graph else args_path[:-1], args_path)
    ck = Checker()
    if is_import_path(type_name):
        return []
    decl = LAYERS.get(type_name)
    if decl is None:
        ck.error(type_path(node), unknown_layer(type_name))
    else:
        check_layer_args(decl, type_name, args, args_path, ck)
    return ck.problems


def unknown_layer(type_name) -> str:
    """The message for a layer type that is not declared."""
    return LAYERS.unknown(type_name) + "; custom layers: 'package.module:Class' or './file.py:Class'"

