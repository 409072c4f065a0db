"""Gradient-check cases for every layer and loss (the nn half of ``trainkit gradcheck``).

Every declared layer and loss gets a case from its declaration (the layer's
``example``, a loss's ``target`` kind), so a newly declared component is checked
without being listed here; :func:`variants` adds a few more configurations by
hand. Cases are named after the class (``Linear``, ``Conv2d(stride=2,padding=1)``,
...) so they do not clash with the op cases (``linear``, ``conv2d``). Each layer
case checks the gradient with respect to the inputs *and* every parameter:
``fn(*inputs, *params)`` swaps the given tensors in for the module's parameters
for one call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import trainkit.nn  # noqa: F401  (declares the built-in layers and losses)
from trainkit.autograd import random as tk_random
from trainkit.autograd.tensor import Tensor
from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import _DropoutNd
from trainkit.nn.linear import Linear
from trainkit.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, MarginRankingLoss,
    SmoothL1Loss, TripletMarginLoss,
)
from trainkit.nn.module import Module
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.pooling import MaxPool2d
from trainkit.registry import LAYERS, LOSSES, Example, LayerDeclaration

__all__ = ["NNCase", "nn_cases", "call_with_params", "example_module", "example_inputs", "example_arrays",
           "declared_cases",
           "variants", "merge_cases"]


@dataclass(frozen=True)
class NNCase:
    """One layer/loss gradient check: ``fn(*make_inputs(rng))`` in float64."""

    name: str
    kind: str  # "layer" or "loss"
    module: Module
    fn: Callable
    make_inputs: Callable[[np.random.Generator], tuple]
    fast: bool = False  # gradients checked along random directions (composite layers with many parameters)


def call_with_params(module: Module, names: tuple[str, ...], x, params):
    """Run ``module(x)`` (``module(*x)`` for a tuple) with the parameters ``names`` replaced by ``params``."""
    owners = []
    for n in names:
        mod_path, _, leaf = n.rpartition(".")
        owner = module.get_submodule(mod_path)
        owners.append((owner, leaf, owner._parameters[leaf]))
    try:
        for (owner, leaf, _), p in zip(owners, params):
            owner._parameters[leaf] = p
        return module(*x) if isinstance(x, tuple) else module(x)
    finally:
        for owner, leaf, original in owners:
            owner._parameters[leaf] = original


def _grad_tensor(array: np.ndarray) -> Tensor:
    return Tensor(np.ascontiguousarray(array, dtype=np.float64), requires_grad=True)


def _layer(name: str, module: Module, shape, train: bool = True, fast: bool = False) -> NNCase:
    """A case of ``module`` on standard normal input(s) of ``shape`` (a tuple of shapes for several).

    ``shape`` may also be ``f(rng) -> list of arrays`` for inputs that are not standard normal
    floats (token ids): float arrays are checked, integer ones are passed as they are.
    """
    module.double().train(train)
    names = tuple(n for n, _ in module.named_parameters() if module.get_parameter(n).requires_grad)
    shapes = [module.get_parameter(n).shape for n in names]
    maker = shape if callable(shape) else None
    if maker is not None:
        shape = [a.shape for a in maker(np.random.default_rng(0))]
        shape = shape if len(shape) > 1 else shape[0]
    many = isinstance(shape[0], (tuple, list))
    in_shapes = [tuple(s) for s in shape] if many else [tuple(shape)]
    call = module
    if isinstance(module, _DropoutNd):
        # Finite differences call the layer many times: replay one generator state so the mask is fixed.
        state = tk_random.get_rng_state()

        def call(x, _m=module, _state=state):
            tk_random.set_rng_state(_state)
            return _m(x)

    def fn(*tensors):
        xs, params = tensors[:len(in_shapes)], tensors[len(in_shapes):]
        x = xs if many else xs[0]
        if names:
            return call_with_params(module, names, x, params)
        return call(*xs)

    def make_inputs(rng: np.random.Generator) -> tuple:
        if maker is not None:
            xs = tuple(_grad_tensor(a) if a.dtype.kind == "f" else Tensor(a) for a in maker(rng))
        else:
            xs = tuple(_grad_tensor(rng.standard_normal(s)) for s in in_shapes)
        return xs + tuple(_grad_tensor(rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s)) for s in shapes)

    return NNCase(name, "layer", module, fn, make_inputs, fast)


def _loss(name: str, module: Module, shape: tuple[int, ...], target: Callable) -> NNCase:
    module.double()

    def make_inputs(rng: np.random.Generator) -> tuple:
        return _grad_tensor(rng.standard_normal(shape)), Tensor(target(rng))

    return NNCase(name, "loss", module, lambda x, y: module(x, y), make_inputs)


def example_inputs(example: Example) -> list[tuple]:
    """The batched input shapes of a layer example (one per input)."""
    shape = example.input
    if callable(shape):
        return [tuple(a.shape) for a in shape(np.random.default_rng(0))]
    return [tuple(s) for s in shape] if isinstance(shape[0], (tuple, list)) else [tuple(shape)]


def example_arrays(example: Example, rng: np.random.Generator, dtype=np.float32) -> list[np.ndarray]:
    """Input arrays for a layer example: its own ``f(rng)``, else standard normal ``dtype`` arrays."""
    if callable(example.input):
        return [a.astype(dtype) if a.dtype.kind == "f" else a for a in example.input(rng)]
    return [rng.standard_normal(s).astype(dtype) for s in example_inputs(example)]


def example_module(decl: LayerDeclaration, example: Example | None = None) -> Module:
    """The module a layer example builds: its arguments plus the input size filled from the input."""
    example = example or decl.example
    kwargs = {**decl.overrides, **example.args}
    if decl.input_arg is not None and decl.input_arg not in kwargs:
        kwargs[decl.input_arg] = decl.input_value(example_inputs(example)[0][1:])
    return decl.cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


def _target(kind: str, n: int, c: int) -> Callable:
    if kind == "classes":
        return lambda rng: rng.integers(0, c, size=n).astype(np.int64)
    if kind == "probabilities":
        return lambda rng: rng.uniform(size=(n, c))
    return lambda rng: rng.standard_normal((n, c))


def declared_cases(n: int = 4, c: int = 3, merges: bool = False) -> list[NNCase]:
    """One case per declared layer (from its example) and per declared loss (default arguments).

    With ``merges`` only the merge layers' cases (several inputs), without them
    the others (one input, as :func:`nn_cases` promises).
    """
    out = []
    for decl in LAYERS.values():
        if decl.example is None or decl.merges != merges:  # a custom layer registered without an example
            continue
        example = decl.example
        shapes = example_inputs(example)
        spec = example.input if callable(example.input) else (shapes if len(shapes) > 1 else shapes[0])
        out.append(_layer(example.name or decl.cls.__name__, example_module(decl), spec, train=example.train,
                          fast=example.fast))
    if merges:
        return out
    for decl in LOSSES.values():
        if decl.example is not None:  # inputs that must lie in a range: example(rng, n, c) -> (input, target)
            out.append(_loss_of(decl.cls.__name__, _with_yaml_defaults(decl),
                                lambda rng, f=decl.example: (lambda x, y: (_grad_tensor(x), Tensor(y)))(*f(rng, n, c))))
        else:
            out.append(_loss(decl.cls.__name__, _with_yaml_defaults(decl), (n, c), _target(decl.target, n, c)))
    return out


def _with_yaml_defaults(decl) -> Module:
    """A loss built with the defaults YAML gives it (trainkit's where they differ from PyTorch's)."""
    from trainkit.registry import REQUIRED

    return decl.cls(**{k: a.default for k, a in decl.arguments.items() if a.default is not REQUIRED})


def merge_cases() -> list[NNCase]:
    """Fresh cases of the declared merge layers (two or more inputs, each checked)."""
    return declared_cases(merges=True)


def _loss_of(name: str, module: Module, make_inputs: Callable[[np.random.Generator], tuple]) -> NNCase:
    """A loss case whose inputs are all built by ``make_inputs`` (more than two arguments, or special ranges)."""
    module.double()
    return NNCase(name, "loss", module, lambda *xs: module(*xs), make_inputs)


def nn_cases() -> list[NNCase]:
    """Fresh cases covering every declared one-input layer and loss, plus the hand-picked :func:`variants`.

    Building the layers draws their initial weights from the global generator;
    its state is restored afterwards so that listing the cases never changes
    what a seeded program draws next.
    """
    state = tk_random.get_rng_state()
    try:
        return declared_cases() + variants()
    finally:
        tk_random.set_rng_state(state)


def variants(n: int = 4, c: int = 3) -> list[NNCase]:
    """Configurations beyond each declaration's example: other arguments, modes and input ranks."""
    return [
        _layer("Linear(bias=False,3d)", Linear(4, 3, bias=False), (2, 2, 4)),
        _layer("Conv2d(stride=2,padding=1)", Conv2d(2, 3, (3, 2), stride=2, padding=1), (2, 2, 5, 6)),
        _layer("MaxPool2d(3,2,1)", MaxPool2d(3, 2, 1), (1, 2, 5, 5)),
        _layer("BatchNorm1d(eval)", BatchNorm1d(3), (4, 3), train=False),
        _layer("BatchNorm2d(affine=False)", BatchNorm2d(2, affine=False), (3, 2, 3, 3)),
        _loss("CrossEntropyLoss(label_smoothing=0.1)", CrossEntropyLoss(label_smoothing=0.1), (n, c),
              _target("classes", n, c)),
        _loss("CrossEntropyLoss(weight)", CrossEntropyLoss(weight=[1.0, 2.0, 0.5]), (n, c), _target("classes", n, c)),
        _loss("BCEWithLogitsLoss(pos_weight)", BCEWithLogitsLoss(pos_weight=[1.0, 3.0, 0.5]), (n, c),
              _target("probabilities", n, c)),
        *_issue13_cases(n, c),
        *_issue14_cases(),
    ]


