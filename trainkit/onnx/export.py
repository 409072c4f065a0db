"""``export(model, args, f, ...)``: PyTorch's ``torch.onnx.export`` for trainkit models.

The model runs once on ``args`` (see :mod:`.trace`); each recorded layer call
is written by its layer's rule, each engine op between layers by its op rule
(:mod:`.ops`); parameters and buffers become initializers (one per tensor, so
tied weights stay tied). The model is checked with
``onnx.checker.check_model(full_check=True)`` and written atomically.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..autograd.tensor import Tensor
from .builder import DEFAULT_OPSET, MIN_OPSET, OnnxGraph, max_opset
from .errors import OnnxExportError, require_onnx
from .ops import op_rule
from .trace import Trace, flatten, rule_of, trace

__all__ = ["export", "build_model_proto", "check_opset"]


def check_opset(opset: int | None) -> int:
    """``opset`` (default :data:`DEFAULT_OPSET`) checked against what the rules and the installed onnx support."""
    if opset is None:
        return DEFAULT_OPSET
    hi = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= int(opset) <= hi:
        raise OnnxExportError(f"opset {opset!r} is not supported: give an opset from {MIN_OPSET} to {hi} "
                              f"(default {DEFAULT_OPSET})")
    return int(opset)


def _split_args(args):
    """torch's convention: a Tensor, or a tuple of arguments whose last element may be a dict of keywords."""
    if isinstance(args, Tensor):
        return (args,), {}
    if not isinstance(args, (tuple, list)):
        raise OnnxExportError(f"args must be a Tensor or a tuple of arguments, not {type(args).__name__}")
    args = tuple(args)
    if args and isinstance(args[-1], dict):
        return args[:-1], dict(args[-1])
    return args, {}


def _dim_names(name: str, rank: int, shape: tuple, dynamic_axes) -> list:
    spec = (dynamic_axes or {}).get(name)
    dims = list(shape)
    if spec is None:
        return dims
    items = spec.items() if isinstance(spec, dict) else ((a, f"{name}_dynamic_axes_{k + 1}")
                                                          for k, a in enumerate(spec))
    for axis, label in items:
        if not -rank <= int(axis) < rank:
            raise OnnxExportError(f"dynamic_axes[{name!r}]: axis {axis} is out of range for {rank} dimensions")
        dims[int(axis) % rank] = str(label)
    return dims


def _onnx_dtype(a: np.ndarray) -> np.dtype:
    return np.dtype(np.float32) if a.dtype == np.float64 else a.dtype


def build_model_proto(model, args, *, input_names=None, output_names=None, dynamic_axes=None, opset_version=None,
                      metadata: dict | None = None, strict_layers: bool = False, doc: str = ""):
    """The checked ``onnx.ModelProto`` of ``model`` called on ``args`` (see :func:`export`).

    ``strict_layers``: every leaf layer the model calls must have a rule of its own
    (what ``trainkit export`` demands of a config's layers), instead of being traced
    through its engine ops.
    """
    onnx = require_onnx()
    from onnx import helper

    from .. import __version__

    opset = check_opset(opset_version)
    pos, kw = _split_args(args)
    if strict_layers:
        check_layers(model)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        tr = trace(model, pos, kw)
    finally:
        if was_training:
            model.train(True)
    g = OnnxGraph(opset)
    in_tensors = flatten((pos, kw))
    names: dict[int, str] = {}
    graph_inputs = []
    input_names = list(input_names or [])
    for i, t in enumerate(in_tensors):
        if id(t) in names:
            continue
        name = g.claim(input_names[i] if i < len(input_names) else
                       ("input" if len(in_tensors) == 1 else f"input_{i}"))
        names[id(t)] = name
        g.set_value(name, t._array)
        graph_inputs.append((name, _onnx_dtype(t._array), _dim_names(name, t.ndim, t.shape, dynamic_axes)))
    _emit(tr, g, names)
    out_tensors = flatten(tr.result)
    if not out_tensors:
        raise OnnxExportError("the model returned no tensor to export")
    output_names = list(output_names or [])
    graph_outputs = []
    for i, t in enumerate(out_tensors):
        src = names.get(id(t)) or g.tensor(t, "constant_output")
        name = g.claim(output_names[i] if i < len(output_names) else
                       ("output" if len(out_tensors) == 1 else f"output_{i}"))
        g.nodes.append(("Identity", [src], [name], {}, ""))
        graph_outputs.append((name, _onnx_dtype(t._array), _dim_names(name, t.ndim, t.shape, dynamic_axes)))
    unknown = set(dynamic_axes or {}) - {n for n, *_ in graph_inputs + graph_outputs}
    if unknown:
        raise OnnxExportError(f"dynamic_axes names {', '.join(sorted(unknown))}, which is neither an input nor "
                              "an output name")
    graph = g.make_graph(type(model).__name__, graph_inputs, graph_outputs)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="trainkit", producer_version=__version__,
                              doc_string=doc)
    # the oldest IR version that carries this opset: what the widest range of runtimes reads
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    for k, v in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(k), str(v)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a rule wrote a wrong node: a bug, not the user's input
        raise RuntimeError(f"trainkit wrote an invalid ONNX model: {exc}") from exc
    return proto


