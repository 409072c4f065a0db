"""``trainkit.backends.cuda``: the CUDA matmul switches programs set (recorded only; there is no CUDA)."""
from __future__ import annotations


class _MatmulFlags:
    """``trainkit.backends.cuda.matmul``: ``allow_tf32`` and the reduced-precision switches."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True

    def __repr__(self) -> str:
        return f"<trainkit.backends.cuda.matmul allow_tf32={self.allow_tf32}>"


matmul = _MatmulFlags()


def is_built() -> bool:
    """False: trainkit is not built with CUDA."""
    return False
