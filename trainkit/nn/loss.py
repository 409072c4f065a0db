"""Loss modules: ``MSELoss``, ``L1Loss``, ``CrossEntropyLoss``, ``NLLLoss``, ``BCEWithLogitsLoss``,
``SmoothL1Loss``, ``HuberLoss``, ``BCELoss``, ``KLDivLoss`` (all YAML losses) and the pair/triplet losses
``CosineEmbeddingLoss``, ``MarginRankingLoss``, ``TripletMarginLoss`` (Python only: the trainer calls
``loss(output, target)``).

Each wraps the function of the same name in ``trainkit.nn.functional``.
``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``; with class
``weight``\\ s, 'mean' divides by the summed weight of the targets, as PyTorch does.
Arguments after ``weight`` are keyword-only (PyTorch's deprecated positional
``size_average``/``reduce`` do not exist here, and must not be silently taken
for something else).
"""
from __future__ import annotations

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn._helpers import check_reduction
from trainkit.nn.module import Module
from trainkit.registry import Float, Str, loss

#: YAML losses reduce to one number per batch: 'none' is for Python code.
_REDUCTION = {"reduction": Str(("mean", "sum"), "reduction")}
_DOCS = {"reduction": "how the losses of a batch are combined: mean or sum"}

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss", "SmoothL1Loss", "HuberLoss",
           "BCELoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss"]


def _as_tensor(value) -> Tensor | None:
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value, dtype=np.float32))


def _cast(weight: Tensor | None, like: Tensor) -> Tensor | None:
    # A float32 weight buffer must not upcast a float64 gradcheck input (or the reverse).
    if weight is None or weight.dtype == like.dtype:
        return weight
    return Tensor(weight._array.astype(like.dtype))


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)


class _WeightedLoss(_Loss):
    # The weight is a persistent buffer, so it appears in state_dict() as in PyTorch.
    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _as_tensor(weight))


@loss("cross_entropy", target="classes", exclude=("weight", "ignore_index"),
      args={**_REDUCTION, "label_smoothing": Float(0, 1, hi_open=True)}, docs=_DOCS)
class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy between logits and class indices (or class probabilities); log-softmax is built in.

    Args:
        weight: optional per-class weights ``(C,)``.
        ignore_index: targets equal to it contribute nothing (and are not counted in 'mean').
        reduction: 'mean' | 'sum' | 'none'.
        label_smoothing: in [0, 1]; mixes the target with the uniform distribution.

    Shape:
        input ``(N, C)`` or ``(N, C, d1, ...)`` logits; target ``(N,)`` / ``(N, d1, ...)``
        int64 class indices in [0, C), or float probabilities shaped like input.
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=_cast(self.weight, input), ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


@loss("nll", target="classes", exclude=("weight", "ignore_index"), args=_REDUCTION, docs=_DOCS)
class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices given log-probabilities (e.g. from ``LogSoftmax(dim=1)``).

    Args: as :class:`CrossEntropyLoss`, without label smoothing.

    Shape: input ``(N, C)``; target ``(N,)`` int64 in [0, C).
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=_cast(self.weight, input), ignore_index=self.ignore_index,
                          reduction=self.reduction)


@loss("mse", args=_REDUCTION, docs=_DOCS)
class MSELoss(_Loss):
    """Mean squared error ``(input - target)**2``, reduced.

    Shape: input and target of the same (any) shape; scalar output unless reduction='none'.
    """

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


@loss("l1", args=_REDUCTION, docs=_DOCS)
class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``, reduced."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


@loss("bce_with_logits", target="probabilities", exclude=("weight", "pos_weight"), args=_REDUCTION, docs=_DOCS)
class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits (sigmoid fused in, numerically stable).

    Args:
        weight: optional rescaling weight broadcast against each element's loss.
        reduction: 'mean' | 'sum' | 'none'.
        pos_weight: optional weight of positive examples, broadcast along the last dimension.

    Shape: input and target of the same shape; target values in [0, 1].
    """

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", _as_tensor(weight))
        self.register_buffer("pos_weight", _as_tensor(pos_weight))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=_cast(self.weight, input),
                                                  reduction=self.reduction,
                                                  pos_weight=_cast(self.pos_weight, input))


@loss("smooth_l1", args=_REDUCTION, docs=_DOCS)
class SmoothL1Loss(_Loss):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``, with ``d = input - target``; reduced.

    Args:
        reduction: 'mean' | 'sum' | 'none'.
        beta: where the loss turns from quadratic to linear (0 gives L1).

    Shape: input and target of the same (any) shape; scalar output unless reduction='none'.
    """

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


