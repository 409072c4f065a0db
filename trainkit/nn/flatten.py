"""``Flatten``: merge a range of dimensions into one."""
from __future__ import annotations

import math

from trainkit.nn.module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` into one (the batch dimension 0 is kept by default).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C*H*W)`` with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        shape = tuple(input.shape)
        if not shape:
            return input.reshape((1,))
        n = len(shape)
        for d in (self.start_dim, self.end_dim):
            if not -n <= d < n:
                raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
        start = self.start_dim % n
        end = self.end_dim % n
        if start > end:
            raise ValueError(f"flatten() has invalid args: start_dim {self.start_dim} cannot come after end_dim {self.end_dim}")
        new_shape = shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]
        return input.reshape(new_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
