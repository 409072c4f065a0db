"""Dropout layers: ``Dropout`` (elements) and ``Dropout1d/2d/3d`` (whole channels), zeroing at random while training."""
from __future__ import annotations

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import Example, Float, layer, need_rank, same_shape
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"]

_P = {"p": Float(0, 1, hi_open=True)}


class _DropoutNd(Module):
    """Shared constructor: ``p`` checked as PyTorch checks it; ``inplace`` accepted and ignored."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


@layer("dropout", args=_P, example=Example((4, 5), {"p": 0.3}, name="Dropout(0.3)"), onnx=_onnx.identity)
class Dropout(_DropoutNd):
    """In training mode, zero each element with probability ``p`` and scale the rest by ``1/(1-p)``;
    in eval mode, return the input unchanged.

    The mask is drawn from trainkit's global generator (``trainkit.manual_seed``).
    ``inplace`` is accepted for PyTorch compatibility and ignored.

    Raises:
        ValueError: if ``p`` is outside [0, 1].
    """

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    infer_shape = staticmethod(same_shape)


@layer("dropout1d", args=_P, example=Example((2, 3, 4), {"p": 0.3}, name="Dropout1d(0.3)"), onnx=_onnx.identity)
class Dropout1d(_DropoutNd):
    """Channel dropout for ``(N, C, L)`` (or ``(C, L)``) input: in training, each channel is zeroed
    with probability ``p`` as a whole, the others scaled by ``1/(1-p)``. Arguments as :class:`Dropout`."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(channels, length)`` per sample."""
        need_rank("dropout1d", x, (2,), "(channels, length)")
        return same_shape(args, x)


@layer("dropout2d", args=_P, example=Example((2, 3, 2, 2), {"p": 0.3}, name="Dropout2d(0.3)"), onnx=_onnx.identity)
class Dropout2d(_DropoutNd):
    """Channel dropout for ``(N, C, H, W)`` input: in training, each feature map is zeroed with
    probability ``p`` as a whole, the others scaled by ``1/(1-p)``. Arguments as :class:`Dropout`.

    Other ranks behave as PyTorch's (with its warnings): ``(N, C, L)`` drops channels, ``(N, C)``
    drops single elements.
    """

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(channels, height, width)`` per sample."""
        need_rank("dropout2d", x, (3,), "(channels, height, width)")
        return same_shape(args, x)


@layer("dropout3d", args=_P, example=Example((2, 2, 2, 2, 2), {"p": 0.3}, name="Dropout3d(0.3)"), onnx=_onnx.identity)
class Dropout3d(_DropoutNd):
    """Channel dropout for ``(N, C, D, H, W)`` (or ``(C, D, H, W)``) input. Arguments as :class:`Dropout`."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training)

    @staticmethod
    def infer_shape(args, x):
        """Shape kept; ``(channels, depth, height, width)`` per sample."""
        need_rank("dropout3d", x, (4,), "(channels, depth, height, width)")
        return same_shape(args, x)
