"""Batches of a token stream for language models, with exact resume.

Every loader yields ``(x, y)``: int64 tensors ``(batch, time)`` where ``y`` is
``x`` shifted by one token (the next-token targets).

* :class:`RandomWindows` (training, ``batching: random``): each batch holds
  ``batch_size`` windows of ``block_size`` tokens starting at random positions,
  drawn with replacement (nanoGPT's ``get_batch``); an "epoch" is a set number
  of batches.
* :class:`SequentialWindows` (evaluation of either): the split cut into
  consecutive, non-overlapping windows, in order, so every token (but the
  last few that do not fill a window) is predicted exactly once.
* :class:`BPTTStream` (training and evaluation, ``batching: stream``): the
  split cut into ``batch_size`` contiguous columns, read ``block_size`` tokens at
  a time (PyTorch's word_language_model: ``batchify`` and ``get_batch``, batch
  first). A recurrent model carries its hidden state from one batch to the next
  (detached); the state lives in :attr:`BPTTStream.hidden`, set by
  :mod:`trainkit.train.carry`, starts empty every epoch, and is part of
  :meth:`BPTTStream.state_dict`.

Exact resume: ``state_dict()`` is JSON. Random windows draw one seed per epoch
from the loader's generator and batch ``b`` from ``default_rng([epoch_seed, b])``,
so the generator state at the start of the epoch and the batches already
handed out restore the rest of the epoch exactly; a stream needs its position
and the carried hidden state.
"""
from __future__ import annotations

import base64
import copy
import math

import numpy as np

from trainkit.autograd.tensor import Tensor

__all__ = ["RandomWindows", "SequentialWindows", "BPTTStream"]


def _pcg_state(gen: dict) -> dict:
    """A PCG64 generator state checked by loading it into a scratch generator; ValueError when it is not one."""
    if not isinstance(gen, dict) or gen.get("bit_generator") != "PCG64":
        raise ValueError("the generator state is not a PCG64 state")
    probe = np.random.PCG64()
    try:
        probe.state = copy.deepcopy(gen)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the generator state is not a PCG64 state ({exc})") from None
    return copy.deepcopy(gen)


def _done(state: dict, total: int) -> int:
    done = state.get("batches_done", 0) if isinstance(state, dict) else None
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= total:
        raise ValueError(f"batches_done must be an integer in 0..{total}, found {done!r}")
    return done


class RandomWindows:
    """Training batches of random windows of ``block_size`` tokens (see the module docstring).

    Args:
        tokens: the training token ids (1-D).
        block_size: tokens per window.
        batch_size: windows per batch.
        steps: batches per epoch.
        seed: seed of the loader's generator.
    """

    carries_state = False

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, steps: int, seed: int = 0):
        if len(tokens) < block_size + 1:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of {block_size} tokens plus its target")
        self.tokens = tokens
        self.block_size, self.batch_size, self.steps = int(block_size), int(batch_size), int(steps)
        self._windows = np.lib.stride_tricks.sliding_window_view(tokens, self.block_size + 1)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._epoch: dict | None = None
        self._resume: dict | None = None

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rng = self._rng
        skip = 0
        if self._resume is not None:
            rng.bit_generator.state = copy.deepcopy(self._resume["generator"])
            skip = self._resume["batches_done"]
            self._resume = None
        epoch = {"start": copy.deepcopy(rng.bit_generator.state), "done": skip}
        epoch_seed = int(rng.integers(0, 2**63 - 1))
        self._epoch = epoch
        high = len(self._windows)
        for b in range(skip, self.steps):
            starts = np.random.default_rng([epoch_seed, b]).integers(0, high, size=self.batch_size)
            w = self._windows[starts].astype(np.int64)
            epoch["done"] = b + 1
            yield Tensor(np.ascontiguousarray(w[:, :-1])), Tensor(np.ascontiguousarray(w[:, 1:]))
        if self._epoch is epoch:
            self._epoch = None

    def state_dict(self) -> dict:
        """The generator state at the start of the current epoch and the batches of it handed out."""
        if self._resume is not None:
            return copy.deepcopy(self._resume)
        ep = self._epoch
        if ep is not None and ep["done"] < self.steps:
            return {"version": 1, "generator": copy.deepcopy(ep["start"]), "batches_done": ep["done"]}
        return {"version": 1, "generator": copy.deepcopy(self._rng.bit_generator.state), "batches_done": 0}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s state; ValueError when ``state`` is not one."""
        gen = _pcg_state(state.get("generator") if isinstance(state, dict) else None)
        self._resume = {"version": 1, "generator": gen, "batches_done": _done(state, self.steps)}
        self._epoch = None

    def __repr__(self) -> str:
        return (f"RandomWindows(tokens={len(self.tokens)}, block_size={self.block_size}, "
                f"batch_size={self.batch_size}, steps={self.steps})")


class SequentialWindows:
    """Consecutive non-overlapping windows of ``block_size`` tokens, in order (evaluation).

    The last ``(len(tokens) - 1) % block_size`` tokens, too few for a window, are not predicted.
    """

    carries_state = False

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int):
        n = (len(tokens) - 1) // block_size
        if n < 1:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of {block_size} tokens plus its target")
        self.tokens = tokens
        self.block_size, self.batch_size, self.windows = int(block_size), int(batch_size), n
        used = n * block_size
        self._x = tokens[:used].reshape(n, block_size)
        self._y = tokens[1:used + 1].reshape(n, block_size)

    def __len__(self) -> int:
        return -(-self.windows // self.batch_size)

    def __iter__(self):
        for i in range(0, self.windows, self.batch_size):
            yield (Tensor(self._x[i:i + self.batch_size].astype(np.int64)),
                   Tensor(self._y[i:i + self.batch_size].astype(np.int64)))

    def __repr__(self) -> str:
        return f"SequentialWindows(windows={self.windows}, block_size={self.block_size}, batch_size={self.batch_size})"


def _encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode_array(d) -> np.ndarray:
    if not isinstance(d, dict) or d.get("dtype") not in ("float32", "float64"):
        raise ValueError("a carried state array must be float32 or float64")
    shape = d.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31
                                              for s in shape) or len(shape) > 8:
        raise ValueError(f"bad shape of a carried state array: {shape!r}")
    dtype = np.dtype(d["dtype"])
    data = d.get("data")
    if not isinstance(data, str) or len(data) != 4 * math.ceil(math.prod(shape) * dtype.itemsize / 3):
        raise ValueError("the data of a carried state array does not match its shape")
    a = np.frombuffer(base64.b64decode(data, validate=True), dtype=dtype).reshape(shape).copy()
    if not np.isfinite(a).all():
        raise ValueError("a carried state array holds non-finite values")
    return a


def encode_hidden(hidden: dict) -> dict:
    """JSON form of carried states: module name -> list of arrays (base64, exact) and whether it is a tuple."""
    out = {}
    for name, value in hidden.items():
        arrays = value if isinstance(value, tuple) else (value,)
        out[name] = {"tuple": isinstance(value, tuple), "arrays": [_encode_array(t.numpy()) for t in arrays]}
    return out


def decode_hidden(data) -> dict:
    """:func:`encode_hidden`'s form back to tensors; ValueError when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("carried hidden states must be a mapping")
    out = {}
    for name, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("arrays"), list) or not value["arrays"]:
            raise ValueError(f"carried hidden state {name!r} is malformed")
        tensors = tuple(Tensor(_decode_array(a)) for a in value["arrays"])
        out[str(name)] = tensors if value.get("tuple") else tensors[0]
    return out