def _issue14_cases() -> list[NNCase]:
    """Variants of the sequence, attention and convolution layers (issue 14) beyond their declared examples;
    tiny sizes, since every element of every parameter is perturbed (``trainkit gradcheck`` stays within seconds)."""
    from trainkit.nn.conv import Conv2d as Conv
    from trainkit.nn.conv_transpose import ConvTranspose2d
    from trainkit.nn.rnn import GRU, RNN
    from trainkit.nn.rnn_cell import GRUCell, LSTMCell, RNNCell
    from trainkit.nn.transformer_model import Transformer
    from trainkit.nn.upsampling import Upsample

    return [
        _layer("Conv2d(groups=2,dilation=2,reflect)", Conv(2, 2, 2, padding=1, dilation=2, groups=2,
                                                         padding_mode="reflect"), (1, 2, 4, 4)),
        _layer("ConvTranspose2d(dilation=2,padding=1)", ConvTranspose2d(2, 1, 2, padding=1, dilation=2),
               (1, 2, 3, 3)),
        _layer("Upsample(nearest,size)", Upsample(size=(3, 5)), (1, 2, 2, 3)),
        # Python-only nn.Transformer (source and target), checked along random directions
        _layer("Transformer", Transformer(4, 2, 1, 1, 3, dropout=0.0, batch_first=True), ((2, 3, 4), (2, 2, 4)),
               fast=True),
        _layer("RNN(relu,2 layers)", RNN(2, 2, num_layers=2, nonlinearity="relu"), (3, 2, 2)),
        _layer("GRU(bidirectional,bias=False)", GRU(2, 2, bias=False, bidirectional=True, batch_first=True),
               (2, 3, 2)),
        _layer("RNNCell", RNNCell(3, 2), (2, 3)),
        _layer("LSTMCell", LSTMCell(2, 2), (2, 2)),
        _layer("GRUCell", GRUCell(2, 2), (2, 2)),
    ]


def _issue13_cases(n: int, c: int) -> list[NNCase]:
    """Loss variants added with PyTorch's wider API (issue 13); the new activations are declared with examples."""
    reals = _target("values", n, c)

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
        _loss("SmoothL1Loss(beta=0.5)", SmoothL1Loss(beta=0.5), (n, c), reals),
        _loss("HuberLoss(delta=0.5)", HuberLoss(delta=0.5), (n, c), reals),
        _loss_of("BCELoss(weight)", BCELoss(weight=[1.0, 2.0, 0.5]), probs),
        _loss_of("KLDivLoss(batchmean)", KLDivLoss(reduction="batchmean"), log_probs),
        _loss_of("CosineEmbeddingLoss(margin=0.2)", CosineEmbeddingLoss(margin=0.2), pair_and_sign),
        _loss_of("MarginRankingLoss(margin=0.1)", MarginRankingLoss(margin=0.1), scores_and_sign),
        _loss_of("TripletMarginLoss(swap)", TripletMarginLoss(margin=1.5, swap=True), triplet),
    ]
