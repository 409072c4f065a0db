"""Custom layers: user ``nn.Module`` subclasses named in YAML.

Three ways to use a layer trainkit does not ship:

* ``@trainkit.register_layer("residual")`` on a class in code that runs before
  the config is built; the YAML then says ``type: residual`` (or ``- residual: {...}``).
* ``type: mypkg.layers:Residual`` imports ``mypkg.layers`` (from ``sys.path``)
  and takes the class ``Residual``.
* ``type: ./my_layers.py:Residual`` loads that file, relative to the YAML file
  that names it (absolute paths work too).

The YAML args are passed to the constructor. The input size is filled in when
the constructor has an ``in_features`` (last dimension), ``in_channels`` or
``num_features`` (dimension 1 of the batch) argument the YAML leaves out, or
the argument named by ``register_layer(..., input_arg=...)``. The output shape
is found by a trial forward pass on a zero batch of one sample.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from trainkit.nn.module import Module

__all__ = ["CustomLayer", "CUSTOM_LAYERS", "register_layer", "is_import_path", "import_layer",
           "guess_input_arg", "absolutize_layer_paths"]

#: Constructor arguments that, when the YAML leaves them out, take the input size:
#: name -> which per-sample dimension gives it (-1: last, 0: the channel dimension).
INPUT_ARG_NAMES = {"in_features": -1, "in_channels": 0, "num_features": 0}

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_IMPORT = re.compile(r"^(?P<mod>[^:]+):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class CustomLayer:
    """A registered custom layer: its class and which argument takes the input size.

    ``input_dim`` indexes the per-sample shape (``-1`` last, ``0`` channels).
    """

    cls: type
    input_arg: str | None = None
    input_dim: int | None = None


#: YAML name -> registered custom layer (filled by :func:`register_layer`).
CUSTOM_LAYERS: dict[str, CustomLayer] = {}


def register_layer(name: str, *, input_arg: str | None = None, input_dim: int | None = None):
    """Class decorator: make an ``nn.Module`` subclass usable in YAML as ``name``.

    Args:
        name: the snake_case YAML name; it must not shadow a built-in layer.
        input_arg: constructor argument filled with the inferred input size when
            the YAML leaves it out (default: ``in_features``/``in_channels``/
            ``num_features`` if the constructor has one).
        input_dim: which per-sample dimension gives ``input_arg`` (-1 = last,
            0 = channels); default -1 for ``in_features``-like names, else 0.

    Example::

        @trainkit.register_layer("residual")
        class Residual(nn.Module):
            def __init__(self, in_channels, hidden=16): ...
    """
    from trainkit.nn.registry import LAYER_SPECS

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"register_layer: name must be snake_case letters, digits and '_', got {name!r}")
    if name in LAYER_SPECS or name in ("add", "mul", "concat"):
        raise ValueError(f"register_layer: {name!r} is a built-in layer name; choose another")

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(f"register_layer({name!r}) decorates nn.Module subclasses, got {cls!r}")
        old = CUSTOM_LAYERS.get(name)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"register_layer: {name!r} is already registered to {old.cls.__qualname__}")
        arg, dim = input_arg, input_dim
        if arg is None:
            arg, dim = guess_input_arg(cls)
        elif dim is None:
            dim = INPUT_ARG_NAMES.get(arg, 0)
        CUSTOM_LAYERS[name] = CustomLayer(cls, arg, dim)
        return cls

    return decorate


def guess_input_arg(cls: type) -> tuple[str | None, int | None]:
    """The constructor argument of ``cls`` that takes the input size, by its conventional name."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return None, None
    for arg, dim in INPUT_ARG_NAMES.items():
        if arg in params:
            return arg, dim
    return None, None


def is_import_path(type_name: str) -> bool:
    """Whether a YAML layer type is ``module:Class`` or ``file.py:Class`` rather than a name."""
    return isinstance(type_name, str) and ":" in type_name


class CustomLayerError(Exception):
    """Why a ``module:Class`` layer type could not be loaded (becomes a located config problem)."""


def import_layer(type_name: str, base_dir: Path | str | None) -> CustomLayer:
    """Load the class named by ``mypkg.mod:Class`` or ``./file.py:Class``.

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
    for reg in CUSTOM_LAYERS.values():  # a registered class keeps its declared input argument
        if reg.cls is cls:
            return reg
    arg, dim = guess_input_arg(cls)
    return CustomLayer(cls, arg, dim)


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
    for node in model_nodes(model):
        m = _IMPORT.match(node.type.strip()) if is_import_path(node.type) else None
        if not m:
            continue
        mod_text = m.group("mod")
        if not (mod_text.endswith(".py") or "/" in mod_text) or Path(mod_text).is_absolute():
            continue
        src_file = config.source(node.path)[0] or config.file
        base = Path(src_file).parent if src_file and not src_file.startswith("<") else Path(".")
        new = f"{(base / mod_text).resolve()}:{m.group('cls')}"
        if "layers" in model:
            item = model["layers"][int(node.name)]
            if isinstance(item, str):
                model["layers"][int(node.name)] = new
            else:
                model["layers"][int(node.name)] = {new: item[node.type]}
        else:
            model["graph"][node.path[2]]["type"] = new
    return data
