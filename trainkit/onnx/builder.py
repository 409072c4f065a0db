"""The graph builder export rules write to: ``g.op("Conv", x, w, strides=[1, 1])`` and friends.

A rule (a layer's ``onnx=`` rule or an op rule of :mod:`.ops`) never touches
protobuf: it asks the builder for nodes and constants by name, and reads the
shapes and values seen while tracing, as PyTorch's ``symbolic(g, ...)``
functions do with their ``g``. The builder turns that into ``onnx.helper``
protos; only :meth:`OnnxGraph.make_graph` imports :mod:`onnx`.
"""
from __future__ import annotations

import numpy as np

from .errors import OnnxExportError

__all__ = ["OnnxGraph", "MIN_OPSET", "DEFAULT_OPSET", "max_opset"]

#: The oldest opset the rules are written for (LayerNormalization, axis-wise Softmax, axes as inputs
#: of Squeeze/Unsqueeze/ReduceSum).
MIN_OPSET = 17
#: What ``trainkit export`` and :func:`trainkit.onnx.export` write by default (onnxruntime >= 1.14 runs it).
DEFAULT_OPSET = 17


def max_opset() -> int:
    """The newest opset the installed ``onnx`` package knows."""
    import onnx.defs
    return int(onnx.defs.onnx_opset_version())


