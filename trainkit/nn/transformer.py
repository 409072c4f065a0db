"""Transformer blocks: ``TransformerEncoderLayer``/``TransformerEncoder``, ``TransformerDecoderLayer``/
``TransformerDecoder`` and ``Transformer`` (PyTorch's arguments, submodule names, state-dict keys and numerics).

For YAML, ``transformer_encoder_layer`` and ``transformer_decoder_layer`` are
declared on the layer classes; ``transformer_encoder``/``transformer_decoder``
are stacks built from flat arguments (``TransformerEncoderStack``,
``TransformerDecoderStack`` in :mod:`trainkit.nn.transformer_model`, with the
keys and repr of a ``TransformerEncoder``/``TransformerDecoder``), and so is
``Transformer``. ``causal`` (keyword,
trainkit's) makes a block apply the causal mask on every call.
"""
from __future__ import annotations

import copy

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn.attention import MultiheadAttention, causal_attn_mask
from trainkit.nn.container import ModuleList
from trainkit.nn.dropout import Dropout
from trainkit.nn.linear import Linear
from trainkit.nn.module import Module
from trainkit.nn.normalization import LayerNorm
from trainkit.registry import Example, Float, Inferred, Int, ShapeProblem, Str, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder",
           "generate_square_subsequent_mask"]


def _activation(activation):
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    return activation


def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
    """A float ``(sz, sz)`` mask: ``-inf`` above the diagonal (later positions), 0 elsewhere."""
    from trainkit.autograd import device as _device
    from trainkit.autograd import dtypes

    _device.check_cpu(device)
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return Tensor(np.triu(np.full((sz, sz), -np.inf), 1).astype(np.dtype(getattr(dt, "numpy_dtype", dt))))


def _detect_is_causal_mask(mask, is_causal, size) -> bool:
    """PyTorch's rule: ``is_causal`` if given, else whether ``mask`` equals the square subsequent mask."""
    if is_causal is True:
        return True
    if is_causal is None and mask is not None:
        arr = mask._array if isinstance(mask, Tensor) else np.asarray(mask)
        sz = size if size is not None else arr.shape[-2]
        ref = np.triu(np.full((sz, sz), -np.inf), 1)
        if arr.dtype == np.bool_:
            return False
        return arr.shape == ref.shape and bool((arr == ref).all())
    return False


def _seq_len(x, batch_first: bool) -> int:
    return x.shape[0] if x.ndim == 2 else x.shape[1 if batch_first else 0]


_BLOCK_ARGS = {"d_model": Int(lo=1), "nhead": Int(lo=1), "dim_feedforward": Int(lo=1), "dropout": Float(0, 1),
               "activation": Str(("relu", "gelu"), "activation"),
               "layer_norm_eps": Float(lo=0, lo_open=True)}


def _block_inferred(args, x, name: str, attentions: int) -> Inferred:
    if not args["batch_first"]:
        raise ShapeProblem(f"{name}: in YAML the batch is dimension 0 of every value: set batch_first: true",
                           "batch_first")
    if len(x) != 2:
        raise ShapeProblem(f"{name} needs (sequence, d_model) input per sample, found {fmt(x)}")
    length, e = x
    if e % args["nhead"]:
        raise ShapeProblem(f"{e} features do not split into {args['nhead']} heads", "nhead")
    ff, b = args["dim_feedforward"], int(args["bias"])
    params = attentions * (4 * e * e + 4 * e * b) + 2 * e * ff + (ff + e) * b + (attentions + 1) * e * (1 + b)
    macs = attentions * (4 * length * e * e + 2 * length * length * e) + 2 * length * e * ff
    return Inferred((length, e), macs=macs, params=params)


@layer("transformer_encoder_layer", input_arg="d_model", input_dim=-1, args=_BLOCK_ARGS,
       defaults={"batch_first": True},
       example=Example((2, 3, 4), {"nhead": 2, "dim_feedforward": 3, "dropout": 0.0, "norm_first": True,
                                   "causal": True}, name="TransformerEncoderLayer(norm_first,causal)", fast=True), onnx=_onnx.encoder_layer)
