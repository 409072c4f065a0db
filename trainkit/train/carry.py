"""Hidden state carried across the batches of a BPTT stream, as PyTorch's word_language_model carries it.

word_language_model trains with::

    hidden = model.init_hidden(batch_size)          # at the start of every epoch
    for batch in stream:
        hidden = repackage_hidden(hidden)          # detach: backprop stops at the batch boundary
        output, hidden = model(data, hidden)

A YAML model has one input, so the state cannot travel through ``forward``'s
arguments. :func:`carry_hidden` does the same thing with module hooks while a
loader that carries state (``loader.carries_state``, a
:class:`~trainkit.data.text.batching.BPTTStream`) is iterated: every recurrent
layer (RNN, LSTM, GRU) called with its input alone gets, as its initial state,
the state it returned for the previous batch, detached; the states live in
``loader.hidden`` (module name -> tensor or tuple of tensors), which the loader
empties at the start of every pass and saves in its ``state_dict`` (so a
resumed epoch continues with the exact state). A layer called with an explicit
initial state keeps it. A state whose batch size does not fit the input is not
used (the layer starts from zeros).
"""
from __future__ import annotations

import contextlib

from trainkit.autograd.tensor import Tensor

__all__ = ["carry_hidden", "recurrent_modules", "StateHolder"]


def _is_recurrent(module) -> bool:
    from trainkit import nn

    base = getattr(nn, "RNNBase", None)
    return base is not None and isinstance(module, base)


def recurrent_modules(model) -> list[tuple[str, object]]:
    """``(name, module)`` of every recurrent layer of ``model`` (RNN, LSTM, GRU), outermost first."""
    return [(name, m) for name, m in model.named_modules() if _is_recurrent(m)]


def _detach(state):
    if isinstance(state, tuple):
        return tuple(_detach(s) for s in state)
    return state.detach() if isinstance(state, Tensor) else state


def _batch_of(module, x) -> int | None:
    if not isinstance(x, Tensor) or x.ndim != 3:
        return None
    return x.shape[0] if getattr(module, "batch_first", False) else x.shape[1]


def _fits(state, batch: int | None) -> bool:
    first = state[0] if isinstance(state, tuple) else state
    return batch is not None and isinstance(first, Tensor) and first.ndim == 3 and first.shape[1] == batch


class StateHolder:
    """A bare holder of carried states, for code that drives a model itself (``trainkit generate``)."""

    carries_state = True

    def __init__(self):
        self.hidden: dict = {}


@contextlib.contextmanager
def carry_hidden(model, loader):
    """While active, ``model``'s recurrent layers carry their state between batches of ``loader``.

    A no-op for loaders that carry no state (random windows, images).
    """
    if not getattr(loader, "carries_state", False):
        yield
        return
    handles = []

    def hooks(name):
        def pre(module, args, kwargs):
            if len(args) != 1 or kwargs.get("hx") is not None:
                return None
            state = loader.hidden.get(name)
            if state is None or not _fits(state, _batch_of(module, args[0])):
                return None
            return args, {**kwargs, "hx": state}

        def post(module, args, output):
            if isinstance(output, tuple) and len(output) == 2:
                loader.hidden[name] = _detach(output[1])
        return pre, post

    try:
        for name, module in recurrent_modules(model):
            pre, post = hooks(name)
            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
