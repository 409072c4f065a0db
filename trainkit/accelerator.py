"""``trainkit.accelerator``: PyTorch's device-agnostic accelerator queries; there is none."""
from __future__ import annotations

__all__ = ["is_available", "device_count", "current_accelerator"]


def is_available() -> bool:
    """False: trainkit computes on the CPU only."""
    return False


def device_count() -> int:
    """0: no accelerators."""
    return 0


def current_accelerator(check_available: bool = False):
    """None, as PyTorch returns when no accelerator is present."""
    return None
