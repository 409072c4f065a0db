"""Module-level math functions (``trainkit.exp``, ``trainkit.cat``, ``trainkit.max`` ...)."""
from __future__ import annotations

import numpy as np

from .ops import elementwise as _ew
from .ops import reduce as _rd
from .ops.elementwise import clamp, maximum, minimum, where  # noqa: F401 - re-exported
from .ops.math import floating
from .ops.matmul import matmul  # noqa: F401
from .ops.reduce import logsumexp, std, var  # noqa: F401 - PyTorch's signatures (correction=, dim tuples)
from .ops.shape import cat, stack  # noqa: F401
from .tensor import Tensor


def exp(x: Tensor) -> Tensor:
    return _ew.Exp.apply(floating(x))


def log(x: Tensor) -> Tensor:
    return _ew.Log.apply(floating(x))


def sqrt(x: Tensor) -> Tensor:
    return _ew.Sqrt.apply(floating(x))


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return _ew.Abs.apply(x)


def tanh(x: Tensor) -> Tensor:
    return _ew.Tanh.apply(floating(x))


def sigmoid(x: Tensor) -> Tensor:
    return _ew.Sigmoid.apply(floating(x))


def relu(x: Tensor) -> Tensor:
    return _ew.ReLU.apply(x)


def pow(x, exponent):  # noqa: A001
    return _ew.pow(x, exponent)


def softmax(x: Tensor, dim: int) -> Tensor:
    return _rd.Softmax.apply(x, dim=dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return _rd.LogSoftmax.apply(x, dim=dim)


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return x.sum(dim, keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.mean(dim, keepdim)


def max(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001
    """``max(x)`` → scalar; ``max(x, dim)`` → (values, indices); ``max(x, other)`` → elementwise."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return x.max(dim, keepdim)


def min(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return x.min(dim, keepdim)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.argmax(dim, keepdim)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.argmin(dim, keepdim)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def reshape(x: Tensor, shape) -> Tensor:
    return x.reshape(shape)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    return x.transpose(dim0, dim1)


def permute(x: Tensor, dims) -> Tensor:
    return x.permute(*dims)


def squeeze(x: Tensor, dim=None) -> Tensor:
    return x.squeeze(dim)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    return x.unsqueeze(dim)


def clip(x, min=None, max=None):  # noqa: A002
    return clamp(x, min, max)


def allclose(a: Tensor, b: Tensor, rtol=1e-5, atol=1e-8) -> bool:
    return bool(np.allclose(a._array, b._array, rtol=rtol, atol=atol))


def equal(a: Tensor, b: Tensor) -> bool:
    return a.equal(b)


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def numel(x: Tensor) -> int:
    return x.numel()
