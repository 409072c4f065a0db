"""``default_collate`` / ``default_convert``: how a DataLoader merges samples into a batch, exactly as PyTorch does.

* Tensors are stacked along a new first axis (``trainkit.stack``);
* numpy arrays become tensors and are stacked; numpy scalars a 1-d tensor;
* Python floats a float64 tensor, ints an int64 tensor, bools a bool tensor;
* strings and bytes stay a list;
* mappings collate per key (same mapping type), namedtuples per field (same type),
  tuples per position into a **list** (PyTorch's backwards-compatible choice),
  other sequences per position into their own type.

``collate(batch, collate_fn_map=...)`` and ``default_collate_fn_map`` extend it
for other element types, as in ``torch.utils.data._utils.collate``.
"""
from __future__ import annotations

import collections.abc
import copy
import re
from typing import Any, Callable

import numpy as np

__all__ = ["collate", "default_collate", "default_convert", "default_collate_fn_map", "default_collate_err_msg_format"]

_STR_OBJ_DTYPE = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _tensor_cls():
    from trainkit.autograd.tensor import Tensor

    return Tensor


def default_convert(data: Any) -> Any:
    """Turn numpy arrays (also inside mappings and sequences) into tensors; leave everything else.

    What the DataLoader applies to each sample when automatic batching is off (``batch_size=None``).
    """
    Tensor = _tensor_cls()
    t = type(data)
    if isinstance(data, Tensor):
        return data
    if t.__module__ == "numpy" and t.__name__ not in ("str_", "bytes_"):
        if isinstance(data, np.ndarray) and _STR_OBJ_DTYPE.search(data.dtype.str):
            return data
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({k: default_convert(data[k]) for k in data})
                return clone
            return t({k: default_convert(data[k]) for k in data})
        except TypeError:
            return {k: default_convert(data[k]) for k in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return t(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return t([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def collate(batch: list, *, collate_fn_map: dict | None = None) -> Any:
    """Collate ``batch`` (a list of samples), dispatching on the first sample's type through ``collate_fn_map``."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for kind, fn in collate_fn_map.items():
            if isinstance(elem, kind):
                return fn(batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem})
                return clone
            return elem_type({k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem})
        except TypeError:
            return {k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(s, collate_fn_map=collate_fn_map) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))  # tuples, as PyTorch passes them on (strings stay a tuple)
        if isinstance(elem, tuple):
            return [collate(s, collate_fn_map=collate_fn_map) for s in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, s in enumerate(transposed):
                    clone[i] = collate(s, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(s, collate_fn_map=collate_fn_map) for s in transposed])
        except TypeError:
            return [collate(s, collate_fn_map=collate_fn_map) for s in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def collate_tensor_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Stack tensors along a new first axis (differentiable, as ``torch.stack``)."""
    from trainkit.autograd.functional import stack

    return stack(batch, 0)


def collate_numpy_array_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Numpy arrays: refused for strings/objects, else made tensors and stacked."""
    if _STR_OBJ_DTYPE.search(batch[0].dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(batch[0].dtype))
    Tensor = _tensor_cls()
    return collate([Tensor(np.asarray(b)) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Numpy scalars: one 1-d tensor of their dtype."""
    return _tensor_cls()(np.asarray(batch))


def collate_float_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Python floats: a float64 tensor (PyTorch's choice, not the default dtype)."""
    return _tensor_cls()(np.asarray(batch, dtype=np.float64))


def collate_int_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Python ints (and bools): an int64 (bool) tensor, as ``torch.tensor(batch)``."""
    from trainkit.autograd.creation import tensor

    return tensor(batch)


def collate_str_fn(batch: list, *, collate_fn_map: dict | None = None):
    """Strings and bytes: the list itself."""
    return batch


def _default_map() -> dict[Any, Callable]:
    return {
        _tensor_cls(): collate_tensor_fn,
        np.ndarray: collate_numpy_array_fn,
        (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
        float: collate_float_fn,
        int: collate_int_fn,
        str: collate_str_fn,
        bytes: collate_str_fn,
    }


#: Element type -> collate function used by :func:`default_collate`; extend it for your own types.
default_collate_fn_map: dict[Any, Callable] = _default_map()


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate`` (see the module docstring)."""
    return collate(batch, collate_fn_map=default_collate_fn_map)