def check_layers(model) -> None:
    """Every layer of a config's model needs an export rule of its own; the first without one is named.

    Containers (Sequential, ModuleList, ModuleDict, a config's graph) are looked into;
    any other module without a rule (a custom ``module:Class`` layer) is refused,
    whatever layers it holds inside: its forward is its own code.
    """
    from ..nn.container import ModuleDict, ModuleList, Sequential
    from ..nn.graph import GraphModule

    def check(path, m):
        if rule_of(m) is not None:
            return
        if isinstance(m, (Sequential, ModuleList, ModuleDict, GraphModule)):
            for name, child in m.named_children():
                check(f"{path}.{name}" if path else name, child)
            return
        kind = type(m).__qualname__
        try:
            import inspect
            kind += f" from {inspect.getfile(type(m))}"
        except (TypeError, OSError):
            kind += f" from {type(m).__module__}"
        raise OnnxExportError(f"layer '{path or type(m).__name__}' ({kind}) has no ONNX export rule; declare one "
                              "with a to_onnx(self, g, *inputs) method or @register_layer(name, onnx=rule) "
                              "(docs/export.md); nothing was written")

    check("", model)


def _named(value, names, g):
    """Arguments of a layer call with Tensors replaced by their ONNX names (structure kept)."""
    if isinstance(value, Tensor):
        return names.get(id(value)) or g.tensor(value, "constant")
    if isinstance(value, tuple):
        return tuple(_named(v, names, g) for v in value)
    if isinstance(value, list):
        return [_named(v, names, g) for v in value]
    if isinstance(value, dict):
        return {k: _named(v, names, g) for k, v in value.items()}
    return value


