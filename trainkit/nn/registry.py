"""The layer and loss names a YAML config may use, and what the graph builder needs to know about each.

``LAYERS`` maps a snake_case YAML name to its class and ``LOSSES`` does the same
for losses; they are the single source for the config builder, the gradient
checker and "did you mean" messages. ``LAYER_SPECS`` adds, per layer, which
constructor argument the builder fills from shape inference (``linear``'s
``in_features`` from the last input dimension, ``conv2d``'s ``in_channels``
and batch norm's ``num_features`` from dimension 1), so a YAML file only
states output sizes.

``global_avgpool`` is :class:`~trainkit.nn.pooling.GlobalAvgPool2d`: the mean
over H and W giving ``(N, C)`` directly (what ``AdaptiveAvgPool2d(1)`` followed
by ``Flatten()`` gives), so a conv stack can feed a ``linear`` layer without a
separate ``flatten``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from trainkit.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import Dropout
from trainkit.nn.flatten import Flatten
from trainkit.nn.linear import Identity, Linear
from trainkit.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["LayerSpec", "LAYER_SPECS", "LAYERS", "LOSSES", "did_you_mean"]


@dataclass(frozen=True)
class LayerSpec:
    """What the graph builder needs to know about one YAML layer type.

    Attributes:
        cls: the Module class.
        input_arg: constructor argument filled from the inferred input shape, or None.
        input_dim: which dimension of the batched input shape gives ``input_arg``
            (-1 = features last, 1 = channels).
        input_ranks: accepted ranks of the batched input (None = any).
    """

    cls: type
    input_arg: str | None = None
    input_dim: int | None = None
    input_ranks: tuple[int, ...] | None = None


LAYER_SPECS: dict[str, LayerSpec] = {
    "linear": LayerSpec(Linear, "in_features", -1, None),
    "conv2d": LayerSpec(Conv2d, "in_channels", 1, (4,)),
    "maxpool2d": LayerSpec(MaxPool2d, input_ranks=(4,)),
    "avgpool2d": LayerSpec(AvgPool2d, input_ranks=(4,)),
    "adaptive_avgpool2d": LayerSpec(AdaptiveAvgPool2d, input_ranks=(4,)),
    "global_avgpool": LayerSpec(GlobalAvgPool2d, input_ranks=(4,)),
    "batchnorm1d": LayerSpec(BatchNorm1d, "num_features", 1, (2, 3)),
    "batchnorm2d": LayerSpec(BatchNorm2d, "num_features", 1, (4,)),
    "dropout": LayerSpec(Dropout),
    "flatten": LayerSpec(Flatten),
    "identity": LayerSpec(Identity),
    "relu": LayerSpec(ReLU),
    "leaky_relu": LayerSpec(LeakyReLU),
    "gelu": LayerSpec(GELU),
    "sigmoid": LayerSpec(Sigmoid),
    "tanh": LayerSpec(Tanh),
    "softmax": LayerSpec(Softmax),
    "log_softmax": LayerSpec(LogSoftmax),
}

#: YAML layer name -> Module class.
LAYERS: dict[str, type] = {name: spec.cls for name, spec in LAYER_SPECS.items()}

#: YAML loss name -> loss Module class.
LOSSES: dict[str, type] = {
    "cross_entropy": CrossEntropyLoss,
    "nll": NLLLoss,
    "mse": MSELoss,
    "l1": L1Loss,
    "bce_with_logits": BCEWithLogitsLoss,
}


def did_you_mean(name: str, choices) -> str | None:
    """The closest known name to a misspelt ``name`` (for error messages), or None."""
    matches = difflib.get_close_matches(str(name).lower(), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None
