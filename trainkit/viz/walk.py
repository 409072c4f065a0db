"""Reading the recorded autograd graph behind one or more output tensors.

:func:`walk` follows ``grad_fn`` and each op's inputs back from the outputs and
returns a :class:`RawGraph`: every op once, every leaf tensor once (so a
shared parameter is one node with several consumers), the tensors that need no
gradient (data, targets), and one edge per (input, op) use. Nothing is
computed or copied; the graph must not have been freed by ``backward()`` yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainkit.autograd.graph import node_name
from trainkit.autograd.hooks import _HookSelect
from trainkit.autograd.tensor import Tensor

__all__ = ["RawGraph", "walk", "saved_arrays", "saved_bytes", "array_base", "op_attrs", "describe", "op_title"]

# op attributes that are the engine's bookkeeping, not the op's configuration or saved values
_INTERNAL = {"inputs", "needs", "_seq", "_hooks", "_next_functions", "_metadata", "node", "source"}


@dataclass
class RawGraph:
    """The recorded graph as keyed parts.

    Attributes:
        ops: key -> op (graph node), in the order backward runs them (newest first).
        out_of: op key -> the tensor the op produced (for its shape and dtype).
        leaves: key -> leaf tensor: requires grad (parameters, inputs being optimised) or not (data).
        outputs: (key, tensor) of each output given to :func:`walk`.
        edges: (source key, op key, carries a gradient) for each input of each op, in input order.
        constants: op key -> the 0-d inputs that need no gradient (what Python scalars became).
    """

    ops: dict = field(default_factory=dict)
    out_of: dict = field(default_factory=dict)
    leaves: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    _op_keys: dict = field(default_factory=dict, repr=False)

    def op_key(self, op) -> str:
        """The key of a walked op."""
        return self._op_keys[id(op)]


def _resolve(t: Tensor) -> Tensor:
    """The tensor behind the identity nodes that module backward hooks insert."""
    while t.grad_fn is not None and isinstance(t.grad_fn, _HookSelect):
        t = t.grad_fn.source
    return t


def walk(outputs) -> RawGraph:
    """The graph that produced ``outputs`` (a Tensor or a sequence of Tensors).

    Raises:
        RuntimeError: a node's saved values were freed by ``backward()`` (draw before backward, or
            use ``retain_graph=True``).
    """
    if isinstance(outputs, Tensor):
        outputs = (outputs,)
    g = RawGraph()
    leaf_keys: dict = {}
    produced: dict = {}  # id(op) -> its output tensor, until the op has its key
    found: list = []

    def leaf_key(t: Tensor) -> str:
        key = leaf_keys.get(id(t))
        if key is None:
            key = leaf_keys[id(t)] = f"leaf{len(leaf_keys)}"
            g.leaves[key] = t
        return key

    stack = []
    for i, o in enumerate(outputs):
        if not isinstance(o, Tensor):
            raise TypeError(f"make_dot expects Tensors, got {type(o).__name__}")
        o = _resolve(o)
        g.outputs.append((f"out{i}", o))
        if o.grad_fn is not None and id(o.grad_fn) not in g._op_keys:
            g._op_keys[id(o.grad_fn)] = None
            produced[id(o.grad_fn)] = o
            stack.append(o.grad_fn)
            found.append(o.grad_fn)
    while stack:
        op = stack.pop()
        inputs = getattr(op, "inputs", None)
        if inputs is None:
            raise RuntimeError("the graph was freed by backward(): draw it before calling backward(), "
                               "or call backward(retain_graph=True)")
        for t in inputs:
            t = _resolve(t)
            p = t.grad_fn
            if p is not None and id(p) not in g._op_keys:
                g._op_keys[id(p)] = None
                produced[id(p)] = t
                stack.append(p)
                found.append(p)
    found.sort(key=lambda op: op._seq, reverse=True)
    for n, op in enumerate(found):
        key = f"op{n}"
        g._op_keys[id(op)] = key
        g.ops[key] = op
        g.out_of[key] = produced[id(op)]
    for key, op in g.ops.items():
        for t, need in zip(op.inputs, op.needs or (True,) * len(op.inputs)):
            t = _resolve(t)
            if t.grad_fn is not None:
                g.edges.append((g._op_keys[id(t.grad_fn)], key, bool(need)))
            elif t.requires_grad or t._array.ndim > 0:
                g.edges.append((leaf_key(t), key, bool(t.requires_grad)))
            else:
                g.constants.setdefault(key, []).append(t._array.item() if t._array.size == 1 else t._array)
    for _, o in g.outputs:
        if o.grad_fn is None:
            leaf_key(o)
    return g


def array_base(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (views, windows and broadcasts lead back to it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def saved_arrays(op) -> list:
    """``(name, ndarray)`` for every array the op keeps for its backward."""
    out = []
    for k, v in op.__dict__.items():
        if k in _INTERNAL:
            continue
        if isinstance(v, np.ndarray):
            out.append((k, v))
        elif isinstance(v, (tuple, list)):
            out += [(f"{k}[{i}]", e) for i, e in enumerate(v) if isinstance(e, np.ndarray)]
    return out


def saved_bytes(arrays) -> int:
    """Memory held by ``arrays``, each owning array counted once."""
    bases = {id(array_base(a)): array_base(a) for _, a in arrays}
    return int(sum(b.nbytes for b in bases.values()))


def op_attrs(op, max_chars: int = 50) -> list:
    """``(name, text)`` for the op's configuration (torchviz's ``show_attrs``); arrays show as saved."""
    out = []
    for k, v in op.__dict__.items():
        if k in _INTERNAL or k.startswith("_"):
            continue
        if isinstance(v, np.ndarray):
            text = f"[saved {tuple(v.shape)} {v.dtype}]"
        elif isinstance(v, (tuple, list)) and any(isinstance(e, np.ndarray) for e in v):
            text = "[saved arrays]"
        else:
            text = repr(v)
        out.append((k, text if len(text) <= max_chars else text[: max(max_chars - 3, 1)] + "..."))
    return out


def describe(t: Tensor) -> str:
    """``(2, 6, 28, 28) float32``."""
    shape = "(" + ", ".join(str(int(d)) for d in t.shape) + ("," if t.ndim == 1 else "") + ")"
    return f"{shape} {t._array.dtype}"


def op_title(op, forward: bool = False) -> str:
    """The op's torch node name, or with ``forward=True`` the forward operation it records."""
    name = node_name(op)
    if forward:
        head, sep, tail = name.rpartition("Backward")
        if sep and tail.isdigit() or (sep and tail == ""):
            return head
    return name
