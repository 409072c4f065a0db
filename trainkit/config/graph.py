"""From a validated ``model`` section to a plan of layers with shapes, and the ``GraphModule`` that runs it.

:func:`plan_model` walks the layers in order, checks each type and its
arguments against the layer registry (types and ranges from
:mod:`trainkit.config.shapes`, names against the constructor's signature),
propagates per-sample shapes from the data's input shape, and fills the
input-size arguments (``in_features``, ``in_channels``, ``num_features``).
Every problem is collected and raised at once as a :class:`ConfigError`
placed at the YAML line of the layer at fault. Built-in layers' shapes come
from formulas; a custom layer is constructed and run once on a zero batch of
one sample.

:class:`GraphModule` evaluates named nodes in a precomputed order; its
parameters are named by node (``stem.weight``).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainkit.config.custom import (CUSTOM_LAYERS, CustomLayer, CustomLayerError, import_layer,
                                    is_import_path)
from trainkit.config.model_spec import INPUT, ModelNode, model_nodes
from trainkit.config.shapes import (ARG_SPECS, FILLED_DEFAULTS, MERGE_SPECS, Shape, ShapeProblem,
                                    fmt, infer)
from trainkit.config.spec import INVALID, Checker, suggest, unknown_name
from trainkit.nn.module import Module
from trainkit.nn.registry import LAYER_SPECS

__all__ = ["Add", "Mul", "Concat", "GraphModule", "PlannedNode", "ModelPlan", "plan_model",
           "validate_layer", "known_layer_types"]


# ----------------------------------------------------------------------------- merge modules
class Add(Module):
    """Elementwise sum of its inputs (the graph form's ``add`` node)."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class Mul(Module):
    """Elementwise product of its inputs (the graph form's ``mul`` node)."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out


class Concat(Module):
    """Concatenation of its inputs along ``dim`` (batched numbering; the ``concat`` node)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        from trainkit.autograd.functional import cat

        return cat(list(inputs), self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


MERGES = {"add": Add, "mul": Mul, "concat": Concat}


class GraphModule(Module):
    """A model of named nodes evaluated in a fixed order (the YAML graph form).

    Args:
        nodes: ``(name, module, input names)`` in an order where every input
            comes earlier (or is ``"input"``).
        output: the node whose value ``forward`` returns.

    Each module is a child under its node name, so ``state_dict()`` keys are
    ``stem.weight``, ``bn1.running_mean``, ... The evaluation order is fixed
    here, so ``forward`` does no checks and no sorting.
    """

    def __init__(self, nodes: list[tuple[str, Module, list[str]]], output: str):
        super().__init__()
        for name, module, _ in nodes:
            self.add_module(name, module)
        object.__setattr__(self, "_order", tuple((name, tuple(ins)) for name, _, ins in nodes))
        object.__setattr__(self, "_output", output)

    @property
    def output_name(self) -> str:
        """The node whose value is the model's output."""
        return self._output

    @property
    def node_inputs(self) -> dict[str, tuple[str, ...]]:
        """Node name -> names of its inputs, in evaluation order."""
        return dict(self._order)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        values = {INPUT: input}
        modules = self._modules
        for name, ins in self._order:
            if len(ins) == 1:
                values[name] = modules[name](values[ins[0]])
            else:
                values[name] = modules[name](*[values[i] for i in ins])
        return values[self._output]


# ----------------------------------------------------------------------------- plan
@dataclass
class PlannedNode:
    """One layer after checking: its class, constructor kwargs and shapes.

    ``module`` is set for custom layers (built during planning for the trial
    forward) and reused by the builder; ``macs`` is None when unknown (custom layers).
    """

    name: str
    type: str
    kind: str                 # "layer", "merge" or "custom"
    cls: type
    kwargs: dict
    inputs: list[str]
    in_shapes: list[Shape]
    out_shape: Shape
    macs: int | None
    path: tuple
    args_path: tuple
    module: Module | None = field(default=None, repr=False)


@dataclass
class ModelPlan:
    """The checked model: nodes in evaluation order, the output node, the form, the input shape."""

    nodes: list[PlannedNode]
    output: str
    sequential: bool
    input_shape: Shape

    @property
    def output_shape(self) -> Shape:
        """Per-sample shape of the model's output."""
        return next(n.out_shape for n in self.nodes if n.name == self.output)

    def node(self, name: str) -> PlannedNode:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)


def known_layer_types() -> list[str]:
    """Every layer type name YAML may use: built-ins, merge nodes, registered custom layers."""
    return list(LAYER_SPECS) + list(MERGE_SPECS) + sorted(CUSTOM_LAYERS)


def _type_path(node: ModelNode) -> tuple:
    # The layers form writes the type as the mapping key (args_path ends with it);
    # the graph form has a 'type:' key of its own.
    return node.path + ("type",) if node.path[1] == "graph" else node.args_path


def _signature_names(cls: type) -> tuple[list[str], list[str], bool]:
    """(allowed names, required names, takes **kwargs) of ``cls``'s constructor."""
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return [], [], True
    names, required, var_kw = [], [], False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL and p.name != "dtype":
            names.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return names, required, var_kw


def _check_args(typ: str, cls: type, args: dict, apath: tuple, ck: Checker,
                input_arg: str | None) -> dict | None:
    """Check argument names against ``cls``'s signature and values against ARG_SPECS."""
    names, required, var_kw = _signature_names(cls)
    specs = ARG_SPECS.get(typ, MERGE_SPECS.get(typ))
    if specs is not None:  # built-in: the signature's names (merge nodes: the spec's)
        names = names if typ in ARG_SPECS else list(specs)
        var_kw = False
    ok = True
    out = {}
    suggested = set()
    for key, value in args.items():
        if key not in names and not var_kw:
            allowed = ", ".join(names) if names else "none"
            hint = suggest(key, names)
            suggested.add(hint.split("'")[1] if hint else None)
            ck.error(apath + (key,), f"unknown argument '{key}' for {typ}{hint} (arguments: {allowed})")
            ok = False
            continue
        if specs is not None and key in specs:
            value = specs[key].check(value, apath + (key,), ck)
            if value is INVALID:
                ok = False
                continue
        out[key] = value
    for key in required:
        if key not in args and key != input_arg and key not in suggested:  # a misspelling says it
            ck.error(apath, f"{typ} is missing required argument '{key}'")
            ok = False
    return out if ok else None


def _resolve_type(node: ModelNode, base_dir, ck: Checker):
    """``(kind, cls, CustomLayer | None)`` for a node's type, or None after recording a problem."""
    typ = node.type
    if typ in MERGE_SPECS:
        return "merge", MERGES[typ], None
    if typ in LAYER_SPECS:
        return "layer", LAYER_SPECS[typ].cls, None
    if typ in CUSTOM_LAYERS:
        return "custom", CUSTOM_LAYERS[typ].cls, CUSTOM_LAYERS[typ]
    if is_import_path(typ):
        if base_dir is False:  # validation without a file: importing waits for the build
            return None
        try:
            custom = import_layer(typ, base_dir)
        except CustomLayerError as e:
            ck.error(_type_path(node), str(e))
            return None
        return "custom", custom.cls, custom
    ck.error(_type_path(node), unknown_name("layer type", typ, known_layer_types())
             + "; custom layers: 'package.module:Class' or './file.py:Class'")
    return None


def validate_layer(type_name: str, args: dict, args_path: tuple) -> list[tuple[tuple, str]]:
    """The ``validate_layer`` hook of :func:`~trainkit.config.load_config`: types and arguments.

    Checks what does not need the data's shapes, so a config's layer mistakes
    are reported together with its schema problems. ``module:Class`` types are
    only imported at build time (their files are relative to the config).
    """
    graph = len(args_path) >= 2 and args_path[1] == "graph"
    path = args_path if graph else args_path[:-1]
    node = ModelNode("?", type_name, args, [], path, args_path)
    ck = Checker()
    resolved = _resolve_type(node, False, ck)
    if resolved is not None:
        kind, cls, custom = resolved
        input_arg = LAYER_SPECS[type_name].input_arg if kind == "layer" else \
            custom.input_arg if custom else None
        _check_args(type_name, cls, args, args_path, ck, input_arg)
    return ck.problems


def _base_dir(config, node: ModelNode):
    """Folder of the YAML file where ``node`` is written (custom layer files are relative to it)."""
    src = config.source(node.path)[0] or config.file
    if not src or src.startswith("<") or src.startswith("--set"):
        src = config.file
    if not src or src.startswith("<"):
        return Path.cwd()
    return Path(src).resolve().parent


def plan_model(config, input_shape, modules: dict[str, Module] | None = None) -> ModelPlan:
    """Check every layer of ``config``'s model against the data's per-sample ``input_shape``.

    Args:
        config: a loaded :class:`~trainkit.config.Config`.
        input_shape: one sample's shape, e.g. ``(3, 32, 32)`` or ``(4,)``.
        modules: already built custom layers by node name (from a built model),
            used for the trial forward instead of constructing new ones.

    Raises:
        ConfigError: every problem found, each at the YAML line of its layer.
    """
    model = config["model"]
    sequential = "layers" in model
    nodes = model_nodes(model)
    ck = Checker()
    shapes: dict[str, Shape | None] = {INPUT: tuple(int(s) for s in input_shape)}
    planned: list[PlannedNode] = []
    reserved = set(dir(GraphModule))
    for node in nodes:
        shapes[node.name] = None
        if not sequential and node.name in reserved:
            ck.error(node.path + ("name",), f"node name '{node.name}' is taken by a Module attribute; "
                                            "choose another")
            continue
        resolved = _resolve_type(node, _base_dir(config, node), ck)
        if resolved is None:
            continue
        kind, cls, custom = resolved
        input_arg = LAYER_SPECS[node.type].input_arg if kind == "layer" else \
            custom.input_arg if custom else None
        args = _check_args(node.type, cls, node.args, node.args_path, ck, input_arg)
        if args is None:
            continue
        n_in = len(node.inputs)
        if kind == "merge" and n_in < 2:
            where = node.path + ("inputs",) if not sequential else _type_path(node)
            ck.error(where, f"{node.type} merges two or more inputs, found {n_in}"
                     + ("; merge nodes belong to the graph form (model.graph)" if sequential else ""))
            continue
        if kind == "layer" and n_in != 1:
            ck.error(node.path + ("inputs",), f"{node.type} takes one input, found {n_in}; "
                     "combine them first with an add, mul or concat node")
            continue
        in_shapes = [shapes.get(i) for i in node.inputs]
        if any(s is None for s in in_shapes):
            continue  # an earlier layer failed; its problem is already reported
        if kind == "custom":
            result = _plan_custom(node, cls, custom, args, in_shapes, ck,
                                  (modules or {}).get(node.name))
            if result is None:
                continue
            out_shape, kwargs, module = result
            macs = None
        else:
            try:
                out_shape, macs, filled = infer(node.type, args, in_shapes)
            except ShapeProblem as e:
                key = e.key
                where = (node.path + ("inputs",) if not sequential else node.args_path) \
                    if key == "inputs" else node.args_path + ((key,) if key and key in node.args else ())
                ck.error(where, f"{e.message} (input {', '.join(fmt(s) for s in in_shapes)})"
                         if key != "inputs" and "input" not in e.message else e.message)
                continue
            if any(d < 1 for d in out_shape):
                ck.error(node.args_path, f"{node.type} gives an empty output {fmt(out_shape)} from "
                                         f"input {fmt(in_shapes[0])}")
                continue
            kwargs = {**FILLED_DEFAULTS.get(node.type, {}), **args, **filled}
            module = None
        shapes[node.name] = out_shape
        planned.append(PlannedNode(node.name, node.type, kind, cls, kwargs, list(node.inputs),
                                   in_shapes, out_shape, macs, node.path, node.args_path, module))
    if ck.problems:
        raise config.error(ck.problems)
    output = model.get("output") or nodes[-1].name
    return ModelPlan(planned, output, sequential, shapes[INPUT])


def _plan_custom(node, cls, custom: CustomLayer, args, in_shapes, ck, module):
    """Construct a custom layer (filling its input size) and find its output shape by a trial run."""
    from trainkit.autograd.function import no_grad
    from trainkit.autograd.tensor import Tensor

    kwargs = dict(args)
    if custom.input_arg and custom.input_arg not in kwargs and in_shapes[0]:
        dim = custom.input_dim if custom.input_dim is not None else 0
        kwargs[custom.input_arg] = in_shapes[0][dim]
    if module is None:
        try:
            module = cls(**kwargs)
        except Exception as e:  # the user's constructor rejected its arguments
            ck.error(node.args_path, f"{node.type}({_call_text(kwargs)}) failed: {type(e).__name__}: {e}")
            return None
    was_training = module.training
    module.eval()  # batch statistics of a single zero sample would be degenerate
    try:
        with no_grad():
            zeros = [Tensor(np.zeros((1,) + s, dtype=np.float32)) for s in in_shapes]
            out = module(*zeros)
    except Exception as e:
        ck.error(node.args_path, f"{node.type} failed on input {', '.join(fmt(s) for s in in_shapes)}: "
                                 f"{type(e).__name__}: {e}")
        return None
    finally:
        module.train(was_training)
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) < 1 or shape[0] != 1:
        ck.error(node.args_path, f"{node.type} must return one tensor with the batch dimension first; "
                                 f"on a batch of 1 it returned {type(out).__name__} "
                                 f"{tuple(shape) if shape is not None else ''}")
        return None
    return tuple(int(d) for d in shape[1:]), kwargs, module


