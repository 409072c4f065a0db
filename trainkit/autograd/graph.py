"""Looking at the recorded graph as PyTorch shows it: node names, ``next_functions``, ``AccumulateGrad``.

trainkit's graph nodes are :class:`~trainkit.autograd.function.Op` instances
named after their forward operation (``Add``, ``Conv2d``...). PyTorch users
read graphs in torch's names (``AddBackward0``, ``ConvolutionBackward0``), so
:func:`node_name` maps each op class to torch's name where torch records an
equivalent node. Where trainkit fuses what torch records as several nodes
(``Linear`` is torch's ``AddmmBackward0`` over a ``TBackward0``;
``CrossEntropy`` is ``NllLossBackward0`` over ``LogSoftmaxBackward0``), the
node keeps trainkit's own name with torch's ``Backward0`` suffix. Op classes
added later get ``<ClassName>Backward0`` until they are listed here.

``next_functions`` has one ``(node, 0)`` entry per input, as torch's: the
input's grad_fn, an :class:`AccumulateGrad` for a leaf that requires grad, or
``None``. Python scalars become constant inputs in trainkit, so ``x * 2``
shows ``(None, 0)`` for the 2 exactly as torch does; ``x ** 2`` and ``2 - x``
keep that constant entry where torch drops it.
"""
from __future__ import annotations

import weakref

import numpy as np

from .function import Op

__all__ = ["Node", "AccumulateGrad", "node_name", "next_functions", "TORCH_NAMES"]

Node = Op  # torch.autograd.graph.Node: the base class of every graph node

# trainkit op class -> torch's node name, where torch records the same node
TORCH_NAMES = {
    "Add": "AddBackward0", "Sub": "SubBackward0", "Mul": "MulBackward0", "Div": "DivBackward0",
    "Neg": "NegBackward0", "Exp": "ExpBackward0", "Log": "LogBackward0", "Sqrt": "SqrtBackward0",
    "Abs": "AbsBackward0", "Tanh": "TanhBackward0", "Sigmoid": "SigmoidBackward0", "ReLU": "ReluBackward0",
    "LeakyReLU": "LeakyReluBackward0", "GELU": "GeluBackward0", "Clamp": "ClampBackward1",
    "Maximum": "MaximumBackward0", "Minimum": "MinimumBackward0", "Where": "WhereBackward0",
    "Cast": "ToCopyBackward0", "Clone": "CloneBackward0",
    "Conv2d": "ConvolutionBackward0", "MaxPool2x2": "MaxPool2DWithIndicesBackward0",
    "MaxPool2d": "MaxPool2DWithIndicesBackward0", "AvgPool2d": "AvgPool2DBackward0",
    "BatchNorm": "NativeBatchNormBackward0", "Dropout": "MulBackward0",
    "NLLLoss": "NllLossBackward0", "MSELoss": "MseLossBackward0",
    "BCEWithLogits": "BinaryCrossEntropyWithLogitsBackward0",
    "Var": "VarBackward0", "LogSumExp": "LogsumexpBackward0", "Softmax": "SoftmaxBackward0",
    "LogSoftmax": "LogSoftmaxBackward0", "Reshape": "ViewBackward0", "Permute": "PermuteBackward0",
    "Expand": "ExpandBackward0", "Tile": "RepeatBackward0", "Cat": "CatBackward0", "Stack": "StackBackward0",
}


def _is_constant(t) -> bool:
    """A 0-d input that needs no gradient: what a Python scalar operand becomes."""
    return t is not None and not t.requires_grad and t._array.ndim == 0


def _input(op, i):
    inputs = getattr(op, "inputs", None)
    return inputs[i] if inputs is not None and i < len(inputs) else None


def _matmul_name(op) -> str:
    a, b = _input(op, 0), _input(op, 1)
    if a is None or b is None:
        return "MatmulBackward0"
    dims = (a._array.ndim, b._array.ndim)
    return {(2, 2): "MmBackward0", (1, 1): "DotBackward0", (2, 1): "MvBackward0"}.get(dims, "MatmulBackward0")


