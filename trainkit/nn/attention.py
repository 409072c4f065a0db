"""``MultiheadAttention`` (PyTorch's arguments, parameter layout, initialisation and masks)."""
from __future__ import annotations

import numpy as np

from trainkit.autograd import device as _device
from trainkit.autograd.tensor import Tensor
from trainkit.nn import init
from trainkit.nn._functional_attention import mha
from trainkit.nn._helpers import np_dtype
from trainkit.nn.linear import Linear
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Float, Inferred, Int, ShapeProblem, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["MultiheadAttention", "NonDynamicallyQuantizableLinear", "causal_attn_mask"]


class NonDynamicallyQuantizableLinear(Linear):
    """A ``Linear`` under the name PyTorch gives the output projection of attention (same repr and keys)."""


def causal_attn_mask(attn_mask, length: int, source: int):
    """``attn_mask`` (None, bool with True = masked, or float) with every key after its query masked too."""
    upper = ~np.tri(length, source, dtype=bool)
    if attn_mask is None:
        return Tensor(upper)
    arr = attn_mask._array if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if arr.dtype == np.bool_:
        return Tensor(arr | upper)
    mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor(arr)
    return mask + Tensor(np.where(upper, -np.inf, 0.0).astype(arr.dtype))


def _check_heads(args, path, ck) -> None:
    heads, embed = args.get("num_heads"), args.get("embed_dim")
    if isinstance(heads, int) and isinstance(embed, int) and embed % heads:
        ck.error(path + ("num_heads",), f"embed_dim {embed} is not divisible by num_heads {heads}")


@layer("multihead_attention", input_arg="embed_dim", input_dim=-1,
       args={"embed_dim": Int(lo=1), "num_heads": Int(lo=1), "dropout": Float(0, 1)},
       exclude=("add_bias_kv", "add_zero_attn", "kdim", "vdim"), defaults={"batch_first": True}, check=_check_heads,
       outputs={"output": (0,), "weights": (1,)},
       example=Example((1, 3, 2), {"num_heads": 2, "causal": True}, name="MultiheadAttention(causal)"), onnx=_onnx.attention)
class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention with input and output projections.

    Args:
        embed_dim: model width ``E`` (split into ``num_heads`` heads of ``E // num_heads``).
        num_heads: parallel attention heads; must divide ``embed_dim``.
        dropout: dropout probability on the attention weights (training only).
        bias: input and output projection biases.
        add_bias_kv: not supported (NotImplementedError when True).
        add_zero_attn: not supported (NotImplementedError when True).
        kdim: features of the keys (default ``embed_dim``); with ``vdim``, a value other than
            ``embed_dim`` gives separate ``q_proj_weight``/``k_proj_weight``/``v_proj_weight``.
        vdim: features of the values (default ``embed_dim``).
        batch_first: inputs and output are ``(N, L, E)`` instead of ``(L, N, E)``.
        causal: (keyword, trainkit's) every call masks each query's later keys, as ``is_causal`` with
            ``Transformer.generate_square_subsequent_mask``; what YAML's ``causal: true`` sets. PyTorch's
            class has no such argument: pass ``attn_mask``/``is_causal`` there.

    Shape:
        ``forward(query (L, N, E), key (S, N, kdim), value (S, N, vdim), key_padding_mask=None,
        need_weights=True, attn_mask=None, average_attn_weights=True, is_causal=False)`` ->
        ``(output (L, N, E), weights (N, L, S) or None)``. ``key_padding_mask (N, S)`` and
        ``attn_mask (L, S)`` or ``(N*num_heads, L, S)``: boolean True masks a position out, a float
        mask is added to the scores. ``key``/``value`` default to ``query`` (self-attention; trainkit's,
        what a YAML node with one input does).

    Attributes:
        in_proj_weight: ``(3E, E)`` (q, k, v rows), xavier_uniform_; in_proj_bias ``(3E,)`` zeros;
        out_proj: ``Linear(E, E)`` with a zero bias.

    In YAML (self-attention on ``(seq, embed_dim)`` per sample; ``batch_first`` defaults to true there, and
    must be) the node's ``output`` is ``(seq, embed_dim)`` and ``weights`` the head-averaged attention
    weights ``(seq, seq)``, computed as PyTorch's ``need_weights=True`` default does; inside a model,
    ``transformer_encoder_layer`` runs the faster fused attention (no weights).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None, *,
                 causal: bool = False):
        super().__init__()
        _device.check_cpu(device)
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported by "
                                      "trainkit")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first, self.causal = num_heads, dropout, batch_first, causal
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        dt = np_dtype(dtype)
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(np.empty((embed_dim, embed_dim), dtype=dt))
            self.k_proj_weight = Parameter(np.empty((embed_dim, self.kdim), dtype=dt))
            self.v_proj_weight = Parameter(np.empty((embed_dim, self.vdim), dtype=dt))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), dtype=dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty((3 * embed_dim,), dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights: bool = True,  # noqa: PLR0913
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        key = query if key is None else key
        value = key if value is None else value
        if self.causal:
            seq = 1 if (self.batch_first and query.ndim == 3) else 0
            attn_mask = causal_attn_mask(attn_mask, query.shape[seq], key.shape[seq])
            is_causal = True
        return mha(query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
                   self.dropout, self.out_proj.weight, self.out_proj.bias, self.training, key_padding_mask,
                   need_weights, attn_mask, not self._qkv_same_embed_dim, self.q_proj_weight, self.k_proj_weight,
                   self.v_proj_weight, average_attn_weights, is_causal, batch_first=self.batch_first)

    def extra_repr(self) -> str:
        return "causal=True" if self.causal else ""

    @staticmethod
    def infer_shape(args, x):
        """Self-attention ``(seq, embed_dim) -> (seq, embed_dim)``; ``weights`` are ``(seq, seq)``."""
        if not args["batch_first"]:
            raise ShapeProblem("multihead_attention: in YAML the batch is dimension 0 of every value: set "
                               "batch_first: true", "batch_first")
        if len(x) != 2:
            raise ShapeProblem(f"multihead_attention needs (sequence, features) input per sample, found {fmt(x)}")
        length, e = x
        if e % args["num_heads"]:
            raise ShapeProblem(f"{e} features do not split into {args['num_heads']} heads", "num_heads")
        params = 4 * e * e + (4 * e if args["bias"] else 0)
        macs = 4 * length * e * e + 2 * length * length * e
        return Inferred((length, e), macs=macs, params=params,
                        outputs={"output": (length, e), "weights": (length, length)})