def _flat_names(value) -> list:
    """Names in a rule's result, in order; None marks a place where the layer returned no tensor."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _flat_names(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _flat_names(v)]
    raise TypeError(f"an export rule returned {type(value).__name__}, not ONNX value names")


def _emit(tr: Trace, g: OnnxGraph, names: dict) -> None:
    """Write the steps that the outputs depend on, in execution order."""
    producer = {id(t): k for k, s in enumerate(tr.steps) for t in s.outputs}
    needed, stack = set(), [t for t in flatten(tr.result)]
    while stack:
        t = stack.pop()
        k = producer.get(id(t))
        if k is None or k in needed:
            continue
        needed.add(k)
        stack.extend(tr.steps[k].inputs)
    for k, step in enumerate(tr.steps):
        if k not in needed:
            continue
        if step.module is not None:
            rule = rule_of(step.module)
            where = f"layer '{step.path}' ({type(step.module).__name__})"
            try:
                got = rule(step.module, g, *_named(step.args, names, g), **_named(step.kwargs, names, g))
            except OnnxExportError:
                raise
            except Exception as exc:
                from ..errors import TrainkitError
                if isinstance(exc, TrainkitError):
                    raise OnnxExportError(f"{where}: {exc}") from None
                raise
            tensors = flatten(step.result)
            got_names = _flat_names(got)
            if len(got_names) != len(tensors):
                raise RuntimeError(f"{where}: its export rule returned {len(got_names)} value(s) for "
                                   f"{len(tensors)} output tensor(s)")
            pairs = zip(tensors, got_names)
        else:
            rule = op_rule(step.op)
            got = rule(step.op, g, *[_named(t, names, g) for t in step.inputs])
            pairs = zip(step.outputs, [got])
        for t, n in pairs:
            if n is None:
                continue
            if id(t) not in names:
                names[id(t)] = n
                g.set_value(n, t._array)


def export(model, args=(), f=None, *, kwargs=None, export_params: bool = True, verbose=None, input_names=None,
           output_names=None, opset_version: int | None = None, dynamic_axes=None,
           keep_initializers_as_inputs: bool = False, training=None, do_constant_folding: bool = True,
           metadata: dict | None = None, **unsupported):
    """Export ``model`` as an ONNX model, as ``torch.onnx.export`` does (TorchScript-style tracing).

    Args:
        model: an ``nn.Module`` (a Sequential, a config's model, or any Module whose
            forward uses layers and engine ops with export rules).
        args: the example input: a Tensor, or a tuple of arguments (nested tuples
            such as an LSTM's ``(h, c)`` allowed); a dict as its last element is
            keyword arguments.
        f: a path (written atomically) or a binary file object; None: only return the model.
        kwargs: more keyword arguments of the forward call.
        input_names, output_names: names of the graph's inputs/outputs, in the flattened
            order of ``args`` and of the result (default ``input``/``output``, or
            ``input_0``... when there are several).
        opset_version: the ``ai.onnx`` opset (17 by default; 17 up to the installed onnx's newest).
        dynamic_axes: ``{name: [axis, ...]}`` or ``{name: {axis: "label"}}``: dimensions left
            symbolic (``{"input": {0: "batch"}, "output": {0: "batch"}}`` for any batch size).
        metadata: extra ``metadata_props`` (string keys and values).
        export_params, verbose, training, do_constant_folding, keep_initializers_as_inputs:
            accepted for compatibility; parameters are always exported as initializers and the
            model is exported in eval mode.

    Returns:
        The ``onnx.ModelProto`` (checked with ``onnx.checker.check_model(full_check=True)``).

    Raises:
        OnnxExportError: a layer or op with no export rule (named), or arguments that do not fit.
    """
    if unsupported:
        if unsupported.get("dynamo"):
            raise OnnxExportError("dynamo=True (torch.export) is not available in trainkit; the exporter traces "
                                  "the model's forward")
        for k in ("dynamo", "external_data", "report", "verify", "optimize", "profile", "dump_exported_program",
                  "artifacts_dir", "fallback", "custom_opsets", "export_modules_as_functions", "operator_export_type",
                  "dynamic_shapes", "autograd_inlining"):
            unsupported.pop(k, None)
        if unsupported:
            raise TypeError(f"export() got unexpected keyword argument(s) {', '.join(sorted(unsupported))}")
    if not export_params:
        raise OnnxExportError("export_params=False (weights left out of the file) is not supported")
    pos, kw = _split_args(args)
    if kwargs:
        kw = {**kw, **kwargs}
    proto = build_model_proto(model, pos + ((kw,) if kw else ()), input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, opset_version=opset_version,
                              metadata=metadata)
    if f is not None:
        data = proto.SerializeToString()
        if isinstance(f, (str, os.PathLike)):
            from ..utils.atomic import atomic_write_bytes
            atomic_write_bytes(Path(f), data)
        elif isinstance(f, io.IOBase) or hasattr(f, "write"):
            f.write(data)
        else:
            raise OnnxExportError(f"f must be a path or a binary file object, not {type(f).__name__}")
    return proto
