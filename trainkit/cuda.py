"""``trainkit.cuda``: PyTorch's CUDA queries, answered for a CPU-only engine.

Programs probe CUDA before choosing a device (``torch.cuda.is_available()``)
and seed it (``torch.cuda.manual_seed_all``); those calls work and report that
there is no GPU, exactly as on a CPU-only PyTorch build. Calls that need a GPU
to mean anything (``synchronize``, ``current_device``, ``set_device``,
``get_device_name``) raise the CPU-only RuntimeError.
"""
from __future__ import annotations

from trainkit.autograd.device import cpu_only_error

__all__ = ["is_available", "device_count", "is_initialized", "manual_seed", "manual_seed_all", "seed", "seed_all",
           "empty_cache", "synchronize", "current_device", "set_device", "get_device_name"]


def is_available() -> bool:
    """False: trainkit has no CUDA backend."""
    return False


def device_count() -> int:
    """0: no CUDA devices."""
    return 0


def is_initialized() -> bool:
    """False: CUDA is never initialised."""
    return False


def manual_seed(seed) -> None:
    """Accepted and ignored, as on a CPU-only PyTorch build (there is no CUDA generator to seed)."""
    int(seed)


def manual_seed_all(seed) -> None:
    """Accepted and ignored, as on a CPU-only PyTorch build."""
    int(seed)


def seed() -> None:
    """Accepted and ignored (no CUDA generator)."""


def seed_all() -> None:
    """Accepted and ignored (no CUDA generator)."""


def empty_cache() -> None:
    """A no-op: there is no CUDA memory cache (PyTorch does the same when CUDA is not initialised)."""


def synchronize(device=None) -> None:
    """Raises: there is no CUDA device to wait for."""
    raise cpu_only_error("cuda")


def current_device() -> int:
    """Raises: there is no current CUDA device."""
    raise cpu_only_error("cuda")


def set_device(device) -> None:
    """Raises: there is no CUDA device to select."""
    raise cpu_only_error(device if isinstance(device, str) else "cuda")


def get_device_name(device=None) -> str:
    """Raises: there is no CUDA device to name."""
    raise cpu_only_error("cuda")
