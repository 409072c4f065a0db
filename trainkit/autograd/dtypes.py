"""The dtypes trainkit tensors use (numpy dtypes under PyTorch's names)."""
from __future__ import annotations

import builtins

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")
float = float32  # noqa: A001 - PyTorch's alias: torch.float is float32
double = float64
long = int64
int = int32  # noqa: A001 - torch.int is int32

_default_float = float32


def get_default_dtype():
    """The dtype used for Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(dtype) -> None:
    """Change the dtype used for Python floats (float32 or float64)."""
    global _default_float
    dt = np.dtype(dtype)
    if dt not in (float32, float64):
        raise TypeError(f"only float32 and float64 can be the default dtype, got {dt}")
    _default_float = dt


def to_dtype(dtype) -> np.dtype | None:
    """Normalise a dtype argument (trainkit/numpy dtype, Python type or name) or None."""
    if dtype is None:
        return None
    if dtype is builtins.float:
        return _default_float
    if dtype is builtins.int:
        return int64
    if dtype is builtins.bool:
        return bool_
    return np.dtype(dtype)


def infer_array(data, dtype=None) -> np.ndarray:
    """Convert Python/numpy data to an ndarray with PyTorch's dtype rules."""
    dt = to_dtype(dtype)
    arr = np.asarray(data)
    if dt is not None:
        return arr.astype(dt, copy=False)
    if arr.dtype.kind == "f" and not isinstance(data, np.ndarray) and not isinstance(data, np.generic):
        return arr.astype(_default_float, copy=False)  # Python floats → float32 like torch
    if arr.dtype.kind in "iu" and not isinstance(data, (np.ndarray, np.generic)):
        return arr.astype(int64, copy=False)
    if arr.dtype.kind == "O":
        raise TypeError(f"cannot make a tensor from data of type {type(data).__name__}")
    return arr
