"""Layers that only reshape or pass their input through: ``Flatten``, ``Unflatten`` and ``Identity``."""
from __future__ import annotations

import math

from trainkit.nn.module import Module
from trainkit.registry import Example, Inferred, Int, ListOf, ShapeProblem, batched_dim, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Flatten", "Unflatten", "Identity"]


@layer("flatten", example=Example((2, 3, 2, 2)), onnx=_onnx.flatten)
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


@layer("identity", example=Example((2, 3)), onnx=_onnx.identity)
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


def _unflatten_check(args, path, ck) -> None:
    size = args.get("unflattened_size")
    if isinstance(size, list) and sum(1 for s in size if s == -1) > 1:
        ck.error(path + ("unflattened_size",), "only one size may be -1 (inferred)")


@layer("unflatten", args={"dim": Int(), "unflattened_size": ListOf(Int(lo=-1))}, check=_unflatten_check,
       example=Example((2, 6), {"dim": 1, "unflattened_size": [2, 3]}), onnx=_onnx.unflatten)
class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (one entry may be -1: inferred); the inverse of Flatten.

    Args:
        dim: the dimension to split (batched numbering; negative counts from the end).
        unflattened_size: the sizes it becomes (their product is its size).

    Shape:
        ``(N, 12)`` -> ``(N, 3, 4)`` with ``Unflatten(1, (3, 4))``.
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be a tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        for i, s in enumerate(unflattened_size):
            if not isinstance(s, int):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element of type "
                                f"{type(s).__name__} at pos {i}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):  # noqa: A002
        shape = tuple(input.shape)
        d = self.dim % len(shape) if -len(shape) <= self.dim < len(shape) else None
        if d is None:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-len(shape)}, {len(shape) - 1}], "
                             f"but got {self.dim})")
        sizes = _resolve(tuple(self.unflattened_size), shape[d])
        if sizes is None:
            raise RuntimeError(f"unflatten: Provided sizes {list(self.unflattened_size)} don't multiply up to the "
                               f"size of dim {self.dim} ({shape[d]}) in the input tensor")
        return input.reshape(shape[:d] + sizes + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"

    @staticmethod
    def infer_shape(args, x):
        """Dimension ``dim`` (batched numbering, not the batch) becomes ``unflattened_size``."""
        d = batched_dim("dim", args["dim"], x)
        if d == 0:
            raise ShapeProblem("dim 0 is the batch dimension", "dim")
        sizes = _resolve(tuple(args["unflattened_size"]), x[d - 1])
        if sizes is None:
            raise ShapeProblem(f"sizes {list(args['unflattened_size'])} do not multiply up to {x[d - 1]}",
                               "unflattened_size")
        return Inferred(tuple(x[:d - 1]) + sizes + tuple(x[d:]))


def _resolve(sizes: tuple, total: int):
    """``sizes`` with a -1 filled in so that they multiply to ``total``, or None when they cannot."""
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        return None
    if -1 in sizes:
        if known == 0 or total % known:
            return None
        return tuple(total // known if s == -1 else s for s in sizes)
    return sizes if known == total else None
