"""``Parameter``: a Tensor that a :class:`~trainkit.nn.Module` registers as trainable.

Assigning a ``Parameter`` to a module attribute is what puts it into
``parameters()`` and ``state_dict()``; a plain Tensor attribute stays invisible,
exactly as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from trainkit.autograd.tensor import Tensor


def _as_array(data) -> np.ndarray:
    """The ndarray behind ``data`` without copying it (a Tensor's storage is shared)."""
    if data is None:
        return np.empty((0,), dtype=np.float32)
    if isinstance(data, Tensor):
        return data._array
    if isinstance(data, np.ndarray):
        return data
    # Python numbers/lists follow the engine's conversion rules (floats -> float32).
    from trainkit.autograd.creation import tensor

    return tensor(data)._array


class Parameter(Tensor):
    """A trainable tensor: ``Parameter(data, requires_grad=True)``.

    Args:
        data: a Tensor or ndarray; its storage is shared, not copied, and its
            dtype is kept (so ``Parameter(np.zeros(3, np.float32))`` is float32).
        requires_grad: whether backward should compute a gradient for it.

    Operations on a Parameter return ordinary Tensors; only the leaf itself is
    a Parameter.
    """

    def __init__(self, data=None, requires_grad: bool = True):
        array = _as_array(data)
        try:
            super().__init__(array, requires_grad=requires_grad)
        except TypeError:
            # An engine whose constructor takes only the array: set the flag afterwards.
            super().__init__(array)
            self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
