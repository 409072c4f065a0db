"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU`` (PyTorch's arguments, parameter names, layouts and numerics).

Each (layer, direction) runs as one fused graph node (:mod:`trainkit.autograd.ops.rnn`):
the input projection of the whole sequence is one GEMM, only the recurrent part
loops over time, and backward is backpropagation through time in numpy.
The cells (``RNNCell``, ``LSTMCell``, ``GRUCell``) are in :mod:`trainkit.nn.rnn_cell`.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from trainkit.autograd import device as _device
from trainkit.autograd.ops import rnn as _rnn
from trainkit.autograd.ops.shape import cat, stack
from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Float, Inferred, Int, ShapeProblem, Str, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_OPS = {"RNN_TANH": _rnn.RNNTanh, "RNN_RELU": _rnn.RNNReLU, "LSTM": _rnn.LSTM, "GRU": _rnn.GRU}


def refuse_packed(input, who: str) -> None:  # noqa: A002 - PyTorch's argument name
    """Raise a clear TypeError for a PackedSequence (or anything that is not a Tensor)."""
    if not isinstance(input, Tensor):
        kind = type(input).__name__
        if kind == "PackedSequence" or hasattr(input, "batch_sizes"):
            raise TypeError(f"{who}: PackedSequence input is not supported by trainkit; pass a padded tensor "
                            "(and mask or slice the padded steps yourself)")
        raise TypeError(f"{who}: input must be a Tensor, got {kind}")


