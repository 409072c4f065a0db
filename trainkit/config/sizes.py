"""Byte sizes in configs: ``train.max_memory: 8GiB`` (or ``500MB``, or a plain number of bytes)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from trainkit.registry import Spec, found

__all__ = ["ByteSize", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "t": 10 ** 12, "tb": 10 ** 12, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
_SIZE = re.compile(r"^\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([A-Za-z]{0,3})\s*$")


def parse_size(value) -> int | None:
    """``"8GiB"`` -> 8589934592, ``"500MB"`` -> 500000000, ``1024`` -> 1024; None when it is not a positive size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    m = _SIZE.match(value)
    if not m or m.group(2).lower() not in _UNITS:
        return None
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return size if size > 0 else None


@dataclass
class ByteSize(Spec):
    """A positive number of bytes, or a string with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)."""

    def describe(self) -> str:
        return "a size in bytes, e.g. 8GiB, 500MB or 1000000"

    def check(self, value, path, ck):
        size = parse_size(value)
        if size is None:
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        return size
