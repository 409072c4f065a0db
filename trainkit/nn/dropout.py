"""``Dropout``: zero activations at random while training."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import Example, Float, layer, same_shape

__all__ = ["Dropout"]


@layer("dropout", args={"p": Float(0, 1, hi_open=True)}, example=Example((4, 5), {"p": 0.3}, name="Dropout(0.3)"))
class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the rest by ``1/(1-p)``;
    in eval mode, return the input unchanged.

    The mask is drawn from trainkit's global generator (``trainkit.manual_seed``).
    ``inplace`` is accepted for PyTorch compatibility and ignored.

    Raises:
        ValueError: if ``p`` is outside [0, 1].
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"

    infer_shape = staticmethod(same_shape)
