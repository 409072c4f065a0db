"""Gradient-check cases for every layer and loss (the nn half of ``trainkit gradcheck``).

One case per layer/loss configuration, named after the class
(``Linear``, ``Conv2d(stride=2,padding=1)``, ...) so they do not clash with the
op cases (``linear``, ``conv2d``). Each layer case checks the gradient with
respect to the input *and* every parameter: ``fn(x, *params)`` swaps the given
tensors in for the module's parameters for one call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trainkit.autograd import random as tk_random
from trainkit.autograd.tensor import Tensor
from trainkit.nn.activation import (
    ELU, GELU, SELU, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, Mish, PReLU, ReLU, Sigmoid, SiLU, Softmax, Softplus,
    Tanh,
)
from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import Dropout
from trainkit.nn.flatten import Flatten
from trainkit.nn.linear import Identity, Linear
from trainkit.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss,
    MSELoss, NLLLoss, SmoothL1Loss, TripletMarginLoss,
)
from trainkit.nn.module import Module
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["NNCase", "nn_cases", "call_with_params"]


@dataclass(frozen=True)
class NNCase:
    """One layer/loss gradient check: ``fn(*make_inputs(rng))`` in float64."""

    name: str
    kind: str  # "layer" or "loss"
    module: Module
    fn: Callable
    make_inputs: Callable[[np.random.Generator], tuple]


def call_with_params(module: Module, names: tuple[str, ...], x, params):
    """Run ``module(x)`` with the parameters ``names`` temporarily replaced by the tensors ``params``."""
    owners = []
    for n in names:
        mod_path, _, leaf = n.rpartition(".")
        owner = module.get_submodule(mod_path)
        owners.append((owner, leaf, owner._parameters[leaf]))
    try:
        for (owner, leaf, _), p in zip(owners, params):
            owner._parameters[leaf] = p
        return module(x)
    finally:
        for owner, leaf, original in owners:
            owner._parameters[leaf] = original


def _grad_tensor(array: np.ndarray) -> Tensor:
    return Tensor(np.ascontiguousarray(array, dtype=np.float64), requires_grad=True)


def _layer(name: str, module: Module, shape: tuple[int, ...], train: bool = True) -> NNCase:
    module.double().train(train)
    names = tuple(n for n, _ in module.named_parameters())
    shapes = [module.get_parameter(n).shape for n in names]
    call = module
    if isinstance(module, Dropout):
        # Finite differences call the layer many times: replay one generator state so the mask is fixed.
        state = tk_random.get_rng_state()

        def call(x, _m=module, _state=state):
            tk_random.set_rng_state(_state)
            return _m(x)

    def fn(x, *params):
        return call_with_params(module, names, x, params) if names else call(x)

    def make_inputs(rng: np.random.Generator) -> tuple:
        x = _grad_tensor(rng.standard_normal(shape))
        return (x,) + tuple(_grad_tensor(rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s)) for s in shapes)

    return NNCase(name, "layer", module, fn, make_inputs)


def _loss(name: str, module: Module, shape: tuple[int, ...], target: Callable) -> NNCase:
    module.double()

    def make_inputs(rng: np.random.Generator) -> tuple:
        return _grad_tensor(rng.standard_normal(shape)), Tensor(target(rng))

    return NNCase(name, "loss", module, lambda x, y: module(x, y), make_inputs)


def _loss_of(name: str, module: Module, make_inputs: Callable[[np.random.Generator], tuple]) -> NNCase:
    """A loss case whose inputs are all built by ``make_inputs`` (more than two arguments, or special ranges)."""
    module.double()
    return NNCase(name, "loss", module, lambda *xs: module(*xs), make_inputs)


def nn_cases() -> list[NNCase]:
    """Fresh cases covering every layer and loss of ``trainkit.nn.registry`` (and a few variants).

    Building the layers draws their initial weights from the global generator;
    its state is restored afterwards so that listing the cases never changes
    what a seeded program draws next.
    """
    state = tk_random.get_rng_state()
    try:
        return _build(n=4, c=3)
    finally:
        tk_random.set_rng_state(state)


def _build(n: int, c: int) -> list[NNCase]:

    def classes(rng):
        return rng.integers(0, c, size=n).astype(np.int64)

    def reals(rng):
        return rng.standard_normal((n, c))

    def unit(rng):
        return rng.uniform(size=(n, c))

    return [
        _layer("Linear", Linear(4, 3), (2, 4)),
        _layer("Linear(bias=False,3d)", Linear(4, 3, bias=False), (2, 2, 4)),
        _layer("Conv2d", Conv2d(2, 3, 3), (2, 2, 5, 5)),
        _layer("Conv2d(stride=2,padding=1)", Conv2d(2, 3, (3, 2), stride=2, padding=1), (2, 2, 5, 6)),
        _layer("MaxPool2d(2)", MaxPool2d(2), (2, 2, 4, 4)),
        _layer("MaxPool2d(3,2,1)", MaxPool2d(3, 2, 1), (1, 2, 5, 5)),
        _layer("AvgPool2d(3,2,1)", AvgPool2d(3, 2, 1), (1, 2, 5, 5)),
        _layer("AdaptiveAvgPool2d((2,3))", AdaptiveAvgPool2d((2, 3)), (2, 2, 5, 7)),
        _layer("GlobalAvgPool2d", GlobalAvgPool2d(), (2, 3, 4, 4)),
        _layer("BatchNorm1d(train)", BatchNorm1d(3), (4, 3)),
        _layer("BatchNorm1d(eval)", BatchNorm1d(3), (4, 3), train=False),
        _layer("BatchNorm2d(train)", BatchNorm2d(2), (3, 2, 3, 3)),
        _layer("BatchNorm2d(affine=False)", BatchNorm2d(2, affine=False), (3, 2, 3, 3)),
        _layer("Dropout(0.3)", Dropout(0.3), (4, 5)),
        _layer("Flatten", Flatten(), (2, 3, 2, 2)),
        _layer("Identity", Identity(), (2, 3)),
        _layer("ReLU", ReLU(), (3, 4)),
        _layer("LeakyReLU(0.2)", LeakyReLU(0.2), (3, 4)),
        _layer("GELU", GELU(), (3, 4)),
        _layer("Sigmoid", Sigmoid(), (3, 4)),
        _layer("Tanh", Tanh(), (3, 4)),
        _layer("Softmax(dim=1)", Softmax(dim=1), (3, 4)),
        _layer("LogSoftmax(dim=1)", LogSoftmax(dim=1), (3, 4)),
        _loss("CrossEntropyLoss(label_smoothing=0.1)", CrossEntropyLoss(label_smoothing=0.1), (n, c), classes),
        _loss("CrossEntropyLoss(weight)", CrossEntropyLoss(weight=[1.0, 2.0, 0.5]), (n, c), classes),
        _loss("NLLLoss", NLLLoss(), (n, c), classes),
        _loss("MSELoss", MSELoss(), (n, c), reals),
        _loss("L1Loss", L1Loss(), (n, c), reals),
        _loss("BCEWithLogitsLoss", BCEWithLogitsLoss(), (n, c), unit),
        _loss("BCEWithLogitsLoss(pos_weight)", BCEWithLogitsLoss(pos_weight=[1.0, 3.0, 0.5]), (n, c), unit),
        *_issue13_cases(n, c, reals),
    ]


def _issue13_cases(n: int, c: int, reals: Callable) -> list[NNCase]:
    """Activations and losses added with PyTorch's wider API (issue 13)."""

    def probs(rng):
        return _grad_tensor(rng.uniform(0.1, 0.9, (n, c))), Tensor(rng.uniform(0.0, 1.0, (n, c)))

    def log_probs(rng):
        return _grad_tensor(rng.standard_normal((n, c))), Tensor(rng.uniform(0.1, 1.0, (n, c)))

    # As in every loss case, the first input is the one checked; the op cases ("margin_losses") check
    # the gradients of the other inputs of these functions too.
    def pair_and_sign(rng):
        return (_grad_tensor(rng.standard_normal((n, c))), Tensor(rng.standard_normal((n, c))),
                Tensor(rng.choice([-1.0, 1.0], n)))

    def scores_and_sign(rng):
        return (_grad_tensor(rng.standard_normal(n)), Tensor(rng.standard_normal(n)), Tensor(rng.choice([-1.0, 1.0], n)))

    def triplet(rng):
        return (_grad_tensor(rng.standard_normal((n, c))), Tensor(rng.standard_normal((n, c))),
                Tensor(rng.standard_normal((n, c))))

    return [
        _layer("SiLU", SiLU(), (3, 4)),
        _layer("ELU(alpha=0.5)", ELU(0.5), (3, 4)),
        _layer("SELU", SELU(), (3, 4)),
        _layer("PReLU(num_parameters=2)", PReLU(2), (3, 2, 2)),
        _layer("Softplus(beta=2,threshold=1)", Softplus(2.0, 1.0), (3, 4)),
        _layer("Mish", Mish(), (3, 4)),
        _layer("Hardswish", Hardswish(), (3, 4)),
        _layer("Hardtanh(-0.5,0.5)", Hardtanh(-0.5, 0.5), (3, 4)),
        _loss("SmoothL1Loss(beta=0.5)", SmoothL1Loss(beta=0.5), (n, c), reals),
        _loss("HuberLoss(delta=0.5)", HuberLoss(delta=0.5), (n, c), reals),
        _loss_of("BCELoss(weight)", BCELoss(weight=[1.0, 2.0, 0.5]), probs),
        _loss_of("KLDivLoss(batchmean)", KLDivLoss(reduction="batchmean"), log_probs),
        _loss_of("CosineEmbeddingLoss(margin=0.2)", CosineEmbeddingLoss(margin=0.2), pair_and_sign),
        _loss_of("MarginRankingLoss(margin=0.1)", MarginRankingLoss(margin=0.1), scores_and_sign),
        _loss_of("TripletMarginLoss(swap)", TripletMarginLoss(margin=1.5, swap=True), triplet),
    ]