@loss("huber", args=_REDUCTION, docs=_DOCS)
class HuberLoss(_Loss):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``; reduced.

    Args:
        reduction: 'mean' | 'sum' | 'none' (positional, as in PyTorch, which has no legacy arguments here).
        delta: where the loss turns from quadratic to linear; positive.

    Shape: input and target of the same (any) shape.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


@loss("bce", target="probabilities", exclude=("weight",), args=_REDUCTION, docs=_DOCS,
      example=lambda rng, n, c: (rng.uniform(0.1, 0.9, (n, c)), rng.uniform(size=(n, c))))
class BCELoss(_WeightedLoss):
    """Binary cross entropy between probabilities (e.g. after ``Sigmoid``) and targets in [0, 1].

    Prefer :class:`BCEWithLogitsLoss` on logits: it is numerically stable. Logs
    are clamped at -100, as in PyTorch, so a probability of exactly 0 or 1 gives a finite loss.

    Args:
        weight: optional rescaling weight broadcast against each element's loss.
        reduction: 'mean' | 'sum' | 'none'.

    Shape: input and target of the same shape; input values in [0, 1].
    """

    def __init__(self, weight=None, *, reduction: str = "mean"):
        super().__init__(weight, reduction)

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=_cast(self.weight, input), reduction=self.reduction)


@loss("kl_div", target="probabilities", args={"reduction": Str(("mean", "batchmean", "sum"), "reduction")},
      defaults={"reduction": "batchmean"},
      docs={"reduction": "batchmean (trainkit's default): the KL divergence per sample; mean: per element "
                                "(PyTorch's default, which warns); sum"},
      example=lambda rng, n, c: (np.log(rng.dirichlet(np.ones(c), n)), rng.dirichlet(np.ones(c), n)))
class KLDivLoss(_Loss):
    """Kullback-Leibler divergence ``target * (log target - input)``; ``input`` holds log-probabilities.

    Args:
        reduction: 'mean' (per element, PyTorch's default, with its warning) | 'batchmean'
            (the true KL divergence per sample) | 'sum' | 'none'.
        log_target: whether ``target`` is given as log-probabilities too.

    Shape: input and target of the same shape, e.g. ``(N, C)``.
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False):
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        Module.__init__(self)
        self.reduction = reduction
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineEmbeddingLoss(_Loss):
    """``1 - cos(x1, x2)`` for target 1, ``max(0, cos(x1, x2) - margin)`` for target -1.

    Args:
        margin: in [-1, 1]; 0 to 0.5 is typical.
        reduction: 'mean' | 'sum' | 'none'.

    Shape: inputs ``(N, D)`` or ``(D,)``; target ``(N,)`` or ``()`` of 1 and -1.
    """

    def __init__(self, margin: float = 0.0, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """``max(0, -target * (x1 - x2) + margin)``: x1 should rank higher than x2 where target is 1.

    Args:
        margin: default 0.
        reduction: 'mean' | 'sum' | 'none'.

    Shape: x1, x2 and target of the same shape ``(N,)`` (or scalars).
    """

    def __init__(self, margin: float = 0.0, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with the p-norm pairwise distance d.

    Args:
        margin: default 1.0.
        p: the norm degree, default 2.
        eps: added inside the distance, for stability at 0.
        swap: use ``min(d(a, n), d(p, n))`` as the negative distance (the distance swap).
        reduction: 'mean' | 'sum' | 'none'.

    Shape: anchor, positive and negative ``(N, D)`` or ``(D,)``.
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False, *,
                 reduction: str = "mean"):
        super().__init__(reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)
