"""PyTorch's legacy typed tensor constructors: ``torch.LongTensor(6)``, ``torch.FloatTensor([1, 2])``.

Old example programs still build tensors this way (word_language_model's ONNX export:
``torch.LongTensor(seq_len * batch_size).zero_()``). As in torch, integer arguments
give a tensor of that size (torch leaves it uninitialised; here it is zero-filled, a
valid uninitialised value), a sequence or array gives a tensor of those values, and
no argument an empty one. ``isinstance(t, torch.LongTensor)`` is true for an int64
tensor, as torch answers for its CPU tensors.
"""
from __future__ import annotations

import numpy as np

from .creation import tensor, zeros
from .dtypes import bool_, float16, float32, float64, int32, int64, uint8
from .size import Size
from .tensor import Tensor

__all__ = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ByteTensor", "BoolTensor"]


class _TypedTensorMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype

    def __call__(cls, *args) -> Tensor:
        if not args:
            return zeros(0, dtype=cls.dtype)
        if len(args) == 1 and isinstance(args[0], (Size, tuple)) and all(_is_int(a) for a in args[0]):
            return zeros(*args[0], dtype=cls.dtype)
        if all(_is_int(a) for a in args):
            if any(int(a) < 0 for a in args):
                raise RuntimeError(f"Trying to create tensor with negative dimension: {list(args)}")
            return zeros(*[int(a) for a in args], dtype=cls.dtype)
        if len(args) == 1:
            data = args[0]
            if isinstance(data, Tensor):
                data = data.numpy()
            return tensor(data, dtype=cls.dtype)
        raise TypeError(f"{cls.__name__}(): expected sizes (ints) or one sequence of values, got "
                        f"{', '.join(type(a).__name__ for a in args)}")


def _is_int(a) -> bool:
    return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))


def _typed(name: str, dtype) -> type:
    return _TypedTensorMeta(name, (), {"dtype": dtype, "__doc__": f"``torch.{name}``: a {dtype} tensor.",
                                        "__module__": "trainkit"})


FloatTensor = _typed("FloatTensor", float32)
DoubleTensor = _typed("DoubleTensor", float64)
HalfTensor = _typed("HalfTensor", float16)
LongTensor = _typed("LongTensor", int64)
IntTensor = _typed("IntTensor", int32)
ByteTensor = _typed("ByteTensor", uint8)
BoolTensor = _typed("BoolTensor", bool_)