class BPTTStream:
    """``batch_size`` contiguous columns of a token stream read ``block_size`` tokens at a time.

    Batch ``b`` is ``x = data[:, b*T:(b+1)*T]`` with targets one token later;
    the last batch may be shorter. :attr:`hidden` holds the recurrent layers'
    state carried between batches (empty at the start of every pass); see
    :mod:`trainkit.train.carry`.
    """

    carries_state = True

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int):
        nb = len(tokens) // batch_size
        if nb < 2:
            raise ValueError(f"{len(tokens)} tokens in {batch_size} columns leave fewer than 2 tokens per column")
        self.tokens = tokens
        self.block_size, self.batch_size, self.columns = int(block_size), int(batch_size), nb
        self.data = tokens[:nb * batch_size].reshape(batch_size, nb)
        self.hidden: dict = {}
        self._done = 0
        self._resume: dict | None = None

    def __len__(self) -> int:
        return -(-(self.columns - 1) // self.block_size)

    def __iter__(self):
        total = len(self)
        skip = 0
        if self._resume is not None:
            skip, self.hidden = self._resume["batches_done"], self._resume["hidden"]
            self._resume = None
        else:
            self.hidden = {}
        self._done = skip
        T = self.block_size
        for b in range(skip, total):
            i = b * T
            seq = min(T, self.columns - 1 - i)
            x = self.data[:, i:i + seq].astype(np.int64)
            y = self.data[:, i + 1:i + 1 + seq].astype(np.int64)
            self._done = b + 1
            yield Tensor(x), Tensor(y)

    def state_dict(self) -> dict:
        """The batches of this pass handed out and the hidden state carried after the last of them."""
        if self._resume is not None:
            return {"version": 1, "batches_done": self._resume["batches_done"],
                    "hidden": encode_hidden(self._resume["hidden"])}
        if 0 < self._done < len(self):
            return {"version": 1, "batches_done": self._done, "hidden": encode_hidden(self.hidden)}
        return {"version": 1, "batches_done": 0, "hidden": {}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s state; ValueError when ``state`` is not one."""
        done = _done(state, len(self))
        hidden = decode_hidden(state.get("hidden", {}))
        self._resume = {"batches_done": done, "hidden": hidden if done else {}}

    def __repr__(self) -> str:
        return (f"BPTTStream(columns={self.batch_size}x{self.columns}, block_size={self.block_size}, "
                f"batches={len(self)})")