class RNNBase(Module):
    """The shared implementation of :class:`RNN`, :class:`LSTM` and :class:`GRU` (``mode`` picks one).

    Parameters are registered per layer ``k`` and direction as PyTorch names them:
    ``weight_ih_l{k}`` ``(G*hidden_size, in)``, ``weight_hh_l{k}`` ``(G*hidden_size, hidden_size)``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(G*hidden_size,)``, with the suffix ``_reverse`` for the
    backward direction (G = 1 for RNN, 3 for GRU, 4 for LSTM; the gate rows in PyTorch's order),
    so a state dict loads into the PyTorch module unchanged. Every parameter starts
    ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        _device.check_cpu(device)
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + str(mode))
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=3)
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size:
            if proj_size >= hidden_size:
                raise ValueError("proj_size has to be smaller than hidden_size")
            raise NotImplementedError("LSTM: proj_size (projected hidden states) is not supported by trainkit")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        dt = np_dtype(dtype)
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer_ in range(num_layers):
            for direction in range(directions):
                n_in = input_size if layer_ == 0 else hidden_size * directions
                suffix = "_reverse" if direction == 1 else ""
                names = [f"weight_ih_l{layer_}{suffix}", f"weight_hh_l{layer_}{suffix}"]
                shapes = [(gate_size, n_in), (gate_size, hidden_size)]
                if bias:
                    names += [f"bias_ih_l{layer_}{suffix}", f"bias_hh_l{layer_}{suffix}"]
                    shapes += [(gate_size,), (gate_size,)]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(np.empty(shape, dtype=dt)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``, PyTorch's default."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """Nothing to do: PyTorch packs weights for cuDNN here; the CPU engine reads them as they are."""

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters per (layer, direction), in PyTorch's order."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------------------ forward
    def _zeros(self, x: Tensor, batch: int) -> Tensor:
        directions = 2 if self.bidirectional else 1
        return Tensor(np.zeros((self.num_layers * directions, batch, self.hidden_size), x._array.dtype))

    def _check_state(self, hx: Tensor, batch: int, unbatched: bool, what: str = "hidden") -> Tensor:
        want = 2 if unbatched else 3
        if hx.ndim != want:
            kind = "unbatched 2-D input" if unbatched else "batched 3-D input"
            raise RuntimeError(f"For {kind}, hx should also be {want}-D but got {hx.ndim}-D tensor")
        if unbatched:
            hx = hx.unsqueeze(1)
        directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {list(hx.shape)}")
        return hx

    def _prepare(self, input, who: str):
        refuse_packed(input, who)
        if input.ndim not in (2, 3):
            raise ValueError(f"{who}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        w = self.weight_ih_l0
        if input.dtype != w.dtype:
            raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({w.dtype}). Convert "
                             f"input: input.to({w.dtype}), or convert model: model.to({input.dtype})")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        return x, unbatched

    def _run(self, x: Tensor, states: list[Tensor]):
        """All layers over time-major ``x``; returns the output sequence and the final state(s) stacked."""
        op = _OPS[self.mode]
        directions = 2 if self.bidirectional else 1
        lstm = self.mode == "LSTM"
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer_ in range(self.num_layers):
            seqs = []
            for direction in range(directions):
                names = self._all_weights[layer_ * directions + direction]
                params = [getattr(self, n) for n in names]
                k = layer_ * directions + direction
                init_states = [s[k] for s in states]
                y = op.apply(x, *params, *init_states, reverse=direction == 1, bias=self.bias)
                last = 0 if direction == 1 else -1
                if lstm:
                    seqs.append(y[0])
                    finals[0].append(y[0, last])
                    finals[1].append(y[1, last])
                else:
                    seqs.append(y)
                    finals[0].append(y[last])
            x = seqs[0] if directions == 1 else cat(seqs, dim=2)
            if self.dropout and self.training and layer_ < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, [stack(f, 0) for f in finals]

    def _finish(self, out: Tensor, unbatched: bool) -> Tensor:
        if unbatched:
            return out.squeeze(1)
        return out.transpose(0, 1) if self.batch_first else out


def _rnn_outputs(args, x, name: str):
    """Shape rule shared by rnn/lstm/gru (batch first, as every YAML value)."""
    if not args["batch_first"]:
        raise ShapeProblem(f"{name}: in YAML the batch is dimension 0 of every value: set batch_first: true",
                           "batch_first")
    if len(x) != 2:
        raise ShapeProblem(f"{name} needs (sequence, features) input per sample, found {fmt(x)}"
                           + (" (add an embedding or a reshape before it)" if len(x) == 1 else ""))
    return x[0], x[1]


def _recurrent_inferred(args, x, gates: int, state_names: tuple[str, ...]) -> Inferred:
    length, n_in = _rnn_outputs(args, x, {1: "rnn", 3: "gru", 4: "lstm"}[gates])
    h, layers = args["hidden_size"], args["num_layers"]
    d = 2 if args["bidirectional"] else 1
    params = macs = 0
    for k in range(layers):
        width = n_in if k == 0 else d * h
        per = gates * h * (width + h)
        params += d * (per + (2 * gates * h if args["bias"] else 0))
        macs += d * length * per
    outputs = {"output": (length, d * h)}
    for s in state_names:
        outputs[s] = (h,)
    return Inferred((length, d * h), macs=macs, params=params, outputs=outputs)


_RNN_ARGS = {"input_size": Int(lo=1), "hidden_size": Int(lo=1), "num_layers": Int(lo=1),
             "dropout": Float(0, 1)}


@layer("rnn", input_arg="input_size", input_dim=-1, exclude=("proj_size",),
       args={**_RNN_ARGS, "nonlinearity": Str(("tanh", "relu"), "nonlinearity")}, defaults={"batch_first": True},
       outputs={"output": (0,), "h_n": (1, -1)},
       example=Example((2, 3, 2), {"hidden_size": 3, "bidirectional": True}, name="RNN(bidirectional)"), onnx=_onnx.recurrent)
class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)`` (or ReLU) per layer.

    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked recurrent layers (each reads the previous one's output sequence).
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: whether there are ``bias_ih``/``bias_hh`` parameters.
        batch_first: input and output are ``(batch, seq, feature)`` instead of ``(seq, batch, feature)``
            (the hidden state stays ``(layers*directions, batch, hidden)``).
        dropout: dropout probability on the outputs of every layer but the last (training only).
        bidirectional: run a second, reversed direction per layer and concatenate the two.

    Shape:
        ``forward(input, hx=None)``: input ``(L, N, input_size)`` (or ``(N, L, ...)`` with
        ``batch_first``, or unbatched ``(L, input_size)``), ``hx (D*num_layers, N, hidden_size)``
        (zeros when None) -> ``(output (L, N, D*hidden_size), h_n (D*num_layers, N, hidden_size))``.

    PackedSequence input is not supported (a TypeError says so): pad the batch.
    In YAML (``batch_first`` defaults to true there, and must be), ``node.output`` is
    (batch, seq, directions*hidden_size) and ``node.h_n`` the final hidden state of the last
    layer, ``h_n[-1]`` (batch, hidden_size; with ``bidirectional``, its reverse direction).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"RNN got unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002
        x, unbatched = self._prepare(input, "RNN")
        h0 = self._zeros(x, x.shape[1]) if hx is None else self._check_state(hx, x.shape[1], unbatched)
        out, (h_n,) = self._run(x, [h0])
        return self._finish(out, unbatched), (h_n.squeeze(1) if unbatched else h_n)

    @staticmethod
    def infer_shape(args, x):
        """``(seq, input_size) -> (seq, D*hidden_size)``; ``h_n`` is ``(hidden_size,)``."""
        return _recurrent_inferred(args, x, 1, ("h_n",))


@layer("lstm", input_arg="input_size", input_dim=-1, exclude=("proj_size",), args=_RNN_ARGS,
       defaults={"batch_first": True}, outputs={"output": (0,), "h_n": (1, 0, -1), "c_n": (1, 1, -1)},
       example=Example((2, 3, 2), {"hidden_size": 2}, name="LSTM"), onnx=_onnx.recurrent)
class LSTM(RNNBase):
    """Long short-term memory, PyTorch's gates ``i, f, g, o`` (rows in that order in every weight).

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``, with ``i, f, o`` sigmoids and ``g`` a tanh
    of ``x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh``.

    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden and cell states.
        num_layers: stacked LSTM layers.
        bias: whether there are ``bias_ih``/``bias_hh`` parameters.
        batch_first: input and output are ``(batch, seq, feature)``.
        dropout: dropout probability on the outputs of every layer but the last (training only).
        bidirectional: a second, reversed direction per layer, concatenated.
        proj_size: must be 0: projected LSTMs are not supported (NotImplementedError otherwise).

    Shape:
        ``forward(input, hx=None)`` with ``hx = (h_0, c_0)``, each ``(D*num_layers, N, hidden_size)``
        (zeros when None) -> ``(output (L, N, D*hidden_size), (h_n, c_n))``.

    PackedSequence input is not supported (a TypeError says so): pad the batch.
    In YAML (``batch_first`` defaults to true there, and must be), ``node.output`` is
    (batch, seq, directions*hidden_size); ``node.h_n`` and ``node.c_n`` are the final states of the
    last layer, ``h_n[-1]`` and ``c_n[-1]`` (batch, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input, hx=None):  # noqa: A002
        x, unbatched = self._prepare(input, "LSTM")
        batch = x.shape[1]
        if hx is None:
            h0 = c0 = self._zeros(x, batch)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0)")
            h0 = self._check_state(hx[0], batch, unbatched, "hidden[0]")
            c0 = self._check_state(hx[1], batch, unbatched, "hidden[1]")
        out, (h_n, c_n) = self._run(x, [h0, c0])
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._finish(out, unbatched), (h_n, c_n)

    @staticmethod
    def infer_shape(args, x):
        """``(seq, input_size) -> (seq, D*hidden_size)``; ``h_n`` and ``c_n`` are ``(hidden_size,)``."""
        return _recurrent_inferred(args, x, 4, ("h_n", "c_n"))


