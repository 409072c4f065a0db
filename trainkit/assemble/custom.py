"""Custom layers named by import path in YAML: ``mypkg.layers:Residual`` or ``./my_layers.py:Residual``.

* ``type: mypkg.layers:Residual`` imports ``mypkg.layers`` (from ``sys.path``)
  and takes the class ``Residual``.
* ``type: ./my_layers.py:Residual`` loads that file, relative to the YAML file
  that names it (absolute paths work too).

(A class declared with ``@layer``/``@trainkit.register_layer`` is named by its
YAML name instead; see :mod:`trainkit.registry`.) A class that carries a
declaration is used with it: its argument specs and shape rule. Any other
``nn.Module`` gets a declaration on the spot: the YAML args are passed to the
constructor, the input size fills an ``in_features`` (last dimension),
``in_channels`` or ``num_features`` (channel dimension) argument the YAML
leaves out, and the output shape is found by a trial forward pass on a zero
batch of one sample.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path

from trainkit.config.layers import is_import_path
from trainkit.nn.module import Module
from trainkit.registry import LAYERS, LayerDeclaration
from trainkit.registry.layer import custom_declaration

__all__ = ["CustomLayerError", "import_layer", "absolutize_layer_paths"]

_IMPORT = re.compile(r"^(?P<mod>[^:]+):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")


class CustomLayerError(Exception):
    """Why a ``module:Class`` layer type could not be loaded (becomes a located config problem)."""


def import_layer(type_name: str, base_dir: Path | str | None) -> LayerDeclaration:
    """The declaration of the class named by ``mypkg.mod:Class`` or ``./file.py:Class``.

    ``base_dir`` is the folder of the YAML file that names it (file paths are
    relative to it). Raises :class:`CustomLayerError` with a readable reason.
    """
    m = _IMPORT.match(type_name.strip())
    if not m:
        raise CustomLayerError(f"expected 'package.module:ClassName' or './file.py:ClassName', "
                               f"found '{type_name}'")
    mod_text, cls_name = m.group("mod"), m.group("cls")
    if mod_text.endswith(".py") or "/" in mod_text or "\\" in mod_text:
        module = _load_file(mod_text, base_dir)
    else:
        try:
            module = importlib.import_module(mod_text)
        except ImportError as e:
            raise CustomLayerError(f"cannot import module '{mod_text}': {e}") from None
        except Exception as e:  # the user's module raised while importing
            raise CustomLayerError(f"importing '{mod_text}' failed: {type(e).__name__}: {e}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, Module) and not n.startswith("_"))
        raise CustomLayerError(f"'{mod_text}' has no class '{cls_name}'"
                               + (f" (its nn.Module classes: {', '.join(found)})" if found else ""))
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise CustomLayerError(f"'{mod_text}:{cls_name}' is not a trainkit nn.Module subclass")
    declared = LAYERS.of(cls)  # a declared class keeps its declaration (specs, shape rule, input argument)
    return declared if declared is not None else custom_declaration(type_name, cls)


def _load_file(path_text: str, base_dir) -> object:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    path = path.resolve()
    if not path.is_file():
        raise CustomLayerError(f"layer file '{path_text}' not found (looked for {path})")
    # One module per file, cached, so building twice gives the same classes.
    key = "trainkit_custom_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise CustomLayerError(f"cannot load '{path}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[key]
        raise CustomLayerError(f"running '{path_text}' failed: {type(e).__name__}: {e}") from None
    return module


def absolutize_layer_paths(config) -> dict:
    """A copy of ``config.data`` whose ``./file.py:Class`` layer types are absolute paths.

    Save this (rather than ``config.data``) into a run directory, so the model
    can be rebuilt from there although the run directory is elsewhere.
    """
    import copy

    from trainkit.config.model_spec import model_nodes

    data = copy.deepcopy(config.data)
    model = data.get("model")
    if not isinstance(model, dict):
        return data
    done = set()
    for node in model_nodes(model):
        m = _IMPORT.match(node.type.strip()) if is_import_path(node.type) else None
        if not m or node.path in done:  # a repeated block's layer is written once
            continue
        done.add(node.path)
        mod_text = m.group("mod")
        if not (mod_text.endswith(".py") or "/" in mod_text) or Path(mod_text).is_absolute():
            continue
        src_file = config.source(node.path)[0] or config.file
        base = Path(src_file).parent if src_file and not src_file.startswith("<") else Path(".")
        new = f"{(base / mod_text).resolve()}:{m.group('cls')}"
        owner = data
        for key in node.path[:-1]:  # the list holding the item, inside repeat blocks too
            owner = owner[key]
        item = owner[node.path[-1]]
        if "layers" in model:
            owner[node.path[-1]] = new if isinstance(item, str) else {new: item[node.type]}
        else:
            item["type"] = new
    return data
