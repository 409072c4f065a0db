"""Merge layers: ``Add``, ``Mul`` and ``Concat`` combine two or more inputs (the graph form's merge nodes)."""
from __future__ import annotations

import math

from trainkit.autograd.functional import cat
from trainkit.nn.module import Module
from trainkit.registry import Example, Inferred, ShapeProblem, batched_dim, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Add", "Mul", "Concat"]


def _equal_shapes(name: str, shapes) -> tuple:
    first = tuple(shapes[0])
    if any(tuple(s) != first for s in shapes[1:]):
        raise ShapeProblem(f"{name} needs inputs of equal shape, found {', '.join(fmt(s) for s in shapes)}", "inputs")
    return first


@layer("add", inputs="many", example=Example(((2, 3), (2, 3))), onnx=_onnx.add)
class Add(Module):
    """Elementwise sum of its inputs (the graph form's ``add`` node), in the order listed."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out

    @staticmethod
    def infer_shape(args, *shapes):
        """Inputs of equal shape; the output has it too."""
        return Inferred(_equal_shapes("add", shapes))


@layer("mul", inputs="many", example=Example(((2, 3), (2, 3))), onnx=_onnx.mul)
class Mul(Module):
    """Elementwise product of its inputs (the graph form's ``mul`` node)."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out

    @staticmethod
    def infer_shape(args, *shapes):
        """Inputs of equal shape; one multiply per element and extra input."""
        first = _equal_shapes("mul", shapes)
        return Inferred(first, macs=(len(shapes) - 1) * math.prod(first))


@layer("concat", inputs="many", example=Example(((2, 3), (2, 2))), onnx=_onnx.concat)
class Concat(Module):
    """Concatenation of its inputs along ``dim`` (batched numbering; the ``concat`` node).

    Args:
        dim: the dimension to join along (1, the channels or features, by default).
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        return cat(list(inputs), self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    @staticmethod
    def infer_shape(args, *shapes):
        """Equal shapes except along ``dim``, which adds up (``dim`` 0, the batch, is refused)."""
        dim = args["dim"]
        first = tuple(shapes[0])
        if any(len(s) != len(first) for s in shapes):
            raise ShapeProblem("concat needs inputs with the same number of dimensions, found "
                               f"{', '.join(fmt(s) for s in shapes)}", "inputs")
        d = batched_dim("dim", dim, first)
        if d == 0:
            raise ShapeProblem("concat along dim 0 would join batches, not features; use dim 1 or higher", "dim")
        k = d - 1
        if any(tuple(s[:k]) + tuple(s[k + 1:]) != first[:k] + first[k + 1:] for s in shapes):
            raise ShapeProblem(f"concat along dim {dim} needs the other dimensions equal, found "
                               f"{', '.join(fmt(s) for s in shapes)}", "inputs")
        return Inferred(first[:k] + (sum(s[k] for s in shapes),) + first[k + 1:])
