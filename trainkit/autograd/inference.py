"""``inference_mode``: PyTorch's faster-than-``no_grad`` context, on an engine where they cost the same.

In trainkit an operation records a graph node only when gradients are enabled
and an input requires them, so ``no_grad`` already removes all bookkeeping;
``inference_mode`` therefore disables recording exactly as ``no_grad`` does.
PyTorch additionally marks tensors made inside it as "inference tensors" that
later refuse to enter autograd; trainkit does not (such use simply works).
"""
from __future__ import annotations

import functools

from . import function as _function

_inference = False


def is_inference_mode_enabled() -> bool:
    """Whether an ``inference_mode`` block is active."""
    return _inference


class inference_mode:
    """Disable graph recording: ``with trainkit.inference_mode():``, ``@inference_mode()`` or ``@inference_mode``.

    Args:
        mode: True (the default) enables inference mode; ``inference_mode(False)``
            is a no-op context, as in PyTorch.
    """

    def __new__(cls, mode_or_func=True):
        if isinstance(mode_or_func, bool):
            return super().__new__(cls)
        if callable(mode_or_func):  # bare ``@inference_mode``
            return cls()(mode_or_func)
        raise TypeError(f"inference_mode expects a bool or a function, got {type(mode_or_func).__name__}")

    def __init__(self, mode_or_func=True):
        self.mode = bool(mode_or_func) if isinstance(mode_or_func, bool) else True
        self._saved: list[tuple[bool, bool]] = []

    def __enter__(self) -> "inference_mode":
        global _inference
        self._saved.append((_function._grad_enabled, _inference))
        if self.mode:
            _function._grad_enabled = False
            _inference = True
        return self

    def __exit__(self, *exc) -> bool:
        global _inference
        _function._grad_enabled, _inference = self._saved.pop()
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)

        return wrapper

    def clone(self) -> "inference_mode":
        """A fresh context with the same mode (PyTorch's API)."""
        return inference_mode(self.mode)
