"""One-step recurrent cells ``RNNCell``, ``LSTMCell`` and ``GRUCell`` (PyTorch's names, layouts and numerics).

A cell computes a single time step from an explicit state, for loops written in
Python (decoders, custom unrolling). They are Python-only, not YAML layers: a
YAML model has no loop to feed a cell its previous state; use the ``rnn``,
``lstm`` or ``gru`` layers there. A step runs through the same fused recurrent
op as the layers (:mod:`trainkit.autograd.ops.rnn`) on a one-step sequence, so
a cell and a one-layer module with the same weights agree exactly.
"""
from __future__ import annotations

import math

import numpy as np

from trainkit.autograd import device as _device
from trainkit.autograd.ops import rnn as _rnn
from trainkit.autograd.tensor import Tensor
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.nn.rnn import refuse_packed

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class RNNCellBase(Module):
    """Shared parameters of the cells: ``weight_ih (G*hidden_size, input_size)``, ``weight_hh
    (G*hidden_size, hidden_size)``, ``bias_ih``/``bias_hh (G*hidden_size,)`` (gate rows in PyTorch's
    order), every one ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``.
    """

    _op: type = _rnn.RNNTanh
    _name = "RNNCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        _device.check_cpu(device)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dt = np_dtype(dtype)
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), dtype=dt))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(np.empty((num_chunks * hidden_size,), dtype=dt))
            self.bias_hh = Parameter(np.empty((num_chunks * hidden_size,), dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``, PyTorch's default."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity}"
        return s

    def _states(self, input, hx, count: int):  # noqa: A002
        """The batched input and ``count`` initial state(s) (zeros when ``hx`` is None)."""
        refuse_packed(input, self._name)
        if input.ndim not in (1, 2):
            raise RuntimeError(f"{self._name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        batch = x.shape[0]
        if hx is None:
            zero = Tensor(np.zeros((batch, self.hidden_size), x._array.dtype))
            return x, [zero] * count, unbatched
        states = list(hx) if count == 2 else [hx]
        out = []
        for k, s in enumerate(states):
            if s.ndim != input.ndim:
                raise RuntimeError(f"{self._name}: Expected hidden to be {input.ndim}D for "
                                   f"{'unbatched' if unbatched else 'batched'} input, got {s.ndim}D instead")
            s = s.unsqueeze(0) if unbatched else s
            if s.shape[0] != batch:
                raise RuntimeError(f"Input batch size {batch} doesn't match hidden{k} batch size {s.shape[0]}")
            if s.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, expected "
                                   f"{self.hidden_size}")
            out.append(s)
        return x, out, unbatched

    def _step(self, x: Tensor, states: list[Tensor]) -> Tensor:
        params = [self.weight_ih, self.weight_hh] + ([self.bias_ih, self.bias_hh] if self.bias else [])
        return self._op.apply(x.unsqueeze(0), *params, *states, bias=self.bias)


class RNNCell(RNNCellBase):
    """Elman cell ``h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` (or ReLU).

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden state.
        bias: whether there are ``bias_ih``/``bias_hh``.
        nonlinearity: ``'tanh'`` or ``'relu'``.

    Shape:
        ``forward(input (N, input_size) or (input_size,), hx=None)`` -> ``h' (N, hidden_size)``.
    """

    _name = "RNNCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002
        x, states, unbatched = self._states(input, hx, 1)
        op = _rnn.RNNTanh if self.nonlinearity == "tanh" else _rnn.RNNReLU
        params = [self.weight_ih, self.weight_hh] + ([self.bias_ih, self.bias_hh] if self.bias else [])
        h = op.apply(x.unsqueeze(0), *params, *states, bias=self.bias)[0]
        return h.squeeze(0) if unbatched else h


class LSTMCell(RNNCellBase):
    """LSTM cell (gates ``i, f, g, o``): ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden and cell states.
        bias: whether there are ``bias_ih``/``bias_hh``.

    Shape:
        ``forward(input, hx=None)`` with ``hx = (h, c)`` -> ``(h', c')``, each ``(N, hidden_size)``.
    """

    _op = _rnn.LSTM
    _name = "LSTMCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):  # noqa: A002
        x, states, unbatched = self._states(input, hx, 2)
        y = self._step(x, states)
        h, c = y[0, 0], y[1, 0]
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(RNNCellBase):
    """GRU cell (gates ``r, z, n``): ``h' = (1 - z) * n + z * h``.

    Args:
        input_size: features of the input.
        hidden_size: features of the hidden state.
        bias: whether there are ``bias_ih``/``bias_hh``.

    Shape:
        ``forward(input, hx=None)`` -> ``h' (N, hidden_size)``.
    """

    _op = _rnn.GRU
    _name = "GRUCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):  # noqa: A002
        x, states, unbatched = self._states(input, hx, 1)
        h = self._step(x, states)[0]
        return h.squeeze(0) if unbatched else h
