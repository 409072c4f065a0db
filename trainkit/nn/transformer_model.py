"""``Transformer`` (the encoder-decoder model) and the YAML stacks ``transformer_encoder``/``transformer_decoder``.

The stacks are a :class:`~trainkit.nn.transformer.TransformerEncoder` /
``TransformerDecoder`` built from flat arguments (what a YAML node can give),
with PyTorch's submodule names, so their state dicts (``layers.3.self_attn.
in_proj_weight``, ``norm.weight``) and reprs are a PyTorch ``TransformerEncoder``'s.
"""
from __future__ import annotations

from trainkit.nn.attention import causal_attn_mask
from trainkit.nn.container import ModuleList
from trainkit.nn.init import xavier_uniform_
from trainkit.nn.module import Module
from trainkit.nn.normalization import LayerNorm
from trainkit.nn.transformer import (_BLOCK_ARGS, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                                     TransformerEncoderLayer, _block_inferred, _seq_len,
                                     generate_square_subsequent_mask)
from trainkit.registry import Example, Inferred, Int, ShapeProblem, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Transformer", "TransformerEncoderStack", "TransformerDecoderStack"]


class Transformer(Module):
    """The encoder-decoder transformer of "Attention Is All You Need" (PyTorch's ``nn.Transformer``).

    Python-only: it takes two sequences and up to six masks per call; in YAML, compose
    ``transformer_encoder`` and ``transformer_decoder`` nodes in graph form instead.

    Args:
        d_model: model width.
        nhead: attention heads.
        num_encoder_layers: encoder layers.
        num_decoder_layers: decoder layers.
        dim_feedforward: feed-forward width.
        dropout: dropout probability.
        activation: ``'relu'``, ``'gelu'`` or a callable.
        custom_encoder: a module used instead of the encoder.
        custom_decoder: a module used instead of the decoder.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: ``(N, L, E)`` inputs.
        norm_first: pre-norm layers.
        bias: biases in linear layers, attention and LayerNorms.

    Every parameter with more than one dimension is re-initialised ``xavier_uniform_``, as PyTorch does.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  device=device, dtype=dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **kw), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **kw), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for p in self.parameters():
            if p.ndim > 1:
                xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,  # noqa: PLR0913
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False):
        """Encode ``src`` into a memory, then decode ``tgt`` attending to it."""
        batched = src.ndim == 3
        batch_dim = 0 if self.batch_first else 1
        if batched and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)


_STACK_ARGS = {**_BLOCK_ARGS, "num_layers": Int(lo=1)}


def _stack_inferred(args, x, name: str, attentions: int) -> Inferred:
    one = _block_inferred(args, x, name, attentions)
    final = x[1] * (1 + int(args["bias"])) if args["norm"] else 0
    n = args["num_layers"]
    return Inferred(one.shape, macs=n * one.macs, params=n * one.params + final)


@layer("transformer_encoder", input_arg="d_model", input_dim=-1, args=_STACK_ARGS,
       example=Example((2, 3, 4), {"nhead": 2, "num_layers": 2, "dim_feedforward": 3, "dropout": 0.0,
                                   "norm": True, "causal": True}, name="TransformerEncoder(2 layers,norm,causal)",
                       fast=True), onnx=_onnx.encoder_stack)
class TransformerEncoderStack(TransformerEncoder):
    """A ``TransformerEncoder`` of ``num_layers`` independently initialised ``TransformerEncoderLayer``\\ s (YAML's
    ``transformer_encoder``).

    Args:
        d_model: model width.
        nhead: attention heads.
        num_layers: how many encoder layers.
        dim_feedforward: feed-forward width.
        dropout: dropout probability.
        activation: ``'relu'`` or ``'gelu'``.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: ``(N, L, E)`` input (the default here: YAML values are batch first).
        norm_first: pre-norm layers (a GPT block with ``activation: gelu``).
        bias: biases in linear layers, attention and LayerNorms.
        norm: a final LayerNorm after the last layer (``norm``, as nanoGPT's ``ln_f``).
        causal: every query attends only to itself and earlier positions.

    Its repr and state dict are those of ``nn.TransformerEncoder(layer, num_layers, norm)``.
    """

    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True, norm: bool = False,
                 device=None, dtype=None, *, causal: bool = False):
        Module.__init__(self)
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  device=device, dtype=dtype)
        self.layers = ModuleList([TransformerEncoderLayer(d_model, nhead, **kw) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype) if norm else None
        self.enable_nested_tensor, self.mask_check = False, True
        self.causal = causal

    def _get_name(self) -> str:
        return "TransformerEncoder"

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool | None = None):
        if self.causal:
            length = _seq_len(src, self.layers[0].self_attn.batch_first)
            mask, is_causal = causal_attn_mask(mask, length, length), True
        return super().forward(src, mask, src_key_padding_mask, is_causal)

    @staticmethod
    def infer_shape(args, x):
        """``(seq, d_model) -> (seq, d_model)``, ``num_layers`` encoder layers."""
        return _stack_inferred(args, x, "transformer_encoder", 1)


@layer("transformer_decoder", input_arg="d_model", input_dim=-1, args=_STACK_ARGS, inputs=2,
       example=Example(((2, 3, 4), (2, 2, 4)), {"nhead": 2, "num_layers": 2, "dim_feedforward": 3, "dropout": 0.0,
                                                "norm_first": True}, name="TransformerDecoder(2 layers,norm_first)",
                       fast=True), onnx=_onnx.decoder_stack)
class TransformerDecoderStack(TransformerDecoder):
    """A ``TransformerDecoder`` of ``num_layers`` independently initialised ``TransformerDecoderLayer``\\ s (YAML's
    ``transformer_decoder``, a node with two inputs ``[target, memory]``).

    Args:
        d_model: model width.
        nhead: attention heads.
        num_layers: how many decoder layers.
        dim_feedforward: feed-forward width.
        dropout: dropout probability.
        activation: ``'relu'`` or ``'gelu'``.
        layer_norm_eps: the LayerNorms' eps.
        batch_first: ``(N, L, E)`` inputs (the default here).
        norm_first: pre-norm layers.
        bias: biases in linear layers, attention and LayerNorms.
        norm: a final LayerNorm.
        causal: the target attends only to itself and earlier positions.

    Its repr and state dict are those of ``nn.TransformerDecoder(layer, num_layers, norm)``.
    """

    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True, norm: bool = False,
                 device=None, dtype=None, *, causal: bool = False):
        Module.__init__(self)
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  device=device, dtype=dtype)
        self.layers = ModuleList([TransformerDecoderLayer(d_model, nhead, **kw) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype) if norm else None
        self.causal = causal

    def _get_name(self) -> str:
        return "TransformerDecoder"

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,  # noqa: PLR0913
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False):
        if self.causal:
            length = _seq_len(tgt, self.layers[0].self_attn.batch_first)
            tgt_mask, tgt_is_causal = causal_attn_mask(tgt_mask, length, length), True
        return super().forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                               tgt_is_causal, memory_is_causal)

    @staticmethod
    def infer_shape(args, tgt, memory=None):
        """``[(seq, d_model), (mem_seq, d_model)] -> (seq, d_model)``, ``num_layers`` decoder layers."""
        if memory is None:
            raise ShapeProblem("transformer_decoder takes two inputs: [target, memory]")
        if len(memory) != 2 or len(tgt) != 2 or memory[1] != tgt[1]:
            raise ShapeProblem(f"the memory must be (sequence, d_model) per sample like the target {fmt(tgt)}, "
                               f"found {fmt(memory)}")
        return _stack_inferred(args, tgt, "transformer_decoder", 2)
