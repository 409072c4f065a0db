"""Layers that only reshape or pass their input through: ``Flatten`` and ``Identity``."""
from __future__ import annotations

import math

from trainkit.nn.module import Module
from trainkit.registry import Example, Inferred, ShapeProblem, batched_dim, layer

__all__ = ["Flatten", "Identity"]


@layer("flatten", example=Example((2, 3, 2, 2)))
class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` into one (the batch dimension 0 is kept by default).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C*H*W)`` with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        shape = tuple(input.shape)
        if not shape:
            return input.reshape((1,))
        n = len(shape)
        for d in (self.start_dim, self.end_dim):
            if not -n <= d < n:
                raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
        start = self.start_dim % n
        end = self.end_dim % n
        if start > end:
            raise ValueError(f"flatten() has invalid args: start_dim {self.start_dim} cannot come after end_dim {self.end_dim}")
        new_shape = shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]
        return input.reshape(new_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    @staticmethod
    def infer_shape(args, x):
        """The dimensions ``start_dim..end_dim`` (batched numbering) become one."""
        start = batched_dim("start_dim", args["start_dim"], x)
        end = batched_dim("end_dim", args["end_dim"], x)
        if start == 0:
            raise ShapeProblem("start_dim 0 would merge the batch dimension into the features", "start_dim")
        if start > end:
            raise ShapeProblem(f"start_dim {args['start_dim']} comes after end_dim {args['end_dim']}", "start_dim")
        a, b = start - 1, end - 1
        return Inferred(x[:a] + (math.prod(x[a:b + 1]),) + x[b + 1:])


@layer("identity", example=Example((2, 3)))
class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments (as PyTorch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input

    @staticmethod
    def infer_shape(args, x):
        """The input's shape."""
        return Inferred(tuple(x))
