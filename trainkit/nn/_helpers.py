"""Small helpers shared by the layer modules (argument normalisation, parameter allocation)."""
from __future__ import annotations

from typing import Any

import numpy as np


def _pair(x: Any) -> tuple:
    """``3`` -> ``(3, 3)``; a 2-sequence stays as a tuple (how PyTorch stores conv arguments)."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected an int or a pair of ints, got {x!r}")
        return tuple(x)
    return (x, x)


def np_dtype(dtype) -> np.dtype:
    """The numpy dtype for a trainkit/numpy dtype; ``None`` means float32 (PyTorch's default)."""
    if dtype is None:
        return np.dtype(np.float32)
    return np.dtype(getattr(dtype, "numpy_dtype", dtype))


def check_device(device) -> None:
    """Accept the ``device=`` of a layer constructor when it names the CPU (trainkit's only device)."""
    if device is not None:
        from trainkit.autograd.device import check_cpu

        check_cpu(device)


def check_reduction(reduction: str) -> str:
    """Validate a loss ``reduction`` argument (PyTorch's message)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction
