"""``trainkit gradcheck CONFIG``: a gradient check of a whole configured model and its loss.

:func:`config_case` builds the config's model in float64 and returns a
:class:`~trainkit.testing.cases.CheckCase` whose function computes the
loss of a fixed batch of 2 random samples of the config's input shape.

Checking every weight by finite differences would take two forward passes
per weight (124,012 for LeNet), so each parameter tensor and the input batch
is checked along ``directions`` fixed random unit directions instead: the
case's inputs are small coefficient vectors ``z`` (all zero), and the
function evaluates the model at ``W0 + z @ D`` for each tensor. The gradient
with respect to ``z`` is ``D @ dL/dW``, so a wrong weight or input gradient
shows up in these directional derivatives (tensors with at most
``directions`` elements are checked element by element, ``D`` = identity).
Dropout masks are replayed from one generator state on every call.
"""
from __future__ import annotations


import numpy as np

__all__ = ["config_case", "input_shape_of", "loss_target"]


def loss_target(kind: str, out_shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A random target for a loss declared with target ``kind`` (classes, probabilities or values)."""
    if kind == "classes":
        return rng.integers(0, out_shape[1], size=(out_shape[0],) + tuple(out_shape[2:])).astype(np.int64)
    if kind == "probabilities":
        return rng.uniform(size=out_shape)
    return rng.standard_normal(out_shape)


def input_shape_of(config) -> tuple[int, ...]:
    """The config's per-sample input shape: from the data set's declaration, else by loading the data."""
    from trainkit.assemble import build_data, static_input_shape

    shape = static_input_shape(config)
    if shape is None:
        shape = build_data(config).input_shape
    return tuple(shape)


def _directions(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    if size <= k:
        return np.eye(size)
    d = rng.standard_normal((k, size))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def config_case(config_path, overrides=(), directions: int = 4, batch: int = 2):
    """The gradient-check case of the model and loss of the config at ``config_path``.

    Args:
        config_path: a YAML config file.
        overrides: ``--set`` strings.
        directions: random directions checked per parameter tensor and for the input.
        batch: samples in the fixed batch.

    Raises:
        ConfigError: the config is invalid (as for ``trainkit train``).
    """
    from trainkit.autograd import random as tk_random
    from trainkit.testing.cases import CheckCase
    from trainkit.autograd.tensor import Tensor
    from trainkit.assemble import build_loss, build_model_and_plan
    from trainkit.config.loader import load_config

    config = load_config(config_path, overrides)
    shape = input_shape_of(config)
    # The weights come from the config's seed, as in training, so a check does not depend on what ran
    # before it (a kink of relu or max pooling hit by chance makes finite differences disagree).
    state = tk_random.get_rng_state()
    tk_random.manual_seed(config.resolved.seed)
    try:
        model, plan = build_model_and_plan(config, shape)
    finally:
        tk_random.set_rng_state(state)
    model.double().train()
    loss_fn = build_loss(config).double()
    rng = np.random.default_rng(0)

    # A language model reads token ids, which have no gradient: only the parameters are checked.
    tokens = config.resolved.task == "language_model"
    if tokens:
        vocab = plan.output_shape[-1]
        x0 = rng.integers(0, vocab, size=(batch,) + shape).astype(np.int64)
        target = Tensor(rng.integers(0, vocab, size=(batch,) + plan.output_shape[:-1]).astype(np.int64))
    else:
        x0 = rng.standard_normal((batch,) + shape)
        out_shape = (batch,) + plan.output_shape
        target = Tensor(loss_target(config.resolved.loss.declaration.target, out_shape, rng))

    names = [n for n, _ in model.named_parameters()]
    owners = []
    for n in names:
        mod_path, _, leaf = n.rpartition(".")
        owners.append((model.get_submodule(mod_path), leaf))
    bases = [model.get_parameter(n)._array.copy() for n in names]
    dirs = ([] if tokens else [_directions(rng, x0.size, directions)]) + [_directions(rng, b.size, directions)
                                                                         for b in bases]
    rng_state = tk_random.get_rng_state()

    def moved(base: np.ndarray, d: np.ndarray, z):
        delta = (z.reshape((1, d.shape[0])) @ Tensor(d)).reshape(base.shape)
        return Tensor(base) + delta

    def fn(*zs):
        if tokens:
            x = Tensor(x0)
        else:
            x, zs = moved(x0, dirs[0], zs[0]), zs[1:]
        originals = [owner._parameters[leaf] for owner, leaf in owners]
        try:
            for (owner, leaf), base, d, z in zip(owners, bases, dirs[len(dirs) - len(bases):], zs):
                owner._parameters[leaf] = moved(base, d, z)
            tk_random.set_rng_state(rng_state)  # the same dropout mask on every call
            return loss_fn(model(x), target)
        finally:
            for (owner, leaf), p in zip(owners, originals):
                owner._parameters[leaf] = p

    def make_inputs(_rng):
        return tuple(Tensor(np.zeros(d.shape[0]), requires_grad=True) for d in dirs)

    # The table's shapes column lists one entry per checked tensor (the input first, unless it is token ids).
    return CheckCase(f"config:{config.name}", "model", fn, make_inputs)
