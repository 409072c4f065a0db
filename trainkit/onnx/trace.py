"""One forward pass watched: which layer calls and which engine ops made each output.

The tracer runs the model once on the example inputs with two things swapped
in for the duration of the call (and put back after, even on error):

* ``Module.__call__``: a call of a layer that has an export rule (its
  declaration's ``onnx=``, or a ``to_onnx`` method of a custom class) is
  recorded as one step, with its arguments and outputs; what happens inside it
  is not looked at. Nested calls belong to the outermost layer with a rule.
* ``Op.apply``: every engine op called outside such a layer (the functional
  code of a plain ``nn.Module.forward``: ``x.view(...)``, ``F.log_softmax``,
  ``a + b``) is recorded with its inputs, gradient recording or not.

Values nothing recorded produced are the model's inputs, its parameters and
buffers, or constants made during the pass (a mask from ``torch.ones``): the
last become initializers, as they do in PyTorch's tracer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..autograd.function import Op, no_grad
from ..autograd.tensor import Tensor
from ..nn.module import Module
from ..registry import LAYERS

__all__ = ["Step", "Trace", "trace", "rule_of", "flatten"]


def rule_of(module) -> Callable | None:
    """The export rule of a layer: its declaration's ``onnx=``, else its class's ``to_onnx``, else None."""
    cls = type(module)
    decl = LAYERS.of(cls)
    if decl is not None and decl.onnx is not None:
        return decl.onnx
    method = getattr(cls, "to_onnx", None)
    return method if callable(method) else None


def flatten(value) -> list:
    """The Tensors of a nested tuple/list/dict structure, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flatten(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flatten(v)]
    return []


@dataclass
class Step:
    """A recorded layer call (``module`` set) or engine op (``op`` set), in execution order."""

    inputs: list               # the Tensors it read, in order
    outputs: list              # the Tensors it produced
    module: Any = None
    args: Any = None           # the layer's positional and keyword arguments as called
    kwargs: Any = None
    result: Any = None         # the layer's output structure
    op: Any = None
    path: str = ""             # the layer's attribute path in the model (for messages)


@dataclass
class Trace:
    """The steps of one forward pass, and its result."""

    steps: list = field(default_factory=list)
    result: Any = None


def trace(model, args: tuple, kwargs: dict | None = None) -> Trace:
    """Run ``model(*args, **kwargs)`` once without gradients and record its steps (see the module docstring)."""
    out = Trace()
    depth = [0]
    paths = {id(m): name for name, m in model.named_modules()} if isinstance(model, Module) else {}
    module_call = Module.__call__
    op_apply = Op.__dict__["apply"]

    def call(self, *a, **kw):
        rule = rule_of(self) if depth[0] == 0 and self is not model or (depth[0] == 0 and _root_ruled(self)) \
            else None
        if rule is None:
            return module_call(self, *a, **kw)
        depth[0] += 1
        try:
            result = module_call(self, *a, **kw)
        finally:
            depth[0] -= 1
        ins = flatten((a, kw))
        ids = {id(t) for t in ins}
        outs = [t for t in flatten(result) if id(t) not in ids]  # a pass-through output is its input
        out.steps.append(Step(ins, outs, module=self, args=a, kwargs=kw, result=result,
                              path=paths.get(id(self), type(self).__name__)))
        return result

    def apply(cls, *inputs, **kw):
        op = cls(**kw) if kw else cls()
        y = Tensor(op.forward(*[t._array for t in inputs]))
        if depth[0] == 0:
            out.steps.append(Step(list(inputs), [y], op=op))
        return y

    Module.__call__ = call
    Op.apply = classmethod(apply)
    try:
        with no_grad():
            out.result = model(*args, **(kwargs or {}))
    finally:
        Module.__call__ = module_call
        Op.apply = op_apply
    return out


def _root_ruled(module) -> bool:
    """The model itself is one step only when it is a single layer with a rule (``export(nn.Linear(...))``)."""
    return rule_of(module) is not None
