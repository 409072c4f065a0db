"""``trainkit.backends``: the switches PyTorch programs set on their backends, and the deterministic-mode flags.

``trainkit.backends.cudnn.benchmark = False`` / ``.deterministic = True``,
``trainkit.backends.cuda.matmul.allow_tf32`` and
``trainkit.backends.mps.is_available()`` exist so that seeding and setup code
written for PyTorch runs unchanged; none of those backends exists here, so
the switches are stored and change nothing. trainkit's CPU kernels are
deterministic for a given thread count whatever the flags say.
"""
from __future__ import annotations

from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps", "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
           "is_deterministic_algorithms_warn_only_enabled", "set_float32_matmul_precision",
           "get_float32_matmul_precision"]

_deterministic = {"mode": False, "warn_only": False}
_matmul_precision = "highest"


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Record PyTorch's deterministic-algorithms flag (trainkit's CPU kernels are deterministic already)."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms expects a bool, got {type(mode).__name__}")
    _deterministic.update(mode=mode, warn_only=bool(warn_only))


def are_deterministic_algorithms_enabled() -> bool:
    """The flag set by :func:`use_deterministic_algorithms`."""
    return _deterministic["mode"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    """The ``warn_only`` flag set by :func:`use_deterministic_algorithms`."""
    return _deterministic["warn_only"]


def set_float32_matmul_precision(precision: str) -> None:
    """Accept PyTorch's ``"highest"``/``"high"``/``"medium"``; trainkit's float32 matmuls are always full precision."""
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"Invalid float32 matmul precision {precision!r}: expected 'highest', 'high' or 'medium'")
    _matmul_precision = precision


def get_float32_matmul_precision() -> str:
    """The value last set with :func:`set_float32_matmul_precision` (``"highest"`` by default)."""
    return _matmul_precision
