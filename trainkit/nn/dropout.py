"""``Dropout``, ``Dropout1d``, ``Dropout2d``: zero activations (or whole channels) at random while training."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import Example, Float, Inferred, layer, need_image, need_rank, same_shape

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


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


@layer("dropout2d", args={"p": Float(0, 1, hi_open=True)},
       example=Example((2, 3, 2, 2), {"p": 0.5}, name="Dropout2d(0.5)"))
class Dropout2d(Module):
    """In training, zero whole channels of ``(N, C, H, W)`` (or ``(C, H, W)``) input with probability ``p`` and
    scale the rest by ``1/(1-p)``; identity in eval mode.

    A 3-D input is read as ``(N, C, L)`` with a warning, as PyTorch does (use :class:`Dropout1d`).
    ``inplace`` is accepted and ignored.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):  # noqa: A002
        return F.dropout2d(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, H, W)`` per sample (whole channels dropped)."""
        need_image("dropout2d", x)
        return Inferred(tuple(x))


@layer("dropout1d", args={"p": Float(0, 1, hi_open=True)},
       example=Example((2, 3, 4), {"p": 0.5}, name="Dropout1d(0.5)"))
class Dropout1d(Module):
    """In training, zero whole channels of ``(N, C, L)`` (or ``(C, L)``) input with probability ``p`` and scale
    the rest by ``1/(1-p)``; identity in eval mode. ``inplace`` is accepted and ignored.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):  # noqa: A002
        return F.dropout1d(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(C, L)`` per sample."""
        need_rank("dropout1d", x, (2,), "(channels, length)")
        return Inferred(tuple(x))