def _getitem_name(op) -> str:
    key = getattr(op, "key", None)
    items = key if isinstance(key, tuple) else (key,)
    if all(isinstance(k, (int, np.integer)) for k in items):
        return "SelectBackward0"
    if all(k is None or k is Ellipsis or isinstance(k, (int, slice, np.integer)) for k in items):
        return "SliceBackward0"
    return "IndexBackward0"


def _pow_name(op) -> str:
    if _is_constant(_input(op, 1)):
        return "PowBackward0"
    if _is_constant(_input(op, 0)):
        return "PowBackward2"
    return "PowBackward1"


def _reduction_name(base: str):
    return lambda op: f"{base}Backward{0 if getattr(op, 'dim', None) is None else 1}"


_DYNAMIC = {
    "MatMul": _matmul_name,
    "GetItem": _getitem_name,
    "Pow": _pow_name,
    "Sub": lambda op: "RsubBackward1" if _is_constant(_input(op, 0)) else "SubBackward0",
    "Sum": _reduction_name("Sum"),
    "Mean": _reduction_name("Mean"),
    "MaxMinAll": lambda op: "MinBackward1" if getattr(op, "mode", "max") == "min" else "MaxBackward1",
    "MaxMinDim": lambda op: "MinBackward0" if getattr(op, "mode", "max") == "min" else "MaxBackward0",
    "AdaptiveAvgPool2d": lambda op: ("MeanBackward1" if tuple(getattr(op, "out", ())) == (1, 1)
                                     else "AdaptiveAvgPool2DBackward0"),
}


def node_name(op) -> str:
    """PyTorch's name for graph node ``op`` (``'MulBackward0'``), else ``'<OpClass>Backward0'``."""
    cls = type(op).__name__
    dynamic = _DYNAMIC.get(cls)
    if dynamic is not None:
        return dynamic(op)
    return TORCH_NAMES.get(cls) or f"{cls}Backward0"


class AccumulateGrad:
    """The node that adds a leaf's gradient into its ``.grad``, as ``next_functions`` shows it.

    Attributes:
        variable: the leaf tensor.

    One node per leaf while any graph refers to it, so a tensor used twice
    shows the same node twice (``a is b`` holds, as in torch).
    """

    next_functions: tuple = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        """``'torch::autograd::AccumulateGrad'``, torch's own name for it."""
        return "torch::autograd::AccumulateGrad"

    @property
    def metadata(self) -> dict:
        """A dict for the user's own annotations of this node."""
        return self.__dict__.setdefault("_metadata", {})

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


# keyed by id(leaf): the node holds its leaf, so the id stays valid for as long as the entry lives
_accumulators: "weakref.WeakValueDictionary[int, AccumulateGrad]" = weakref.WeakValueDictionary()


def accumulate_grad(t) -> AccumulateGrad:
    """The :class:`AccumulateGrad` node of leaf ``t`` (the same object while one is alive)."""
    node = _accumulators.get(id(t))
    if node is None or node.variable is not t:
        node = AccumulateGrad(t)
        _accumulators[id(t)] = node
    return node


def next_functions(op) -> tuple:
    """torch's ``grad_fn.next_functions`` for ``op``: ``((node or None, 0), ...)``, one per input.

    Raises:
        RuntimeError: the node was freed by a backward pass without ``retain_graph``.
    """
    cached = op.__dict__.get("_next_functions")
    if cached is not None:
        return cached
    from .hooks import _HookSelect

    source = op.node if isinstance(op, _HookSelect) else op  # torch's hook node has one entry per wrapped tensor
    inputs = getattr(source, "inputs", None)
    if inputs is None:
        raise RuntimeError("next_functions is not available: this node's graph was freed by backward() "
                           "(call backward(retain_graph=True) to keep it)")
    out = []
    for t in inputs:
        if t.grad_fn is not None:
            out.append((t.grad_fn, 0))
        elif t.requires_grad:
            out.append((accumulate_grad(t), 0))
        else:
            out.append((None, 0))
    # cached on the node: it keeps the AccumulateGrad nodes alive as long as the graph
    op._next_functions = result = tuple(out)
    return result