@layer("gru", input_arg="input_size", input_dim=-1, exclude=("proj_size",), args=_RNN_ARGS,
       defaults={"batch_first": True}, outputs={"output": (0,), "h_n": (1, -1)},
       example=Example((2, 3, 2), {"hidden_size": 2}, name="GRU"), onnx=_onnx.recurrent)
class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's gates ``r, z, n`` (rows in that order in every weight).

    ``r, z = sigmoid(...)``, ``n = tanh(x_t W_inᵀ + b_in + r * (h_{t-1} W_hnᵀ + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``.

    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked GRU layers.
        bias: whether there are ``bias_ih``/``bias_hh`` parameters.
        batch_first: input and output are ``(batch, seq, feature)``.
        dropout: dropout probability on the outputs of every layer but the last (training only).
        bidirectional: a second, reversed direction per layer, concatenated.

    Shape:
        as :class:`RNN`.

    PackedSequence input is not supported (a TypeError says so): pad the batch.
    In YAML (``batch_first`` defaults to true there, and must be), ``node.output`` is
    (batch, seq, directions*hidden_size) and ``node.h_n`` the final hidden state of the last
    layer, ``h_n[-1]`` (batch, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"GRU got unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)

    def forward(self, input, hx=None):  # noqa: A002
        x, unbatched = self._prepare(input, "GRU")
        h0 = self._zeros(x, x.shape[1]) if hx is None else self._check_state(hx, x.shape[1], unbatched)
        out, (h_n,) = self._run(x, [h0])
        return self._finish(out, unbatched), (h_n.squeeze(1) if unbatched else h_n)

    @staticmethod
    def infer_shape(args, x):
        """``(seq, input_size) -> (seq, D*hidden_size)``; ``h_n`` is ``(hidden_size,)``."""
        return _recurrent_inferred(args, x, 3, ("h_n",))
