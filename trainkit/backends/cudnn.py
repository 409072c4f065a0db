"""``trainkit.backends.cudnn``: the flags programs set (``benchmark``, ``deterministic``); there is no cuDNN.

Assigning ``trainkit.backends.cudnn.benchmark = True`` works as with PyTorch
and is recorded here; it changes nothing, as on a CPU-only PyTorch build.
"""
from __future__ import annotations

#: Let cuDNN pick the fastest algorithms (recorded only).
benchmark = False
#: Ask cuDNN for deterministic algorithms (recorded only).
deterministic = False
#: Whether cuDNN may be used (recorded only).
enabled = True
#: Allow TF32 in cuDNN convolutions (recorded only).
allow_tf32 = True


def is_available() -> bool:
    """False: there is no cuDNN."""
    return False


def version():
    """None: there is no cuDNN library."""
    return None
