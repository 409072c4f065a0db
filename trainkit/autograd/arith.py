"""``torch.add``/``sub``/``mul``/``div``/``true_divide``/``floor_divide`` and ``concat``: the function forms of the
operators, with PyTorch's keyword arguments (``alpha``, ``rounding_mode``)."""
from __future__ import annotations

import numpy as np

from .ops import elementwise as _ew
from .ops.shape import cat as _cat
from .tensor import Tensor

__all__ = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "concat", "concatenate"]


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else _ew._scalar_tensor(x)


def add(input, other, *, alpha=1) -> Tensor:  # noqa: A002 - PyTorch's names
    """``input + alpha * other`` (broadcast, PyTorch's type promotion)."""
    return _ew.add(_tensor(input), other * alpha if alpha != 1 else other)


def sub(input, other, *, alpha=1) -> Tensor:  # noqa: A002
    """``input - alpha * other``."""
    return _ew.sub(_tensor(input), other * alpha if alpha != 1 else other)


def mul(input, other) -> Tensor:  # noqa: A002
    """``input * other``."""
    return _ew.mul(_tensor(input), other)


def div(input, other, *, rounding_mode: str | None = None) -> Tensor:  # noqa: A002
    """``input / other``: true division (integers give floats), or rounded with ``rounding_mode``
    ``'trunc'`` (towards zero) or ``'floor'`` (down); rounded integer division stays integer, as in PyTorch."""
    if rounding_mode not in (None, "trunc", "floor"):
        raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    a = _tensor(input)
    if rounding_mode is None:
        return _ew.div(a, other)
    a, b = _ew.promote(a, other)
    if a.is_floating_point():
        q = _ew.div(a, b)
        return q.floor() if rounding_mode == "floor" else q.trunc()
    x, y = a.numpy(), b.numpy()
    if rounding_mode == "floor":
        return Tensor(np.floor_divide(x, y))
    q = np.abs(x) // np.abs(y)  # exact for integers, unlike a trip through floats
    return Tensor((q * (np.sign(x) * np.sign(y))).astype(x.dtype))


def true_divide(input, other) -> Tensor:  # noqa: A002
    """Same as ``div(input, other)``."""
    return div(input, other)


def floor_divide(input, other) -> Tensor:  # noqa: A002
    """``div(input, other, rounding_mode='floor')``."""
    return div(input, other, rounding_mode="floor")


def concat(tensors, dim: int = 0) -> Tensor:
    """Another name of ``cat``."""
    return _cat(tensors, dim)


concatenate = concat
