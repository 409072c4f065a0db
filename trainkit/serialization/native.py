"""trainkit's own file format for ``trainkit.save``: one safetensors file, the object tree as JSON in its header.

Why safetensors: a single file, as ``torch.save`` writes; a format with no
code in it, whose header the checkpoint reader already validates (sizes,
offsets, dtypes) before anything is parsed; tensors read with one copy; and
other tools (``safetensors.numpy.load_file``, the Rust/JS readers) can open
it. Why JSON for the rest: the tensors alone do not say how they were nested
(dicts, lists, tuples, int keys of optimizer states, plain numbers and
strings), and JSON carries that with nothing executable.

Layout: tensors are stored under the names ``"0"``, ``"1"``, ...; the
``__metadata__`` entry ``"trainkit.save"`` holds the tree, in which every
container or special value is a one-key object::

    {"$dict": [[key, value], ...]}   {"$odict": ...}   {"$list": [...]}   {"$tuple": [...]}
    {"$tensor": "0", "grad": false}  {"$param": "1", "grad": true}   {"$ndarray": "2"}
    {"$float": "nan"}  {"$size": [2, 3]}  {"$dtype": "float32"}  {"$device": "cpu"}  {"$bytes": "<base64>"}

so that int dict keys, tuples and non-finite floats come back as they were.
Tensors that share one ndarray are stored once and share memory again after
loading (as PyTorch keeps shared storages shared).

Whole ``nn.Module`` objects (``torch.save(model, f)``) are stored as their
class's name and their attributes, and classes/functions they hold by name::

    {"$object": ["model.RNNModel", {"$dict": [...the module's __dict__...]}]}   {"$global": "pkg.mod.relu"}
    {"$ref": 3}   (the 4th module or tensor met before: shared submodules and tied weights stay shared)

Loading rebuilds only allowlisted names (:mod:`.globals_allowlist`, PyTorch's
``safe_globals`` API) and runs no code of the class.
"""
from __future__ import annotations

import base64
import json
import math
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from trainkit.autograd import dtypes as _dt
from trainkit.autograd.device import device
from trainkit.autograd.size import Size
from trainkit.autograd.tensor import Tensor

from trainkit.errors import CheckpointError

from .errors import SerializationError

__all__ = ["FORMAT_KEY", "encode", "decode", "MAX_DEPTH"]

#: The ``__metadata__`` key that marks a ``trainkit.save`` file and holds its tree.
FORMAT_KEY = "trainkit.save"
VERSION = 1
#: Deepest nesting saved or loaded (far beyond any state dict; stops recursion bombs).
MAX_DEPTH = 200
_MAX_HEADER = 16 * 1024 * 1024
_SAFETENSORS_DTYPES = {"bool", "uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32",
                       "uint64", "int64", "float64", "complex64"}


class _Writer:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._ids: dict[int, str] = {}
        self._alive: list = []  # keep saved arrays referenced so their ids stay unique
        self._objects: dict[int, int] = {}  # id of a module/tensor met -> its ordinal, for "$ref"

    def array_key(self, arr: np.ndarray) -> str:
        key = self._ids.get(id(arr))
        if key is None:
            if arr.dtype.name not in _SAFETENSORS_DTYPES:
                raise TypeError(f"trainkit.save cannot store {arr.dtype} tensors (safetensors supports "
                                f"{', '.join(sorted(_SAFETENSORS_DTYPES))})")
            key = str(len(self.arrays))
            self._ids[id(arr)] = key
            self._alive.append(arr)
            self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return key

    def node(self, obj: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"trainkit.save: the object nests deeper than {MAX_DEPTH} levels")
        if isinstance(obj, np.generic):  # before the Python types: np.float64 is a float subclass
            return {"$npscalar": self.array_key(np.asarray(obj))}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"$float": repr(float(obj))}
        if id(obj) in self._objects:
            return {"$ref": self._objects[id(obj)]}
        if isinstance(obj, Tensor):
            from trainkit.nn.parameter import Parameter

            kind = "$param" if isinstance(obj, Parameter) else "$tensor"
            self._remember(obj)
            return {kind: self.array_key(obj._array), "grad": bool(obj.requires_grad)}
        if _is_module(obj):
            self._remember(obj)
            state = {k: v for k, v in vars(obj).items()}
            return {"$object": [self._name(type(obj)), self.node(state, depth + 1)]}
        if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
            return {"$global": self._name(obj)}
        if isinstance(obj, np.ndarray):
            return {"$ndarray": self.array_key(obj)}
        if isinstance(obj, Size):
            return {"$size": list(obj)}
        if isinstance(obj, _dt.dtype):
            return {"$dtype": obj.numpy_dtype.name}
        if isinstance(obj, device):
            return {"$device": str(obj)}
        if isinstance(obj, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(obj)).decode("ascii")}
        if isinstance(obj, complex):
            return {"$complex": [self.node(obj.real, depth + 1), self.node(obj.imag, depth + 1)]}
        if type(obj) in (dict, OrderedDict):
            tag = "$odict" if isinstance(obj, OrderedDict) else "$dict"
            return {tag: [[self.node(k, depth + 1), self.node(v, depth + 1)] for k, v in obj.items()]}
        if type(obj) in (list, tuple, set, frozenset):
            tag = {list: "$list", tuple: "$tuple", set: "$set", frozenset: "$frozenset"}[type(obj)]
            return {tag: [self.node(v, depth + 1) for v in obj]}
        raise TypeError(f"trainkit.save cannot store a {type(obj).__module__}.{type(obj).__qualname__}: it stores "
                        "tensors, numpy arrays, dicts, lists, tuples, sets, numbers, strings, bytes, None, "
                        "Size, dtype, device, nn.Module objects and named classes/functions (no pickling, so "
                        "no arbitrary objects)")

    def _remember(self, obj: Any) -> None:
        self._objects[id(obj)] = len(self._objects)
        self._alive.append(obj)

    @staticmethod
    def _name(obj: Any) -> str:
        from .globals_allowlist import global_name

        name = global_name(obj)
        if "<" in name:  # <locals>, <lambda>: no name reaches it again
            raise TypeError(f"trainkit.save cannot store {name}: a lambda or a class/function defined inside a "
                            "function has no importable name")
        return name


