"""From the ``model`` section to a checked plan of layers with shapes, and from the plan to a model.

:func:`plan_model` walks the layers in order, resolves each type to its
declaration (a declared name, or a ``module:Class`` import path), checks its
arguments, propagates per-sample shapes from the data's input shape with the
layers' own shape rules, and fills the shape-filled arguments (``in_features``,
``in_channels``, ``num_features``). Nothing is allocated for declared layers:
the rules give shapes, multiply-adds and parameter counts. Every problem is
collected and raised at once as a :class:`ConfigError` placed at the YAML line
of the layer at fault. An undeclared custom layer is built and run once on a
zero batch of one sample instead.

:func:`build_model_and_plan` then constructs the modules: an ``nn.Sequential``
for a ``layers`` list, an :class:`~trainkit.nn.GraphModule` for a graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainkit.config.layers import check_layer_args, is_import_path, merge_names, unknown_layer
from trainkit.config.model_spec import ModelNode, split_ref, type_path
from trainkit.nn.container import ModuleDict, Sequential
from trainkit.nn.graph import INPUT, GraphModule
from trainkit.nn.module import Module
from trainkit.registry import LAYERS, LOSSES, Checker, LayerDeclaration, Shape, ShapeProblem, fmt

from .custom import CustomLayerError, import_layer

__all__ = ["PlannedNode", "ModelPlan", "plan_model", "instantiate", "build_model", "build_model_and_plan",
           "total_macs", "output_problem"]


@dataclass
class PlannedNode:
    """One layer after checking: its declaration, constructor kwargs and shapes.

    ``kind`` is ``"layer"``, ``"merge"`` or ``"custom"`` (an undeclared or
    ``register_layer`` class); ``macs`` and ``params`` come from the shape rule
    (None for a custom layer found by a trial run, whose built ``module`` the
    builder then reuses); ``outputs`` names the outputs of a multi-output layer.
    """

    name: str
    type: str
    kind: str
    cls: type
    kwargs: dict
    inputs: list[str]
    in_shapes: list[Shape]
    out_shape: Shape
    macs: int | None
    path: tuple
    args_path: tuple
    module: Module | None = field(default=None, repr=False)
    params: int | None = None
    buffers: int | None = None
    declaration: LayerDeclaration | None = field(default=None, repr=False)
    outputs: dict | None = None


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
        return self.shape_of(self.output)

    def shape_of(self, ref: str) -> Shape:
        """The shape of a node, or of one output of a multi-output node (``lstm.h_n``)."""
        name, out = split_ref(ref, {n.name for n in self.nodes})
        node = self.node(name)
        return node.outputs[out] if out else node.out_shape

    def node(self, name: str) -> PlannedNode:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)

    def parameter_count(self) -> int | None:
        """Parameters of the whole model from the shape rules (None if a layer's count is unknown)."""
        counts = [n.params for n in self.nodes]
        return None if any(c is None for c in counts) else int(sum(counts))

    def activation_elements(self) -> int:
        """Elements of every layer's output for one sample: what a forward pass keeps (memory budgets)."""
        return int(sum(math.prod(n.out_shape) for n in self.nodes))


def _base_dir(config, node: ModelNode):
    """Folder of the YAML file where ``node`` is written (custom layer files are relative to it)."""
    src = config.source(node.path)[0] or config.file
    if not src or src.startswith("<") or src.startswith("--set"):
        src = config.file
    if not src or src.startswith("<"):
        return Path.cwd()
    return Path(src).resolve().parent


def _declaration(node: ModelNode, base_dir, ck: Checker) -> LayerDeclaration | None:
    decl = LAYERS.get(node.type) if isinstance(node.type, str) else None
    if decl is not None:
        return decl
    if is_import_path(node.type):
        try:
            return import_layer(node.type, base_dir)
        except CustomLayerError as e:
            ck.error(type_path(node), str(e))
            return None
    ck.error(type_path(node), unknown_layer(node.type))
    return None


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
    spec = config.resolved.model
    sequential = spec.sequential
    ck = Checker()
    shapes: dict[str, Shape | None] = {INPUT: tuple(int(s) for s in input_shape)}
    planned: list[PlannedNode] = []
    reserved = set(dir(GraphModule)) | set(dir(ModuleDict))  # a repeated block's nodes live in a ModuleDict
    for node in spec.nodes:
        shapes[node.name] = None
        taken = [p for p in node.name.split(".") if p in reserved]
        if not sequential and taken:
            ck.error(node.path + ("name",), f"node name '{taken[0]}' is taken by a Module attribute; "
                                            "choose another")
            continue
        before = len(ck.problems)
        _plan_node(node, config, ck, shapes, planned, modules, sequential)
        if "." in node.name and len(ck.problems) > before:  # a copy in a repeat: say which
            ck.problems[before:] = [(p, f"{node.name}: {m}") for p, m in ck.problems[before:]]
    if ck.problems:
        raise config.error(list(dict.fromkeys(ck.problems)))
    return ModelPlan(planned, spec.output, sequential, shapes[INPUT])


def _plan_node(node: ModelNode, config, ck: Checker, shapes: dict, planned: list, modules, sequential: bool) -> None:
    """Check one layer against its inputs' shapes; on success record its shape and append it to ``planned``."""
    decl = _declaration(node, _base_dir(config, node), ck)
    if decl is None:
        return
    args = check_layer_args(decl, node.type, dict(node.args), node.args_path, ck)
    if args is None:
        return
    n_in = len(node.inputs)
    if decl.merges and (n_in < 2 if decl.inputs == "many" else n_in != decl.inputs):
        where = node.path + ("inputs",) if not sequential else type_path(node)
        what = "merges two or more inputs" if decl.inputs == "many" else f"takes {decl.inputs} inputs"
        ck.error(where, f"{node.type} {what}, found {n_in}"
                 + ("; merge nodes belong to the graph form (model.graph)" if sequential else ""))
        return
    if not decl.merges and n_in != 1:
        ck.error(node.path + ("inputs",), f"{node.type} takes one input, found {n_in}; "
                 f"combine them first with an {merge_names()} node")
        return
    in_shapes = [_input_shape(ref, shapes, planned, node, ck) for ref in node.inputs]
    if any(s is None for s in in_shapes):
        return  # an earlier layer failed (already reported), or an unknown output (reported here)
    if decl.trial:
        result = _plan_by_trial(node, decl, args, in_shapes, ck, (modules or {}).get(node.name))
    else:
        result = _plan_by_rule(node, decl, args, in_shapes, ck, sequential)
    if result is None:
        return
    shapes[node.name] = result.out_shape
    planned.append(result)


def _input_shape(ref: str, shapes: dict, planned: list[PlannedNode], node: ModelNode, ck: Checker):
    name, out = split_ref(ref, shapes)
    if not out:
        return shapes.get(name)
    if shapes.get(name) is None:
        return None
    source = next(p for p in planned if p.name == name)
    if not source.outputs or out not in source.outputs:
        known = ", ".join(source.outputs or ()) or "none: it has one output"
        ck.error(node.path + ("inputs",), f"'{ref}': {source.type} has no output '{out}' (outputs: {known})")
        return None
    return source.outputs[out]


def _plan_by_rule(node: ModelNode, decl: LayerDeclaration, args: dict, in_shapes, ck: Checker, sequential: bool):
    try:
        inferred = decl.infer(args, *in_shapes)
        filled = {}
        if decl.input_arg is not None:
            filled[decl.input_arg] = value = decl.input_value(in_shapes[0])
            given = args.get(decl.input_arg)
            if given is not None and given != value:
                raise ShapeProblem(f"{decl.input_arg} is {given} but the input gives {value} (input "
                                   f"{fmt(in_shapes[0])} per sample); leave {decl.input_arg} out to infer it",
                                   decl.input_arg)
    except ShapeProblem as e:
        for message, key in e.problems:
            where = (node.path + ("inputs",) if not sequential else node.args_path) if key == "inputs" \
                else node.args_path + ((key,) if key and key in node.args else ())
            ck.error(where, f"{message} (input {', '.join(fmt(s) for s in in_shapes)})"
                     if key != "inputs" and "input" not in message else message)
        return None
    out_shape = tuple(inferred.shape)
    if any(d < 1 for d in out_shape):
        ck.error(node.args_path, f"{node.type} gives an empty output {fmt(out_shape)} from input {fmt(in_shapes[0])}")
        return None
    if decl.outputs and (not inferred.outputs or set(inferred.outputs) != set(decl.outputs)):
        raise AssertionError(f"layer '{decl.name}': its shape rule must give Inferred.outputs for "
                             f"{', '.join(decl.outputs)}")
    kwargs = {**decl.overrides, **args, **filled}
    kind = "merge" if decl.merges else ("layer" if decl.checked else "custom")
    return PlannedNode(node.name, node.type, kind, decl.cls, kwargs, list(node.inputs), list(in_shapes), out_shape,
                       int(inferred.macs), node.path, node.args_path, None, int(inferred.params),
                       int(inferred.buffers), decl, dict(inferred.outputs) if decl.outputs else None)


def _plan_by_trial(node: ModelNode, decl: LayerDeclaration, args: dict, in_shapes, ck: Checker, module):
    """Construct a custom layer (filling its input size) and find its output shape by a trial run."""
    from trainkit.autograd.function import no_grad
    from trainkit.autograd.tensor import Tensor

    kwargs = dict(args)
    if decl.input_arg and decl.input_arg not in kwargs and in_shapes[0]:
        kwargs[decl.input_arg] = decl.input_value(in_shapes[0])
    if module is None:
        try:
            module = decl.cls(**kwargs)
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
    params = sum(p.numel() for p in module.parameters())
    return PlannedNode(node.name, node.type, "custom", decl.cls, kwargs, list(node.inputs), list(in_shapes),
                       tuple(int(d) for d in shape[1:]), None, node.path, node.args_path, module, params, None, decl)


def _call_text(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def instantiate(plan: ModelPlan) -> list[tuple[str, Module, list[str]]]:
    """Construct each planned node's module (custom ones built for a trial run are reused)."""
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
    """Raise a located ConfigError when a classifier's output does not match ``num_classes``.

    For a language model ``num_classes`` is the vocabulary size: the model must
    output ``(time, vocabulary)`` per sample, and a token embedding reading the
    input must have a row for every token.
    """
    loss = LOSSES[config.resolved.loss.type]
    if num_classes is None or loss.target != "classes":
        return
    if config.resolved.task == "language_model":
        _language_model_problems(config, plan, num_classes)
        return
    out = plan.output_shape
    if len(out) == 1 and out[0] == num_classes:
        return
    raise config.error([_last_layer_problem(plan, f"the model outputs {fmt(out)} per sample but the dataset has "
                                                  f"{num_classes} classes", num_classes)])


def _last_layer_problem(plan: ModelPlan, message: str, wanted: int) -> tuple:
    node = plan.node(split_ref(plan.output, {n.name for n in plan.nodes})[0])
    key = next((k for k in ("out_features", "out_channels") if k in node.kwargs), None)
    written = {k for k in node.kwargs if node.declaration is None or k != node.declaration.input_arg}
    where = node.args_path + ((key,) if key and key in written else ())
    return where, f"{message}; the last layer ('{node.name}') should output {wanted}"


def _language_model_problems(config, plan: ModelPlan, vocab: int) -> None:
    problems = []
    for n in plan.nodes:
        rows = n.kwargs.get("num_embeddings")
        if INPUT in n.inputs and isinstance(rows, int) and rows < vocab:
            problems.append((n.args_path + ("num_embeddings",),
                             f"num_embeddings is {rows} but the vocabulary has {vocab} tokens; token ids go "
                             f"up to {vocab - 1}: set num_embeddings: {vocab}"))
    out, time = plan.output_shape, plan.input_shape[0]
    if len(out) != 2 or out[0] != time or out[1] != vocab:
        problems.append(_last_layer_problem(
            plan, f"a language model outputs (time, vocabulary) = {time}x{vocab} per sample (a logit per token "
                  f"at every position), but this model outputs {fmt(out)}", vocab))
    if problems:
        raise config.error(problems)


def build_model(config, input_shape, num_classes: int | None = None, before_build=None) -> Module:
    """The model of ``config`` for samples of ``input_shape`` (e.g. ``(3, 32, 32)``).

    A ``layers`` list gives an ``nn.Sequential`` (state_dict keys ``0.weight``,
    ``3.bias``, ... as PyTorch's); a ``graph`` gives a :class:`GraphModule`
    (keys ``stem.weight``). With ``num_classes`` (and a loss on class indices)
    the output must have that many values per sample.

    ``before_build(plan)`` runs on the checked plan before any layer is constructed
    (the memory budget is checked there).

    Raises:
        ConfigError: every layer problem at once, each at its YAML line.
    """
    return build_model_and_plan(config, input_shape, num_classes, before_build)[0]


def build_model_and_plan(config, input_shape, num_classes: int | None = None, before_build=None
                         ) -> tuple[Module, ModelPlan]:
    """:func:`build_model` that also returns the checked plan (shapes, multiply-adds, parameters)."""
    plan = plan_model(config, input_shape)
    output_problem(config, plan, num_classes)
    if before_build is not None:
        before_build(plan)
    built = instantiate(plan)
    multi = {n.name: n.declaration.outputs for n in plan.nodes if n.declaration is not None and n.declaration.outputs}
    if plan.sequential and not multi:
        return _nested_sequential([(name.split("."), m) for name, m, _ in built]), plan
    output = plan.output
    return GraphModule(built, output, multi), plan


def _nested_sequential(items: list[tuple[list[str], Module]], depth: int = 0) -> Sequential:
    """A ``Sequential`` of the modules, copies of a repeated block (``2.3.0``) nested as PyTorch nests
    Sequentials, so the keys are the names (``2.3.0.weight``)."""
    out: list[Module] = []
    i = 0
    while i < len(items):
        parts, module = items[i]
        if len(parts) == depth + 1:
            out.append(module)
            i += 1
            continue
        j = i
        while j < len(items) and len(items[j][0]) > depth + 1 and items[j][0][depth] == parts[depth]:
            j += 1
        out.append(_nested_sequential(items[i:j], depth + 1))
        i = j
    return Sequential(*out)