class OnnxGraph:
    """Nodes, constants and value facts of one ONNX graph under construction.

    Attributes:
        opset: the ``ai.onnx`` opset version being written (rules may branch on it).
    """

    def __init__(self, opset: int = DEFAULT_OPSET):
        self.opset = opset
        self.nodes: list = []          # (op_type, inputs, outputs, attrs, name)
        self.initializers: dict[str, np.ndarray] = {}
        self._by_id: dict[int, str] = {}   # id(array or Parameter) -> initializer name (tied weights stay one)
        self._keep: list = []              # keeps objects whose id() keys _by_id alive
        self._shapes: dict[str, tuple] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self._used: set[str] = set()
        self._count = 0

    # ------------------------------------------------------------------ names and facts
    def fresh(self, hint: str = "t") -> str:
        """A value name not used yet, from ``hint``."""
        hint = "".join(c if c.isalnum() or c in "._/" else "_" for c in str(hint)) or "t"
        name = hint
        while name in self._used:
            self._count += 1
            name = f"{hint}_{self._count}"
        self._used.add(name)
        return name

    def claim(self, name: str) -> str:
        """Reserve an exact name (graph inputs and outputs); an already taken one is an error."""
        if name in self._used:
            raise OnnxExportError(f"the ONNX name {name!r} is given twice")
        self._used.add(name)
        return name

    def set_value(self, name: str, array) -> None:
        """Record the traced value's shape and dtype for ``name`` (what :meth:`shape` answers)."""
        a = np.asarray(array) if not hasattr(array, "shape") else array
        self._shapes[name] = tuple(int(s) for s in a.shape)
        self._dtypes[name] = np.dtype(a.dtype)

    def like(self, name: str, other: str) -> str:
        """Record that ``name`` (a node output) has ``other``'s shape and dtype; returns ``name``."""
        self._shapes[name], self._dtypes[name] = self._shapes[other], self._dtypes[other]
        return name

    def known(self, name: str) -> bool:
        """Whether the shape of ``name`` is known (traced values, and what :meth:`like` recorded)."""
        return name in self._shapes

    def shape(self, name: str) -> tuple:
        """The shape ``name`` had in the traced forward pass (its batch size is the example's)."""
        return self._shapes[name]

    def rank(self, name: str) -> int:
        """Number of dimensions of ``name``."""
        return len(self._shapes[name])

    def dtype(self, name: str) -> np.dtype:
        """The numpy dtype ``name`` had when traced."""
        return self._dtypes[name]

    # ------------------------------------------------------------------ nodes and constants
    def op(self, op_type: str, *inputs, outputs: int = 1, domain: str = "", **attrs):
        """Add a node; returns its output name (or a tuple of ``outputs`` names).

        ``inputs`` are value names ('' for an omitted optional input); ``attrs``
        are ONNX attributes (ints, floats, strings, lists of them, ndarrays for tensors).
        """
        outs = tuple(self.fresh(op_type.lower()) for _ in range(outputs))
        clean = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append((op_type, [("" if i is None else str(i)) for i in inputs], list(outs), clean, domain))
        return outs[0] if outputs == 1 else outs

    def constant(self, value, dtype=None, name: str = "const") -> str:
        """An initializer holding ``value`` (converted to ``dtype`` when given)."""
        a = np.asarray(value, dtype=dtype)
        if a.dtype == np.float64 and dtype is None:
            a = a.astype(np.float32)
        n = self.fresh(name)
        self.initializers[n] = np.ascontiguousarray(a)
        self.set_value(n, a)
        return n

    def ints(self, values, name: str = "shape") -> str:
        """An int64 1-D constant (shapes, axes, pads given as inputs)."""
        return self.constant(np.asarray(list(values), dtype=np.int64).reshape(-1), name=name)

    def tensor(self, t, name: str = "param") -> str:
        """The initializer of a Parameter, buffer or constant Tensor/ndarray, created once per object."""
        key = id(t)
        if key in self._by_id:
            return self._by_id[key]
        array = t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)
        n = self.constant(np.array(array, copy=True), name=name)
        self._by_id[key] = n
        self._keep.append(t)
        return n

    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        """A Reduce* node over ``axes`` (None: all), with axes as an attribute or an input as the opset wants."""
        keep = int(bool(keepdims))
        if axes is None:
            return self.op(op_type, x, keepdims=keep)
        axes = [int(a) for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, x, self.ints(axes, "axes"), keepdims=keep)
        return self.op(op_type, x, axes=axes, keepdims=keep)

    def unsqueeze(self, x: str, axes) -> str:
        """Insert size-1 dimensions at ``axes``."""
        return self.op("Unsqueeze", x, self.ints(axes, "axes"))

    def squeeze(self, x: str, axes) -> str:
        """Remove the size-1 dimensions ``axes``."""
        return self.op("Squeeze", x, self.ints(axes, "axes"))

    def reshape(self, x: str, target, in_shape=None) -> str:
        """Reshape to ``target``; leading sizes equal to the input's become 0 (copied at run time).

        That keeps a dynamic batch (or sequence) axis dynamic: ``view(x.size(0), -1)``
        traced at batch 4 must still take batch 1 or 1000.
        """
        target = [int(t) for t in target]
        in_shape = self._shapes.get(x) if in_shape is None else in_shape
        for i, (a, b) in enumerate(zip(in_shape or (), target)):
            if a != b or a == 0:
                break
            target[i] = 0
        return self.op("Reshape", x, self.ints(target, "shape"))

    # ------------------------------------------------------------------ protobuf
    def make_graph(self, name: str, inputs: list, outputs: list):
        """The ``onnx.GraphProto``: ``inputs``/``outputs`` are ``(name, dtype, shape with None or str dims)``."""
        from onnx import helper, numpy_helper

        def info(name, dtype, shape):
            return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

        nodes = []
        for k, (op_type, ins, outs, attrs, domain) in enumerate(self.nodes):
            nodes.append(helper.make_node(op_type, ins, outs, name=f"{op_type}_{k}", domain=domain or None,
                                          **{a: _attr(v) for a, v in attrs.items()}))
        inits = [numpy_helper.from_array(a, n) for n, a in self.initializers.items()]
        return helper.make_graph(nodes, name, [info(*i) for i in inputs], [info(*o) for o in outputs],
                                 initializer=inits)


def _attr(v):
    """Attribute values as ``onnx.helper.make_attribute`` types them (numpy scalars to Python)."""
    if isinstance(v, np.ndarray):
        from onnx import numpy_helper
        return numpy_helper.from_array(v)
    if isinstance(v, (np.integer, np.bool_)):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_attr(x) for x in v]
    if isinstance(v, bool):
        return int(v)
    return v