def _is_module(obj: Any) -> bool:
    from trainkit.nn.module import Module

    return isinstance(obj, Module)


def encode(obj: Any) -> bytes:
    """The bytes of a ``trainkit.save`` file holding ``obj``."""
    import safetensors.numpy

    writer = _Writer()
    tree = writer.node(obj, 0)
    meta = {FORMAT_KEY: json.dumps({"version": VERSION, "tree": tree}, separators=(",", ":"), allow_nan=False)}
    return safetensors.numpy.save(writer.arrays, metadata=meta)


# ----------------------------------------------------------------------------- reading
def _split(data: bytes, source: str) -> tuple[dict, bytes]:
    """Validate the safetensors framing and header; return (header without metadata..., metadata)."""
    from .safetensors_file import validate_safetensors

    if len(data) < 8:
        raise SerializationError(f"{source}: not a trainkit.save file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or n > len(data) - 8:
        raise SerializationError(f"{source}: not a trainkit.save file (header length {n} does not fit "
                                 f"the {len(data)}-byte file)")
    header_bytes = data[8:8 + n]
    try:
        validate_safetensors(header_bytes, len(data) - 8 - n, source)  # sizes, offsets, dtypes: before parsing
    except CheckpointError as exc:
        raise SerializationError(str(exc)) from None
    header = json.loads(header_bytes.decode("utf-8"))
    return header.get("__metadata__") or {}, header_bytes


def decode(data: bytes, source: str) -> Any:
    """The object in a ``trainkit.save`` file, or a plain state dict for any other safetensors file."""
    import safetensors.numpy

    meta, _ = _split(data, source)
    try:
        arrays = {k: np.array(v, copy=True) for k, v in safetensors.numpy.load(data).items()}
    except Exception as exc:  # the library's own checks; validation should have caught everything
        raise SerializationError(f"{source}: not a valid safetensors file: {exc}") from None
    if FORMAT_KEY not in meta:
        # A safetensors file from elsewhere: its tensors by name, as a state dict.
        return OrderedDict((k, Tensor(arrays[k])) for k in sorted(arrays))
    try:
        payload = json.loads(meta[FORMAT_KEY])
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"{source}: the trainkit.save tree is not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("version") != VERSION or "tree" not in payload:
        raise SerializationError(f"{source}: unsupported trainkit.save version {payload.get('version')!r}"
                                 if isinstance(payload, dict) else f"{source}: malformed trainkit.save tree")
    return _Reader(arrays, source).value(payload["tree"], 0)


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray], source: str):
        self.arrays, self.source = arrays, source
        self.objects: list = []  # modules and tensors in the order the writer met them, for "$ref"

    def bad(self, message: str) -> SerializationError:
        return SerializationError(f"{self.source}: malformed trainkit.save tree: {message}")

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise self.bad(f"refers to a missing tensor {key!r}")
        return self.arrays[key]

    def items(self, node: Any, depth: int) -> list:
        if not isinstance(node, list):
            raise self.bad("a container's items are not a list")
        return [self.value(v, depth + 1) for v in node]

    def value(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.bad(f"nests deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not (isinstance(node, dict) and len(node) in (1, 2)):
            raise self.bad(f"unexpected node {str(node)[:80]!r}")
        tag = next(iter(node))
        body = node[tag]
        if tag in ("$tensor", "$param"):
            grad = node.get("grad", False)
            arr = self.array(body)
            if not isinstance(grad, bool) or (grad and arr.dtype.kind not in "fc"):
                raise self.bad(f"tensor {body!r} has an invalid requires_grad {grad!r}")
            if tag == "$param":
                from trainkit.nn.parameter import Parameter

                t = Parameter(Tensor(arr), requires_grad=grad)
            else:
                t = Tensor(arr)
                if grad:
                    t.requires_grad_(True)
            self.objects.append(t)
            return t
        if len(node) != 1:
            raise self.bad(f"unexpected keys in {tag!r} node")
        if tag == "$ref":
            if not isinstance(body, int) or isinstance(body, bool) or not 0 <= body < len(self.objects):
                raise self.bad(f"refers to an object {body!r} not read before")
            return self.objects[body]
        if tag == "$object":
            return self.module(body, depth)
        if tag == "$global":
            return self.allowed(body)
        if tag == "$ndarray":
            return self.array(body)
        if tag == "$npscalar":
            return self.array(body)[()]
        if tag in ("$list", "$tuple", "$set", "$frozenset"):
            vals = self.items(body, depth)
            return {"$list": list, "$tuple": tuple, "$set": set, "$frozenset": frozenset}[tag](vals) \
                if tag != "$list" else vals
        if tag in ("$dict", "$odict"):
            if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
                raise self.bad("a dict's items are not [key, value] pairs")
            out = OrderedDict() if tag == "$odict" else {}
            for k, v in body:
                key = self.value(k, depth + 1)
                try:
                    out[key] = self.value(v, depth + 1)
                except TypeError:
                    raise self.bad(f"unhashable dict key {key!r}") from None
            return out
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise self.bad(f"bad float {body!r}")
            return float(body)
        if tag == "$size":
            if not isinstance(body, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in body):
                raise self.bad("a Size must be a list of ints")
            return Size(body)
        if tag == "$dtype":
            if body not in _SAFETENSORS_DTYPES and body != "complex128":
                raise self.bad(f"unknown dtype {body!r}")
            return _dt.from_numpy_dtype(np.dtype(body))
        if tag == "$device":
            if not isinstance(body, str):
                raise self.bad("a device must be a string")
            return device(body)
        if tag == "$bytes":
            try:
                return base64.b64decode(body, validate=True)
            except (ValueError, TypeError):
                raise self.bad("bytes are not valid base64") from None
        if tag == "$complex":
            vals = self.items(body, depth)
            if len(vals) != 2 or not all(isinstance(v, float) for v in vals):
                raise self.bad("a complex must be two floats")
            return complex(*vals)
        raise self.bad(f"unknown tag {tag!r}")

    def allowed(self, name: Any) -> Any:
        from .errors import UnsafePickleError
        from .globals_allowlist import allowed_global

        if not isinstance(name, str):
            raise self.bad("a global's name must be a string")
        obj = allowed_global(name)
        if obj is None:
            short = name.rsplit(".", 1)[-1]
            raise UnsafePickleError(
                f"{self.source}: the file names {name}, which is not an allowed global. If you trust it, allow it "
                f"with trainkit.serialization.add_safe_globals([{short}]) or inside "
                f"`with trainkit.serialization.safe_globals([{short}]):` (PyTorch's API); nothing was run")
        return obj

    def module(self, body: Any, depth: int) -> Any:
        from trainkit.nn.module import Module

        if not (isinstance(body, list) and len(body) == 2):
            raise self.bad("an object is not [class name, state]")
        cls = self.allowed(body[0])
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise self.bad(f"{body[0]} is not an nn.Module class")
        obj = cls.__new__(cls)
        self.objects.append(obj)  # before its state: the state may refer back to it
        state = self.value(body[1], depth + 1)
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise self.bad(f"the state of a {body[0]} is not a dict of attribute names")
        for key in ("_parameters", "_buffers", "_modules"):
            if not isinstance(state.get(key), dict):
                raise self.bad(f"the state of a {body[0]} has no {key} dict")
        obj.__dict__.update(state)  # no __init__/__setstate__/__setattr__ of the class runs
        return obj
