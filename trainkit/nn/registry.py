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
from typing import Callable

import numpy as np

from trainkit.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import Dropout
from trainkit.nn.flatten import Flatten
from trainkit.nn.linear import Identity, Linear
from trainkit.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from trainkit.nn.module import Module
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["LayerSpec", "LAYER_SPECS", "LAYERS", "LOSSES", "did_you_mean", "gradcheck_cases"]


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


# ----------------------------------------------------------------------------- gradcheck
def _t(rng: np.random.Generator, *shape: int):
    from trainkit.autograd.tensor import Tensor

    return Tensor(rng.standard_normal(shape), requires_grad=True)


def _fixed_rng(module: Module) -> Callable:
    """Wrap a random layer so every call draws the same mask (finite differences need that)."""
    from trainkit.autograd import random as tk_random

    state = tk_random.get_rng_state()

    def fn(*inputs):
        tk_random.set_rng_state(state)
        return module(*inputs)

    return fn


def gradcheck_cases() -> list[tuple[str, Callable, list]]:
    """``(label, fn, inputs)`` triples covering every layer and loss in float64.

    For a layer, ``inputs[0]`` is the batch and the rest are float64 copies of
    the layer's parameters (in ``named_parameters()`` order), which ``fn`` swaps
    in for the call, so gradients with respect to the weights are checked too.
    For a loss, ``inputs`` is the prediction and the target is fixed. Dropout
    replays the same generator state on every call so its mask is fixed.
    Used by ``trainkit gradcheck`` and the nn tests.
    """
    return _build_cases(np.random.default_rng(0))


def _call_with_params(module: Module, names, x, params):
    """Run ``module(x)`` with its parameters temporarily replaced by the tensors ``params``."""
    originals = {n: module.get_parameter(n) for n in names}
    owners = {}
    for n in names:
        mod_path, _, leaf = n.rpartition(".")
        owners[n] = (module.get_submodule(mod_path), leaf)
    try:
        for n, p in zip(names, params):
            owner, leaf = owners[n]
            owner._parameters[leaf] = p
        return module(x)
    finally:
        for n in names:
            owner, leaf = owners[n]
            owner._parameters[leaf] = originals[n]


def _build_cases(rng: np.random.Generator) -> list[tuple[str, Callable, list]]:
    from trainkit.autograd.tensor import Tensor

    cases: list[tuple[str, Callable, list]] = []

    def add(label: str, module: Module, shape: tuple[int, ...], train: bool = True) -> None:
        module.double().train(train)
        names = tuple(n for n, _ in module.named_parameters())
        params = [Tensor(module.get_parameter(n)._array.copy(), requires_grad=True) for n in names]
        x = _t(rng, *shape)
        call = _fixed_rng(module) if isinstance(module, Dropout) else module

        def fn(x, *ps):
            if not names:
                return call(x)
            return _call_with_params(module, names, x, ps)

        cases.append((label, fn, [x] + params))

    add("linear", Linear(4, 3), (2, 4))
    add("conv2d", Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 5))
    add("maxpool2d", MaxPool2d(2), (2, 2, 4, 4))
    add("maxpool2d(3,2,1)", MaxPool2d(3, 2, 1), (1, 2, 5, 5))
    add("avgpool2d", AvgPool2d(3, 2, 1), (1, 2, 5, 5))
    add("adaptive_avgpool2d", AdaptiveAvgPool2d((2, 3)), (2, 2, 5, 7))
    add("global_avgpool", GlobalAvgPool2d(), (2, 3, 4, 4))
    add("batchnorm1d", BatchNorm1d(3), (4, 3))
    add("batchnorm1d(eval)", BatchNorm1d(3), (4, 3), train=False)
    add("batchnorm2d", BatchNorm2d(2), (3, 2, 3, 3))
    add("dropout", Dropout(0.3), (4, 5))
    add("flatten", Flatten(), (2, 3, 2, 2))
    add("identity", Identity(), (2, 3))
    add("relu", ReLU(), (3, 4))
    add("leaky_relu", LeakyReLU(0.2), (3, 4))
    add("gelu", GELU(), (3, 4))
    add("sigmoid", Sigmoid(), (3, 4))
    add("tanh", Tanh(), (3, 4))
    add("softmax", Softmax(dim=1), (3, 4))
    add("log_softmax", LogSoftmax(dim=1), (3, 4))

    def add_loss(label: str, module: Module, x_shape: tuple[int, ...], target) -> None:
        module.double()
        x = _t(rng, *x_shape)
        cases.append((label, lambda x: module(x, target), [x]))

    n, c = 4, 3
    classes = Tensor(rng.integers(0, c, size=n).astype(np.int64))
    add_loss("cross_entropy", CrossEntropyLoss(label_smoothing=0.1), (n, c), classes)
    add_loss("cross_entropy(weight)", CrossEntropyLoss(weight=[1.0, 2.0, 0.5]), (n, c), classes)
    add_loss("nll", NLLLoss(), (n, c), classes)
    add_loss("mse", MSELoss(), (n, c), Tensor(rng.standard_normal((n, c))))
    add_loss("l1", L1Loss(), (n, c), Tensor(rng.standard_normal((n, c))))
    add_loss("bce_with_logits", BCEWithLogitsLoss(), (n, c), Tensor(rng.uniform(size=(n, c))))
    return cases
