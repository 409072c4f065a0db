"""The dtypes trainkit tensors use: numpy dtypes under PyTorch's names and type.

Tensors store plain ndarrays; ``Tensor.dtype`` maps the array's numpy dtype to
one of the :class:`dtype` singletons below, which behave like ``torch.dtype``
(``is_floating_point``, ``itemsize``, ``trainkit.float32`` printing) and like
the numpy dtype they wrap (equality, hashing, use as a numpy ``dtype=``).
"""
from __future__ import annotations

import builtins

import numpy as np


class dtype:
    """A tensor element type, as ``torch.dtype``: ``trainkit.float32``, ``trainkit.int64`` ...

    Each is a singleton wrapping a numpy dtype. It compares equal to (and
    hashes like) that numpy dtype, and numpy accepts it wherever it takes a
    dtype (``np.zeros(3, trainkit.float32)``), so code written against either
    library's dtypes keeps working. ``x.dtype is trainkit.float32`` holds, as in
    PyTorch.
    """

    __slots__ = ("numpy_dtype", "_name")

    def __init__(self, np_dtype, name: str):
        self.numpy_dtype = np.dtype(np_dtype)
        self._name = name

    # numpy reads ``.dtype`` when it is handed an object as a dtype.
    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (numpy reads this attribute when given the object as a dtype)."""
        return self.numpy_dtype

    @property
    def is_floating_point(self) -> bool:
        """True for float16/32/64."""
        return self.numpy_dtype.kind == "f"

    @property
    def is_complex(self) -> bool:
        """True for complex64/128."""
        return self.numpy_dtype.kind == "c"

    @property
    def is_signed(self) -> bool:
        """True for signed integers, floats and complex types."""
        return self.numpy_dtype.kind in "ifc"

    @property
    def itemsize(self) -> builtins.int:
        """Bytes per element."""
        return self.numpy_dtype.itemsize

    # The numpy attributes engine code reads on a dtype.
    @property
    def kind(self) -> str:
        """numpy's kind character ('f', 'i', 'u', 'b', 'c')."""
        return self.numpy_dtype.kind

    @property
    def type(self):
        """numpy's scalar type (``np.float32`` ...)."""
        return self.numpy_dtype.type

    @property
    def name(self) -> str:
        """numpy's name of the type (``"float32"``), for code written against numpy dtypes."""
        return self.numpy_dtype.name

    @property
    def char(self) -> str:
        """numpy's type character."""
        return self.numpy_dtype.char

    def to_complex(self) -> "dtype":
        """The complex dtype with this float's precision (float32 -> complex64)."""
        table = {"float16": "complex64", "float32": "complex64", "float64": "complex128"}
        if self.numpy_dtype.name not in table and self.numpy_dtype.kind != "c":
            raise ValueError(f"to_complex is only supported for floating point dtypes, got {self}")
        return from_numpy_dtype(np.dtype(table.get(self.numpy_dtype.name, self.numpy_dtype.name)))

    def to_real(self) -> "dtype":
        """The real dtype with this complex type's precision (complex64 -> float32)."""
        table = {"complex64": "float32", "complex128": "float64"}
        return from_numpy_dtype(np.dtype(table.get(self.numpy_dtype.name, self.numpy_dtype.name)))

    def __eq__(self, other) -> builtins.bool:
        if other is self:
            return True
        if isinstance(other, dtype):
            return False  # singletons: a different object is a different dtype
        try:
            return self.numpy_dtype == np.dtype(other)
        except (TypeError, ValueError):
            return False

    def __ne__(self, other) -> builtins.bool:
        return not self.__eq__(other)

    def __hash__(self) -> builtins.int:
        return hash(self.numpy_dtype)

    def __repr__(self) -> str:
        return f"trainkit.{self._name}"

    __str__ = __repr__

    def __reduce__(self):
        # Pickling/deepcopy keeps the singleton.
        return (from_numpy_dtype, (self.numpy_dtype.str,))


_DType = dtype  # the class, for functions whose argument is named ``dtype`` as in PyTorch

float32 = dtype("float32", "float32")
float64 = dtype("float64", "float64")
float16 = dtype("float16", "float16")
complex64 = dtype("complex64", "complex64")
complex128 = dtype("complex128", "complex128")
int64 = dtype("int64", "int64")
int32 = dtype("int32", "int32")
int16 = dtype("int16", "int16")
int8 = dtype("int8", "int8")
uint8 = dtype("uint8", "uint8")
uint16 = dtype("uint16", "uint16")
uint32 = dtype("uint32", "uint32")
uint64 = dtype("uint64", "uint64")
bool_ = dtype("bool", "bool")
float = float32  # noqa: A001 - PyTorch's alias: torch.float is float32
double = float64
half = float16
cfloat = complex64
cdouble = complex128
long = int64
int = int32  # noqa: A001 - torch.int is int32
short = int16

_BY_NUMPY: dict = {d.numpy_dtype: d for d in (float32, float64, float16, complex64, complex128, int64, int32, int16,
                                                 int8, uint8, uint16, uint32, uint64, bool_)}


def from_numpy_dtype(np_dtype) -> dtype:
    """The trainkit dtype for a numpy dtype (what ``Tensor.dtype`` returns)."""
    try:
        return _BY_NUMPY[np_dtype]
    except (KeyError, TypeError):
        pass
    nd = np.dtype(np_dtype)
    found = _BY_NUMPY.get(nd)
    if found is None:  # a dtype torch has no name for (e.g. a byte-swapped array): still describe it
        found = _BY_NUMPY[nd] = dtype(nd, nd.name)
    return found


def finfo(type=None):  # noqa: A002 - PyTorch's argument name
    """Machine limits of a floating dtype (``eps``, ``max``, ``min``, ``tiny``, ``bits``), as ``torch.finfo``."""
    return np.finfo(np.dtype(get_default_dtype() if type is None else to_dtype(type)))


def iinfo(type):  # noqa: A002
    """Machine limits of an integer dtype (``max``, ``min``, ``bits``), as ``torch.iinfo``."""
    return np.iinfo(to_dtype(type))


_default_float = float32.numpy_dtype


def get_default_dtype():
    """The dtype used for Python floats (float32 unless changed)."""
    return from_numpy_dtype(_default_float)


def set_default_dtype(dtype) -> None:
    """Change the dtype used for Python floats (float32 or float64)."""
    global _default_float
    dt = np.dtype(dtype)
    if dt not in (float32.numpy_dtype, float64.numpy_dtype):
        raise TypeError(f"only float32 and float64 can be the default dtype, got {dt}")
    _default_float = dt


def to_dtype(dtype) -> np.dtype | None:
    """Normalise a dtype argument (trainkit/numpy dtype, Python type or name) or None."""
    if dtype is None:
        return None
    if dtype is builtins.float:
        return _default_float
    if dtype is builtins.int:
        return int64.numpy_dtype
    if dtype is builtins.bool:
        return bool_.numpy_dtype
    if isinstance(dtype, _DType):
        return dtype.numpy_dtype
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
        return arr.astype(int64.numpy_dtype, copy=False)
    if arr.dtype.kind == "O":
        raise TypeError(f"cannot make a tensor from data of type {type(data).__name__}")
    return arr