class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward network, each with a residual connection and a LayerNorm.

    Args:
        d_model: model width.
        nhead: attention heads.
        dim_feedforward: width of the feed-forward network.
        dropout: dropout after attention, inside and after the feed-forward network (and on the weights).
        activation: ``'relu'``, ``'gelu'`` or a callable (a module is registered as ``activation``).
        layer_norm_eps: the LayerNorms' eps.
        batch_first: ``(N, L, E)`` input instead of ``(L, N, E)``.
        norm_first: pre-norm (``x + sa(norm1(x))``) instead of post-norm (``norm1(x + sa(x))``).
        bias: biases in the linear layers, attention and LayerNorms.
        causal: (keyword, trainkit's) mask every query's later keys on every call (YAML's ``causal: true``).

    Shape:
        ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` -> like ``src``;
        ``is_causal`` is PyTorch's hint that ``src_mask`` is causal (the mask is required with it).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None, *, causal: bool = False):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        self.causal = causal

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        if self.causal:
            length = _seq_len(src, self.self_attn.batch_first)
            src_mask, is_causal = causal_attn_mask(src_mask, length, length), True
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def extra_repr(self) -> str:
        return "causal=True" if self.causal else ""

    @staticmethod
    def infer_shape(args, x):
        """``(seq, d_model) -> (seq, d_model)``."""
        return _block_inferred(args, x, "transformer_encoder_layer", 1)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (deep copies, as PyTorch makes), then ``norm``.

    Args:
        encoder_layer: the :class:`TransformerEncoderLayer` to clone.
        num_layers: how many layers.
        norm: an optional final module (a LayerNorm).
        enable_nested_tensor: accepted for PyTorch compatibility (nested tensors are a PyTorch fast path).
        mask_check: accepted for PyTorch compatibility.

    Shape:
        ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``; ``is_causal=None``
        detects a causal ``mask`` as PyTorch does.
    """

    def __init__(self, encoder_layer, num_layers: int, norm=None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool | None = None):
        first = self.layers[0] if len(self.layers) else None
        batch_first = first.self_attn.batch_first if first is not None else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        output = src
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        return self.norm(output) if self.norm is not None else output


@layer("transformer_decoder_layer", input_arg="d_model", input_dim=-1, args=_BLOCK_ARGS, inputs=2,
       defaults={"batch_first": True},
       example=Example(((2, 3, 4), (2, 2, 4)), {"nhead": 2, "dim_feedforward": 3, "dropout": 0.0, "causal": True},
                       name="TransformerDecoderLayer(causal)", fast=True), onnx=_onnx.decoder_layer)
class TransformerDecoderLayer(Module):
    """Self-attention, attention over ``memory``, then a feed-forward network (residuals and LayerNorms).

    Args:
        d_model: model width.
        nhead: attention heads.
        dim_feedforward: width of the feed-forward network.
        dropout: dropout probability (as in the encoder layer).
        activation: ``'relu'``, ``'gelu'`` or a callable.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: ``(N, L, E)`` inputs.
        norm_first: pre-norm instead of post-norm.
        bias: biases in the linear layers, attention and LayerNorms.
        causal: (keyword, trainkit's) the self-attention masks later target positions on every call.

    Shape:
        ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
        memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)`` -> like ``tgt``.
        In YAML the node has two inputs, ``[tgt, memory]``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None, *, causal: bool = False):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias,
                                            device=device, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first,
                                                 bias=bias, device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)
        self.causal = causal

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,  # noqa: PLR0913
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        if self.causal:
            length = _seq_len(tgt, self.self_attn.batch_first)
            tgt_mask, tgt_is_causal = causal_attn_mask(tgt_mask, length, length), True
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def extra_repr(self) -> str:
        return "causal=True" if self.causal else ""

    @staticmethod
    def infer_shape(args, tgt, memory=None):
        """``[(seq, d_model), (mem_seq, d_model)] -> (seq, d_model)``."""
        if memory is None:
            raise ShapeProblem("transformer_decoder_layer takes two inputs: [target, memory]")
        out = _block_inferred(args, tgt, "transformer_decoder_layer", 2)
        if len(memory) != 2 or memory[1] != tgt[1]:
            raise ShapeProblem(f"the memory must be (sequence, {tgt[1]}) per sample like the target, found "
                               f"{fmt(memory)}")
        return out


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer``, then ``norm``.

    Args:
        decoder_layer: the :class:`TransformerDecoderLayer` to clone.
        num_layers: how many layers.
        norm: an optional final module (a LayerNorm).

    Shape:
        ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
        memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``.
    """

    def __init__(self, decoder_layer, num_layers: int, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,  # noqa: PLR0913
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False):
        first = self.layers[0] if len(self.layers) else None
        batch_first = first.self_attn.batch_first if first is not None else False
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, _seq_len(tgt, batch_first))
        output = tgt
        for mod in self.layers:
            output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return self.norm(output) if self.norm is not None else output
