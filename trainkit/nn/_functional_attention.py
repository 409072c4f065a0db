"""``scaled_dot_product_attention`` and ``multi_head_attention_forward`` of ``trainkit.nn.functional``.

PyTorch's semantics and layouts. The attention itself is one fused node
(:mod:`trainkit.autograd.ops.attention`) of batched GEMMs over (batch x heads),
except when the attention weights are asked for (``need_weights``): then, as
PyTorch does, the weights are built with separate matmul/softmax/dropout nodes
so that they are an output with a gradient.
"""
from __future__ import annotations

import math

import numpy as np

from trainkit.autograd.ops import attention as _attn
from trainkit.autograd.ops import reduce as _rd
from trainkit.autograd.ops.matmul import linear, matmul
from trainkit.autograd.random import default_generator
from trainkit.autograd.tensor import Tensor

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def _as_mask(mask, like: Tensor):
    """``(keep, additive)``: a boolean mask as an ndarray (True: attend), a float one as a Tensor of like's dtype."""
    if mask is None:
        return None, None
    arr = mask._array if isinstance(mask, Tensor) else np.asarray(mask)
    if arr.dtype == np.bool_:
        return arr, None
    if not isinstance(mask, Tensor):
        mask = Tensor(arr)
    if mask._array.dtype != like._array.dtype:
        mask = mask.to(like.dtype)
    return None, mask


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,  # noqa: PLR0913
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(query @ keyᵀ * scale + mask) @ value`` over the last two dimensions (PyTorch's semantics).

    Args:
        query: ``(..., L, E)``; key ``(..., S, E)``; value ``(..., S, Ev)`` (leading dimensions broadcast).
        attn_mask: boolean (True: the position takes part) or float (added to the scores), broadcastable
            to ``(..., L, S)``.
        dropout_p: dropout probability on the attention weights (applied whenever > 0, as in PyTorch).
        is_causal: query i attends keys ``j <= i`` (top-left aligned); no ``attn_mask`` with it.
        scale: defaults to ``1 / sqrt(E)``.
        enable_gqa: grouped-query attention is not supported (NotImplementedError).

    A query row whose every key is masked gives zeros, as PyTorch's CPU kernel does.
    """
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported by trainkit")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query and key need the same last dimension, got "
                           f"{tuple(query.shape)} and {tuple(key.shape)}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: key and value need the same sequence length, got "
                           f"{tuple(key.shape)} and {tuple(value.shape)}")
    if not 0 <= dropout_p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    keep, additive = _as_mask(attn_mask, query)
    return _attention(query, key, value, keep, additive, is_causal, dropout_p,
                      1.0 / math.sqrt(query.shape[-1]) if scale is None else scale)


def _attention(q, k, v, keep, additive, causal: bool, dropout_p: float, scale: float) -> Tensor:
    """The fused node (a probability-1 dropout zeroes everything, as F.dropout does)."""
    inputs = (q, k, v) if additive is None else (q, k, v, additive)
    if dropout_p >= 1:
        return _attn.ScaledDotProductAttention.apply(*inputs, scale=scale, keep=keep, causal=causal) * 0.0
    return _attn.ScaledDotProductAttention.apply(*inputs, scale=scale, keep=keep, causal=causal, dropout_p=dropout_p,
                                                 generator=default_generator() if dropout_p > 0 else None)


def _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """PyTorch's ``_mha_shape_check``: whether the input is batched; AssertionErrors as PyTorch's."""
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise AssertionError("For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                                 f"{key.ndim}-D and {value.ndim}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise AssertionError("For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                                 f"found {key_padding_mask.ndim}-D tensor instead")
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise AssertionError("For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                                 f"found {attn_mask.ndim}-D tensor instead")
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError("For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                                 f"{key.ndim}-D and {value.ndim}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise AssertionError("For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                                 f"found {key_padding_mask.ndim}-D tensor instead")
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise AssertionError("For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                                     f"but found {attn_mask.ndim}-D tensor instead")
            expected = (num_heads, query.shape[0], key.shape[0])
            if attn_mask.ndim == 3 and tuple(attn_mask.shape) != expected:
                raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got {tuple(attn_mask.shape)}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D query tensor")


def _mask_arrays(mask, bsz: int, heads: int, tgt: int, src: int, kind: str):
    """A MHA mask as ``(keep, additive)`` broadcastable to ``(N, H, L, S)`` (bool True: masked out)."""
    if mask is None:
        return None, None
    arr = mask._array if isinstance(mask, Tensor) else np.asarray(mask)
    if kind == "key_padding_mask":
        if tuple(arr.shape) != (bsz, src):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src)}, but got {tuple(arr.shape)}")
        shape = (bsz, 1, 1, src)
    elif arr.ndim == 2:
        if tuple(arr.shape) != (tgt, src):
            raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(arr.shape)}, but should be {(tgt, src)}.")
        shape = (1, 1, tgt, src)
    else:
        if tuple(arr.shape) != (bsz * heads, tgt, src):
            raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(arr.shape)}, but should be "
                               f"{(bsz * heads, tgt, src)}.")
        shape = (bsz, heads, tgt, src)
    if arr.dtype == np.bool_:
        return ~arr.reshape(shape), None
    if arr.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {kind} are supported")
    t = mask if isinstance(mask, Tensor) else Tensor(arr)
    return None, t.reshape(shape)


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int,  # noqa: PLR0913
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn: bool,
                                 dropout_p: float, out_proj_weight, out_proj_bias, training: bool = True,
                                 key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                                 use_separate_proj_weight: bool = False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights: bool = True, is_causal: bool = False):
    """Multi-head attention on sequence-first ``(L, N, E)`` (or unbatched ``(L, E)``) query/key/value.

    PyTorch's function: projections (packed ``in_proj_weight`` or separate
    ``q/k/v_proj_weight``), ``num_heads`` heads, masks (``attn_mask`` ``(L, S)`` or
    ``(N*num_heads, L, S)``, ``key_padding_mask`` ``(N, S)``; bool True = masked
    out, float = added), dropout on the weights in training, the output
    projection. Returns ``(output, weights)``: weights ``(N, L, S)`` averaged over
    heads (``(N, num_heads, L, S)`` without averaging) when ``need_weights``,
    else None. ``is_causal`` is PyTorch's hint that ``attn_mask`` is causal.
    ``bias_k``/``bias_v``, ``add_zero_attn`` and ``static_k``/``static_v`` are not supported.
    """
    if bias_k is not None or bias_v is not None or add_zero_attn or static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: bias_k/bias_v, add_zero_attn and static_k/static_v "
                                  "are not supported by trainkit")
    return mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias, dropout_p,
               out_proj_weight, out_proj_bias, training, key_padding_mask, need_weights, attn_mask,
               use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, average_attn_weights,
               is_causal, batch_first=False)


def mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias, dropout_p,  # noqa: PLR0913
        out_proj_weight, out_proj_bias, training, key_padding_mask, need_weights, attn_mask, separate, q_proj_weight,
        k_proj_weight, v_proj_weight, average_attn_weights, is_causal, batch_first: bool):
    """:func:`multi_head_attention_forward` for either layout (``batch_first``: ``(N, L, E)`` in and out).

    The work runs batch first: a ``(N, L, E)`` input needs no transpose copies, and
    self-attention's one packed projection feeds the fused attention node as a view.
    """
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    same_kv, self_attn = key is value, query is key and key is value
    bdim = 0 if batch_first else 1
    if not batched:
        query = query.unsqueeze(0)
        key = query if self_attn else key.unsqueeze(0)
        value = key if same_kv else value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0) if isinstance(key_padding_mask, Tensor) else \
                np.asarray(key_padding_mask)[None]
    elif not batch_first:  # views: the linear layers make their rows contiguous once
        query = query.transpose(0, 1)
        key = query if self_attn else key.transpose(0, 1)
        value = key if same_kv else value.transpose(0, 1)
    bsz, tgt, embed_dim = query.shape
    src = key.shape[1]
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    seq_first = (lambda t: tuple(t.shape[1::-1]) + tuple(t.shape[2:]))  # noqa: E731 - shapes in PyTorch's messages
    if separate:
        if seq_first(key)[:2] != seq_first(value)[:2]:
            raise AssertionError(f"key's sequence and batch dims {seq_first(key)[:2]} do not match value's "
                                 f"{seq_first(value)[:2]}")
    elif tuple(key.shape) != tuple(value.shape):
        raise AssertionError(f"key shape {seq_first(key)} does not match value shape {seq_first(value)}")
    causal = is_causal and key_padding_mask is None and not need_weights
    keep_a, add_a = (None, None) if causal else _mask_arrays(attn_mask, bsz, num_heads, tgt, src, "attn_mask")
    keep_k, add_k = _mask_arrays(key_padding_mask, bsz, num_heads, tgt, src, "key_padding_mask")
    keep = keep_a if keep_k is None else (keep_k if keep_a is None else keep_a & keep_k)
    additive = add_a if add_k is None else (add_k if add_a is None else add_a + add_k)
    if not training:
        dropout_p = 0.0
    scale = 1.0 / math.sqrt(head_dim)
    if self_attn and not separate:  # one GEMM; q, k, v are views of it: (3, N, H, L, d)
        qkv = linear(query, in_proj_weight, in_proj_bias).reshape(bsz, tgt, 3, num_heads, head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        if need_weights:
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            out = _attention_packed(qkv, keep, additive, causal, dropout_p, scale)
    else:
        q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias, separate, q_proj_weight,
                                 k_proj_weight, v_proj_weight)
        q, k, v = (t.reshape(bsz, t.shape[1], num_heads, head_dim).permute(0, 2, 1, 3) for t in (q, k, v))
        if not need_weights:
            out = _attention(q, k, v, keep, additive, causal, dropout_p, scale)
    weights = None
    if need_weights:
        weights = _attention_weights(q, k, keep, additive, dropout_p)
        out = matmul(weights, v)
    out = linear(out.permute(0, 2, 1, 3).reshape(bsz, tgt, embed_dim), out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = weights.mean(dim=1)
    if not batched:
        return out.squeeze(0), None if weights is None else weights.squeeze(0)
    return (out if batch_first else out.transpose(0, 1)), weights


def _attention_packed(qkv, keep, additive, causal: bool, dropout_p: float, scale: float) -> Tensor:
    """The fused node on self-attention's stacked ``qkv`` (one input, one gradient array)."""
    inputs = (qkv,) if additive is None else (qkv, additive)
    gen = default_generator() if 0 < dropout_p < 1 else None
    out = _attn.ScaledDotProductAttention.apply(*inputs, scale=scale, keep=keep, causal=causal,
                                                dropout_p=dropout_p if dropout_p < 1 else 0.0, generator=gen,
                                                packed=True)
    return out * 0.0 if dropout_p >= 1 else out


def _in_projection(query, key, value, w, b, separate: bool, wq, wk, wv):
    """q, k, v projected, each ``(N, L, E)``."""
    e = query.shape[-1]
    if not separate:
        if key is value:
            kv = linear(key, w[e:], None if b is None else b[e:])
            return linear(query, w[:e], None if b is None else b[:e]), kv[..., :e], kv[..., e:]
        wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    bq = bk = bv = None
    if b is not None:
        bq, bk, bv = b[:e], b[e:2 * e], b[2 * e:]
    return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)


def _attention_weights(q, k, keep, additive, dropout_p: float):
    """Softmax attention weights as separate nodes (PyTorch's need_weights path): ``(N, H, L, S)``."""
    from trainkit.nn.functional import dropout

    scores = matmul(q * math.sqrt(1.0 / float(q.shape[-1])), k.transpose(-2, -1))
    if additive is not None:
        scores = scores + additive
    if keep is not None:
        scores = scores + Tensor(np.where(keep, 0.0, -np.inf).astype(scores._array.dtype))
    weights = _rd.Softmax.apply(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return weights