def _call_text(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def instantiate(plan: ModelPlan) -> list[tuple[str, Module, list[str]]]:
    """Construct each planned node's module (custom ones are already built)."""
    out = []
    for n in plan.nodes:
        if n.module is not None:
            module = n.module
        else:
            kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in n.kwargs.items()}
            module = n.cls(**kw)
        out.append((n.name, module, n.inputs))
    return out


def total_macs(plan: ModelPlan) -> int | None:
    """Multiply-adds per sample over all layers (None if any layer's count is unknown)."""
    values = [n.macs for n in plan.nodes]
    return None if any(v is None for v in values) else int(math.fsum(values))


def output_problem(config, plan: ModelPlan, num_classes: int | None) -> None:
    """Raise a located ConfigError when a classifier's output does not match ``num_classes``."""
    loss = config["loss"]["type"] if isinstance(config["loss"], dict) else config["loss"]
    if num_classes is None or loss not in ("cross_entropy", "nll"):
        return
    out = plan.output_shape
    if len(out) == 1 and out[0] == num_classes:
        return
    node = plan.node(plan.output)
    key = {"linear": "out_features", "conv2d": "out_channels"}.get(node.type)
    where = node.args_path + ((key,) if key and key in config_args(node) else ())
    raise config.error([(where, f"the model outputs {fmt(out)} per sample but the dataset has "
                                f"{num_classes} classes; the last layer ('{node.name}') should "
                                f"output {num_classes}")])


def config_args(node: PlannedNode) -> dict:
    """The arguments written in YAML for ``node`` (without filled ones)."""
    return {k: v for k, v in node.kwargs.items() if k not in ("in_features", "in_channels", "num_features")}
