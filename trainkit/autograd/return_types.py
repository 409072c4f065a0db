"""Named result tuples of the ops that return two tensors (``torch.return_types``).

``values, indices = x.sort()`` unpacks like a tuple and ``x.max(1).indices``
reads by name, as in PyTorch; the repr names the op
(``trainkit.return_types.sort(values=..., indices=...)``).
"""
from __future__ import annotations

from collections import namedtuple


def _result_type(name: str, fields=("values", "indices")):
    base = namedtuple(name, fields)

    def __repr__(self) -> str:
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
        return f"trainkit.return_types.{name}(\n{body})"

    cls = type(name, (base,), {"__slots__": (), "__repr__": __repr__,
                               "__doc__": f"The ``({', '.join(fields)})`` result of ``{name}``."})
    cls.__module__ = __name__
    return cls


max = _result_type("max")  # noqa: A001 - PyTorch's names
min = _result_type("min")  # noqa: A001
sort = _result_type("sort")
topk = _result_type("topk")
kthvalue = _result_type("kthvalue")
median = _result_type("median")
