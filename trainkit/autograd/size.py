"""``Size``: the tuple subclass that ``Tensor.shape`` and ``Tensor.size()`` return, as ``torch.Size``."""
from __future__ import annotations

import math
import operator


class Size(tuple):
    """A tensor's shape: a tuple of ints with ``numel()``, printed ``trainkit.Size([2, 3])``.

    It equals the plain tuple with the same entries, slicing and ``+`` give a
    ``Size`` again, and indexing gives an ``int``, as in PyTorch.
    """

    __slots__ = ()

    def __new__(cls, sizes=()):
        items = tuple(sizes)
        for i, d in enumerate(items):
            if not isinstance(d, int) or isinstance(d, bool):
                try:
                    d = operator.index(d)  # numpy integers and 0-d integer tensors
                except TypeError:
                    raise TypeError(f"trainkit.Size() takes an iterable of 'int' (item {i} is "
                                    f"'{type(d).__name__}')") from None
        return super().__new__(cls, (operator.index(d) for d in items))

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds (1 for ``Size([])``)."""
        return math.prod(self)

    def __getitem__(self, key):
        out = super().__getitem__(key)
        return Size(out) if isinstance(key, slice) else out

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple(self) + tuple(other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple(other) + tuple(self))

    def __mul__(self, n):
        return Size(tuple(self) * n)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"trainkit.Size({list(self)!r})"

    __str__ = __repr__

    def __reduce__(self):
        return (Size, (tuple(self),))


_new = tuple.__new__


def from_shape(shape: tuple) -> Size:
    """Wrap an ndarray's shape (already a tuple of ints) without re-checking it: the hot path of ``.shape``."""
    return _new(Size, shape)
