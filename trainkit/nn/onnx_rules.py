"""ONNX export rules of the built-in layers, named by each layer's ``@layer(..., onnx=...)`` declaration.

A rule is ``rule(layer, g, *inputs) -> output name(s)``: ``layer`` is the module
instance (its weights and arguments), ``g`` the exporter's graph builder
(:class:`trainkit.onnx.builder.OnnxGraph`: ``g.op("Conv", x, w, strides=[1, 1])``,
``g.tensor(param)``, ``g.shape(x)``), ``inputs`` the ONNX value names of the
layer's arguments in the order it is called with (a nested tuple stays a tuple;
None stays None). It returns names in the structure of the layer's output (an
LSTM: ``(output, (h_n, c_n))``). Rules only describe nodes; nothing here imports
``onnx``, so the layer modules stay importable without it.

Choices: batch norm is written as ``BatchNormalization`` with its running
statistics (onnxruntime folds it into the convolution before it); dropout is
the identity (export is for inference).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TrainkitError

__all__ = ["linear", "conv", "conv_transpose", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "global_avgpool",
           "batchnorm", "identity", "flatten", "unflatten", "activation", "add", "mul", "concat", "layernorm",
           "groupnorm", "instancenorm", "upsample", "embedding", "recurrent", "attention", "encoder_layer",
           "decoder_layer", "encoder_stack", "decoder_stack", "positional_embedding", "token_position_embedding",
           "patch_embedding", "class_token", "sequence_pool", "NotExportable", "softmax_dim"]


class NotExportable(TrainkitError):
    """A layer set up in a way ONNX cannot express (``padding_mode='circular'`` before opset 19...)."""


def _n(v, k: int) -> list:
    return [int(x) for x in v] if isinstance(v, (list, tuple)) else [int(v)] * k


def _bias(layer, g, n: int, name: str = "bias"):
    b = getattr(layer, name, None)
    return g.tensor(b, name) if b is not None else g.constant(np.zeros(n, np.float32), name=name)


def _pads(layer, g, x, k: int) -> list:
    """Explicit begin/end pads of a convolution's ``padding`` (int, list, 'same' or 'valid')."""
    p = layer.padding
    if p == "valid":
        return [0] * (2 * k)
    if p == "same":
        kernel, dil = _n(layer.kernel_size, k), _n(layer.dilation, k)
        total = [d * (kk - 1) for d, kk in zip(dil, kernel)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    p = _n(p, k)
    return p + p


# ----------------------------------------------------------------------------- linear, convolution, pooling
def linear(layer, g, x):
    """Linear as ``Gemm`` on (N, in) input, else ``MatMul`` by the transposed weight plus the bias."""
    if g.known(x) and g.rank(x) == 2:
        ins = [x, g.tensor(layer.weight, "weight")] + ([g.tensor(layer.bias, "bias")] if layer.bias is not None else [])
        return g.op("Gemm", *ins, transB=1)
    y = g.op("MatMul", x, g.constant(layer.weight.detach().numpy().T, name="weight_t"))
    return g.op("Add", y, g.tensor(layer.bias, "bias")) if layer.bias is not None else y



def conv(layer, g, x):
    """Conv1d/Conv2d as ``Conv`` (a non-zero ``padding_mode`` as a ``Pad`` before it)."""
    k = len(layer.kernel_size)
    pads = _pads(layer, g, x, k)
    mode = getattr(layer, "padding_mode", "zeros")
    if mode != "zeros" and any(pads):
        onnx_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        if onnx_mode == "wrap" and g.opset < 19:
            raise NotExportable(f"padding_mode='circular' needs --opset 19 or newer (ONNX Pad's wrap mode)")
        full = [0, 0] + pads[:k] + [0, 0] + pads[k:]
        x = g.op("Pad", x, g.ints(full, "pads"), mode=onnx_mode)
        pads = [0] * (2 * k)
    ins = [x, g.tensor(layer.weight, "weight")]
    if layer.bias is not None:
        ins.append(g.tensor(layer.bias, "bias"))
    return g.op("Conv", *ins, kernel_shape=list(layer.kernel_size), strides=_n(layer.stride, k), pads=pads,
                dilations=_n(layer.dilation, k), group=int(layer.groups))


def conv_transpose(layer, g, x):
    """ConvTranspose2d as ``ConvTranspose`` (weight layout (in, out/groups, kH, kW) as ONNX's)."""
    k = len(layer.kernel_size)
    p = _n(layer.padding, k)
    ins = [x, g.tensor(layer.weight, "weight")]
    if layer.bias is not None:
        ins.append(g.tensor(layer.bias, "bias"))
    return g.op("ConvTranspose", *ins, kernel_shape=list(layer.kernel_size), strides=_n(layer.stride, k),
                pads=p + p, dilations=_n(layer.dilation, k), group=int(layer.groups),
                output_padding=_n(layer.output_padding, k))


def _pool_k(g, x) -> int:
    return g.rank(x) - 2


def maxpool(layer, g, x):
    """MaxPool1d/2d as ``MaxPool``."""
    k = _pool_k(g, x)
    p = _n(layer.padding, k)
    return g.op("MaxPool", x, kernel_shape=_n(layer.kernel_size, k), strides=_n(layer.stride, k), pads=p + p,
                dilations=_n(getattr(layer, "dilation", 1), k), ceil_mode=int(bool(getattr(layer, "ceil_mode", 0))))


def avgpool(layer, g, x):
    """AvgPool1d/2d as ``AveragePool`` (``count_include_pad`` kept)."""
    k = _pool_k(g, x)
    p = _n(layer.padding, k)
    return g.op("AveragePool", x, kernel_shape=_n(layer.kernel_size, k), strides=_n(layer.stride, k), pads=p + p,
                ceil_mode=int(bool(layer.ceil_mode)), count_include_pad=int(bool(layer.count_include_pad)))


def _adaptive(layer, g, x, op_type: str, global_type: str):
    h, w = g.shape(x)[-2:]
    oh, ow = [h if o is None else o for o in _n(layer.output_size, 2)] if not isinstance(layer.output_size, int) \
        else (layer.output_size, layer.output_size)
    if (oh, ow) == (1, 1):
        return g.op(global_type, x)
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return g.op(op_type, x, kernel_shape=[kh, kw], strides=[kh, kw])
    # PyTorch's irregular windows [floor(i*H/o), ceil((i+1)*H/o)): rows then columns (mean and max are separable)
    reduce = "ReduceMean" if op_type == "AveragePool" else "ReduceMax"
    for axis, size, out in ((2, h, oh), (3, w, ow)):
        parts = []
        for i in range(out):
            lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
            part = g.op("Slice", x, g.ints([lo]), g.ints([hi]), g.ints([axis]))
            parts.append(g.reduce(reduce, part, [axis], True))
        x = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=axis)
    return x


def adaptive_avgpool(layer, g, x):
    """AdaptiveAvgPool2d as ``GlobalAveragePool`` or a regular ``AveragePool``."""
    return _adaptive(layer, g, x, "AveragePool", "GlobalAveragePool")


def adaptive_maxpool(layer, g, x):
    """AdaptiveMaxPool2d as ``GlobalMaxPool`` or a regular ``MaxPool``."""
    if getattr(layer, "return_indices", False):
        raise NotExportable("adaptive_maxpool2d with return_indices has no ONNX form")
    return _adaptive(layer, g, x, "MaxPool", "GlobalMaxPool")


def global_avgpool(layer, g, x):
    """global_avgpool: (N, C, H, W) -> (N, C) as ``GlobalAveragePool`` + ``Flatten``."""
    return g.op("Flatten", g.op("GlobalAveragePool", x), axis=1)


# ----------------------------------------------------------------------------- normalization
def batchnorm(layer, g, x):
    """BatchNorm1d/2d in eval mode as ``BatchNormalization`` with the running statistics."""
    if layer.running_mean is None:
        raise NotExportable("batch norm with track_running_stats=False normalizes each batch by its own "
                            "statistics; export needs running statistics")
    c = layer.num_features
    scale = g.tensor(layer.weight, "weight") if layer.weight is not None else g.constant(np.ones(c, np.float32))
    bias = _bias(layer, g, c)
    return g.op("BatchNormalization", x, scale, bias, g.tensor(layer.running_mean, "running_mean"),
                g.tensor(layer.running_var, "running_var"), epsilon=float(layer.eps))


def layernorm(layer, g, x):
    """LayerNorm as ``LayerNormalization`` over its trailing ``normalized_shape``."""
    shape = tuple(layer.normalized_shape)
    w = getattr(layer, "weight", None)
    scale = g.tensor(w, "weight") if w is not None else g.constant(np.ones(shape, np.float32), name="ones")
    bias = _bias(layer, g, 0) if getattr(layer, "bias", None) is not None else \
        g.constant(np.zeros(shape, np.float32), name="zeros")
    return g.op("LayerNormalization", x, scale, bias, axis=-len(shape), epsilon=float(layer.eps))


def _channel_affine(g, y, layer, rank: int):
    """``y * weight + bias`` with (C,) parameters broadcast over (N, C, ...)."""
    if getattr(layer, "weight", None) is None:
        return y
    shape = [-1] + [1] * (rank - 2)
    w = g.constant(layer.weight.detach().numpy().reshape(shape), name="weight")
    y = g.op("Mul", y, w)
    if getattr(layer, "bias", None) is not None:
        y = g.op("Add", y, g.constant(layer.bias.detach().numpy().reshape(shape), name="bias"))
    return y


def groupnorm(layer, g, x):
    """GroupNorm: statistics over (C/G, ...) per group, written out (ONNX's own op changed meaning in opset 21)."""
    rank = g.rank(x)
    xr = g.reshape(x, [g.shape(x)[0], layer.num_groups, -1], g.shape(x))
    mean = g.reduce("ReduceMean", xr, [2], True)
    d = g.op("Sub", xr, mean)
    var = g.reduce("ReduceMean", g.op("Mul", d, d), [2], True)
    y = g.op("Div", d, g.op("Sqrt", g.op("Add", var, g.constant(np.float32(layer.eps)))))
    y = g.op("Reshape", y, g.op("Shape", x))
    return _channel_affine(g, y, layer, rank)


def instancenorm(layer, g, x):
    """InstanceNorm1d/2d (instance statistics) as ``InstanceNormalization``."""
    if getattr(layer, "track_running_stats", False):
        raise NotExportable("instance norm with track_running_stats=True uses running statistics in eval mode; "
                            "ONNX's InstanceNormalization has none")
    c = g.shape(x)[1]
    w = getattr(layer, "weight", None)
    scale = g.tensor(w, "weight") if w is not None else g.constant(np.ones(c, np.float32), name="ones")
    bias = g.tensor(layer.bias, "bias") if getattr(layer, "bias", None) is not None else \
        g.constant(np.zeros(c, np.float32), name="zeros")
    return g.op("InstanceNormalization", x, scale, bias, epsilon=float(layer.eps))


# ----------------------------------------------------------------------------- shape layers, merges
def identity(layer, g, x, *rest):
    """Dropout (any kind) and Identity: the input itself (export is for inference)."""
    return x


def flatten(layer, g, x):
    """Flatten(start_dim, end_dim) as ``Flatten`` (the usual 1..-1) or a ``Reshape``."""
    rank = g.rank(x)
    s, e = layer.start_dim % rank, layer.end_dim % rank
    if s == 1 and e == rank - 1:
        return g.op("Flatten", x, axis=1)
    shape = g.shape(x)
    return g.reshape(x, list(shape[:s]) + [-1] + list(shape[e + 1:]))


def unflatten(layer, g, x):
    """Unflatten(dim, sizes) as a ``Reshape``."""
    shape = g.shape(x)
    d = layer.dim % len(shape)
    return g.reshape(x, list(shape[:d]) + list(layer.unflattened_size) + list(shape[d + 1:]))


def add(layer, g, *xs):
    """The ``add`` merge node: a chain of ``Add`` in the listed order."""
    out = xs[0]
    for x in xs[1:]:
        out = g.op("Add", out, x)
    return out


def mul(layer, g, *xs):
    """The ``mul`` merge node: a chain of ``Mul``."""
    out = xs[0]
    for x in xs[1:]:
        out = g.op("Mul", out, x)
    return out


def concat(layer, g, *xs):
    """The ``concat`` merge node as ``Concat``."""
    return g.op("Concat", *xs, axis=int(layer.dim))


def upsample(layer, g, x):
    """Upsample (nearest, bilinear) as ``Resize`` with PyTorch's coordinate rules; scales keep the batch dynamic."""
    shape = g.shape(x)
    k = len(shape) - 2
    if layer.scale_factor is not None:
        sf = layer.scale_factor
        scales = [float(v) for v in sf] if isinstance(sf, (tuple, list)) else [float(sf)] * k
    else:
        size = _n(layer.size, k)
        scales = [o / i for o, i in zip(size, shape[2:])]
    mode = layer.mode
    if mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode in ("bilinear", "linear"):
        ctm = "align_corners" if layer.align_corners else "pytorch_half_pixel"
        attrs = dict(mode="linear", coordinate_transformation_mode=ctm)
    else:
        raise NotExportable(f"upsample mode {mode!r} has no export rule (nearest and bilinear do)")
    return g.op("Resize", x, "", g.constant(np.array([1.0, 1.0] + scales, np.float32), name="scales"), **attrs)


# ----------------------------------------------------------------------------- activations
def softmax_dim(dim, rank: int) -> int:
    """PyTorch's implicit softmax dimension when ``dim`` is None (0 for 0-, 1- and 3-D input, else 1)."""
    if dim is not None:
        return int(dim)
    return 0 if rank in (0, 1, 3) else 1


def _gelu(g, x, approximate: str):
    if g.opset >= 20:
        return g.op("Gelu", x, approximate=approximate)
    c = lambda v: g.constant(np.float32(v))  # noqa: E731
    if approximate == "tanh":
        inner = g.op("Mul", c(math.sqrt(2 / math.pi)),
                     g.op("Add", x, g.op("Mul", c(0.044715), g.op("Mul", x, g.op("Mul", x, x)))))
        return g.op("Mul", g.op("Mul", c(0.5), x), g.op("Add", c(1.0), g.op("Tanh", inner)))
    erf = g.op("Erf", g.op("Div", x, c(math.sqrt(2.0))))
    return g.op("Mul", g.op("Mul", c(0.5), x), g.op("Add", c(1.0), erf))


def activation(layer, g, x):
    """Every built-in activation layer, by class name."""
    name = type(layer).__name__
    c = lambda v: g.constant(np.float32(v))  # noqa: E731
    if name == "ReLU":
        return g.op("Relu", x)
    if name == "LeakyReLU":
        return g.op("LeakyRelu", x, alpha=float(layer.negative_slope))
    if name == "GELU":
        return _gelu(g, x, layer.approximate)
    if name == "Sigmoid":
        return g.op("Sigmoid", x)
    if name == "Tanh":
        return g.op("Tanh", x)
    if name == "Softmax":
        return g.op("Softmax", x, axis=softmax_dim(layer.dim, g.rank(x)))
    if name == "LogSoftmax":
        return g.op("LogSoftmax", x, axis=softmax_dim(layer.dim, g.rank(x)))
    if name == "SiLU":
        return g.op("Mul", x, g.op("Sigmoid", x))
    if name == "ELU":
        return g.op("Elu", x, alpha=float(layer.alpha))
    if name == "SELU":
        return g.op("Selu", x, alpha=1.6732632423543772, gamma=1.0507009873554805)
    if name == "PReLU":
        w = layer.weight.detach().numpy()
        rank = g.rank(x)
        slope = w.reshape([-1] + [1] * (rank - 2)) if w.size > 1 and rank > 2 else w
        return g.op("PRelu", x, g.constant(slope, name="slope"))
    if name == "Softplus":
        bx = g.op("Mul", x, c(layer.beta))
        soft = g.op("Div", g.op("Softplus", bx), c(layer.beta))
        return g.op("Where", g.op("Greater", bx, c(layer.threshold)), x, soft)
    if name == "Mish":
        return g.op("Mul", x, g.op("Tanh", g.op("Softplus", x)))
    if name == "Hardswish":
        return g.op("HardSwish", x)
    if name == "Hardtanh":
        return g.op("Clip", x, c(layer.min_val), c(layer.max_val))
    raise NotExportable(f"no export rule for activation {name}")


# ----------------------------------------------------------------------------- sequence layers
def embedding(layer, g, ids):
    """Embedding as ``Gather`` of the weight rows (``max_norm`` renormalizes weights and is refused)."""
    if layer.max_norm is not None:
        raise NotExportable("embedding with max_norm rewrites its weights during forward; export without it")
    return g.op("Gather", g.tensor(layer.weight, "weight"), ids, axis=0)


#: PyTorch's gate rows -> ONNX's: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}


def _gates(w: np.ndarray, order) -> np.ndarray:
    return np.concatenate([b for b in (np.split(w, len(order), axis=0)[i] for i in order)], axis=0)


def recurrent(layer, g, x, hx=None):
    """RNN/LSTM/GRU (any layers, directions, batch_first) as one ONNX ``RNN``/``LSTM``/``GRU`` node per layer."""
    mode = layer.mode
    if layer.proj_size:
        raise NotExportable("LSTM with proj_size has no ONNX LSTM form")
    if g.rank(x) != 3:
        raise NotExportable("export takes batched (3-D) input for recurrent layers")
    order = _GATE_ORDER[mode]
    nd = 2 if layer.bidirectional else 1
    h = layer.hidden_size
    if layer.batch_first:
        x = g.op("Transpose", x, perm=[1, 0, 2])
    h0 = c0 = None
    if hx is not None:
        h0, c0 = (hx if mode == "LSTM" else (hx, None))
    hs, cs = [], []
    for k in range(layer.num_layers):
        W, R, B = [], [], []
        for suffix in ([""] if nd == 1 else ["", "_reverse"]):
            p = lambda n: getattr(layer, f"{n}_l{k}{suffix}").detach().numpy()  # noqa: E731
            W.append(_gates(p("weight_ih"), order))
            R.append(_gates(p("weight_hh"), order))
            if layer.bias:
                B.append(np.concatenate([_gates(p("bias_ih"), order), _gates(p("bias_hh"), order)]))
            else:
                B.append(np.zeros(2 * len(order) * h, np.float32))
        ins = [x, g.constant(np.stack(W), name=f"W_l{k}"), g.constant(np.stack(R), name=f"R_l{k}"),
               g.constant(np.stack(B), name=f"B_l{k}"), ""]
        attrs = {"hidden_size": h, "direction": "bidirectional" if nd == 2 else "forward"}
        if h0 is not None:
            ins.append(g.op("Slice", h0, g.ints([k * nd]), g.ints([(k + 1) * nd]), g.ints([0])))
        elif mode == "LSTM" and c0 is not None:
            ins.append("")
        if mode == "LSTM":
            if c0 is not None:
                ins.append(g.op("Slice", c0, g.ints([k * nd]), g.ints([(k + 1) * nd]), g.ints([0])))
            y, yh, yc = g.op("LSTM", *ins, outputs=3, **attrs)
            cs.append(yc)
        elif mode == "GRU":
            y, yh = g.op("GRU", *ins, outputs=2, linear_before_reset=1, **attrs)
        else:
            act = "Tanh" if mode == "RNN_TANH" else "Relu"
            y, yh = g.op("RNN", *ins, outputs=2, activations=[act] * nd, **attrs)
        hs.append(yh)
        # Y is (seq, directions, batch, hidden): the next layer takes (seq, batch, directions * hidden)
        x = g.squeeze(y, [1]) if nd == 1 else g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]),
                                                   g.ints([0, 0, -1]))
    out = g.op("Transpose", x, perm=[1, 0, 2]) if layer.batch_first else x
    h_n = hs[0] if len(hs) == 1 else g.op("Concat", *hs, axis=0)
    if mode == "LSTM":
        c_n = cs[0] if len(cs) == 1 else g.op("Concat", *cs, axis=0)
        return out, (h_n, c_n)
    return out, h_n


# ----------------------------------------------------------------------------- attention and transformer blocks
def _mask_const(g, mask_name, causal: bool, length: int, source: int):
    """The additive (L, S) mask: a given float/bool mask (True = masked) and/or the causal upper triangle."""
    out = None
    if mask_name is not None:
        if g.dtype(mask_name) == np.bool_:
            out = g.op("Where", mask_name, g.constant(np.float32(-np.inf)), g.constant(np.float32(0.0)))
        else:
            out = mask_name
    if causal:
        tri = g.constant(np.where(~np.tri(length, source, dtype=bool), -np.inf, 0.0).astype(np.float32),
                         name="causal_mask")
        out = tri if out is None else g.op("Add", out, tri)
    return out


def _project(g, x, w: np.ndarray, b):
    y = g.op("MatMul", x, g.constant(np.ascontiguousarray(w.T), name="proj_t"))
    return g.op("Add", y, g.constant(b, name="proj_b")) if b is not None else y


def attention(layer, g, query, key=None, value=None, key_padding_mask=None, need_weights=True, attn_mask=None,
              average_attn_weights=True, is_causal=False):
    """MultiheadAttention as MatMul/Softmax nodes; reshapes copy the batch and sequence sizes, so both stay dynamic."""
    if key_padding_mask is not None:
        raise NotExportable("multihead attention with key_padding_mask has no export rule")
    if getattr(layer, "bias_k", None) is not None or getattr(layer, "add_zero_attn", False):
        raise NotExportable("multihead attention with add_bias_kv/add_zero_attn has no export rule")
    key = query if key is None else key
    value = key if value is None else value
    if g.known(query) and g.rank(query) != 3:
        raise NotExportable("export takes batched (3-D) input for multihead attention")
    tr = not layer.batch_first
    length, source = g.shape(query)[0 if tr else 1], g.shape(key)[0 if tr else 1]
    if tr:  # work on (N, L, E)
        query, key, value = (g.op("Transpose", t, perm=[1, 0, 2]) for t in (query, key, value))
    e, h = layer.embed_dim, layer.num_heads
    hd = e // h
    if layer._qkv_same_embed_dim:
        w = layer.in_proj_weight.detach().numpy()
        wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    else:
        wq, wk, wv = (getattr(layer, f"{n}_proj_weight").detach().numpy() for n in "qkv")
    b = layer.in_proj_bias.detach().numpy() if layer.in_proj_bias is not None else None
    bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
    heads = g.ints([0, 0, h, hd], "heads")
    q = g.op("Transpose", g.op("Reshape", _project(g, query, wq, bq), heads), perm=[0, 2, 1, 3])
    k = g.op("Transpose", g.op("Reshape", _project(g, key, wk, bk), heads), perm=[0, 2, 3, 1])
    v = g.op("Transpose", g.op("Reshape", _project(g, value, wv, bv), heads), perm=[0, 2, 1, 3])
    scores = g.op("Mul", g.op("MatMul", q, k), g.constant(np.float32(1.0 / math.sqrt(hd))))
    causal = bool(getattr(layer, "causal", False)) or (bool(is_causal) and attn_mask is None)
    mask = _mask_const(g, attn_mask, causal, length, source)
    if mask is not None:
        scores = g.op("Add", scores, mask)
    p = g.op("Softmax", scores, axis=-1)
    o = g.op("Reshape", g.op("Transpose", g.op("MatMul", p, v), perm=[0, 2, 1, 3]), g.ints([0, 0, e], "embed"))
    ob = layer.out_proj.bias.detach().numpy() if layer.out_proj.bias is not None else None
    out = _project(g, o, layer.out_proj.weight.detach().numpy(), ob)
    if tr:
        out = g.op("Transpose", out, perm=[1, 0, 2])
    weights = None
    if need_weights:
        weights = g.reduce("ReduceMean", p, [1], False) if average_attn_weights else p
    return out, weights


def _act(g, fn, x):
    rule = getattr(fn, "__name__", None)
    if rule == "relu":
        return g.op("Relu", x)
    if rule == "gelu":
        return _gelu(g, x, "none")
    from ..registry import LAYERS
    decl = LAYERS.of(type(fn))
    if decl is not None and decl.onnx is not None:
        return decl.onnx(fn, g, x)
    raise NotExportable(f"transformer activation {fn!r} has no export rule")


def _ff(layer, g, x):
    x = g.like(x, x) if g.known(x) else x
    return linear(layer.linear2, g, _act(g, layer.activation, linear(layer.linear1, g, x)))


def encoder_layer(layer, g, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
    """TransformerEncoderLayer (pre- or post-norm) from the attention, LayerNorm and Linear rules."""
    if src_key_padding_mask is not None:
        raise NotExportable("src_key_padding_mask has no export rule")
    causal = bool(layer.causal) or bool(is_causal) and src_mask is None

    def sa(x):
        return attention(layer.self_attn, g, g.like(x, src), None, None, attn_mask=src_mask, need_weights=False,
                         is_causal=causal)[0]
    x = src
    if layer.norm_first:
        x = g.op("Add", x, sa(layernorm(layer.norm1, g, x)))
        return g.op("Add", x, _ff(layer, g, layernorm(layer.norm2, g, x)))
    x = layernorm(layer.norm1, g, g.op("Add", x, sa(x)))
    return layernorm(layer.norm2, g, g.op("Add", x, _ff(layer, g, x)))


def decoder_layer(layer, g, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                  memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
    """TransformerDecoderLayer: self-attention, cross-attention over ``memory``, feed-forward."""
    if tgt_key_padding_mask is not None or memory_key_padding_mask is not None:
        raise NotExportable("key padding masks have no export rule")
    causal = bool(layer.causal) or bool(tgt_is_causal) and tgt_mask is None

    def sa(x):
        return attention(layer.self_attn, g, g.like(x, tgt), None, None, attn_mask=tgt_mask, need_weights=False,
                         is_causal=causal)[0]

    def ca(x):
        return attention(layer.multihead_attn, g, g.like(x, tgt), memory, memory, attn_mask=memory_mask,
                         need_weights=False, is_causal=memory_is_causal)[0]

    x = tgt
    if layer.norm_first:
        x = g.op("Add", x, sa(layernorm(layer.norm1, g, x)))
        x = g.op("Add", x, ca(layernorm(layer.norm2, g, x)))
        return g.op("Add", x, _ff(layer, g, layernorm(layer.norm3, g, x)))
    x = layernorm(layer.norm1, g, g.op("Add", x, sa(x)))
    x = layernorm(layer.norm2, g, g.op("Add", x, ca(x)))
    return layernorm(layer.norm3, g, g.op("Add", x, _ff(layer, g, x)))


def encoder_stack(layer, g, src, mask=None, src_key_padding_mask=None, is_causal=None):
    """transformer_encoder: its layers in turn, then its final norm."""
    x = src
    for blk in layer.layers:
        x = g.like(x, src)
        x = encoder_layer(blk, g, x, mask, src_key_padding_mask,
                          bool(is_causal) or bool(getattr(layer, "causal", False)))
    return layernorm(layer.norm, g, x) if layer.norm is not None else x


def decoder_stack(layer, g, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                  memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
    """transformer_decoder: its layers in turn, then its final norm."""
    x = tgt
    for blk in layer.layers:
        x = g.like(x, tgt)
        x = decoder_layer(blk, g, x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                          bool(tgt_is_causal) or bool(getattr(layer, "causal", False)), memory_is_causal)
    return layernorm(layer.norm, g, x) if layer.norm is not None else x


# ----------------------------------------------------------------------------- position and patch layers
def positional_embedding(layer, g, x):
    """PositionalEmbedding: the input plus the table's first ``seq`` rows (the traced length)."""
    length = g.shape(x)[-2]
    return g.op("Add", x, g.constant(layer.weight.detach().numpy()[:length], name="positions"))


def token_position_embedding(layer, g, ids):
    """TokenPositionEmbedding: token rows (``Gather``) plus the first ``seq`` position rows."""
    length = g.shape(ids)[-1]
    tok = g.op("Gather", g.tensor(layer.tok.weight, "tok_weight"), ids, axis=0)
    return g.op("Add", tok, g.constant(layer.pos.weight.detach().numpy()[:length], name="positions"))


def patch_embedding(layer, g, x):
    """PatchEmbedding: its convolution, then (N, E, h, w) -> (N, h*w, E)."""
    if g.rank(x) != 4:
        raise NotExportable("export takes batched (N, C, H, W) input for patch_embedding")
    y = conv(layer.proj, g, x)
    return g.op("Transpose", g.op("Reshape", y, g.ints([0, 0, -1])), perm=[0, 2, 1])


def class_token(layer, g, x):
    """ClassToken: the learned token expanded over the (dynamic) batch, put before the sequence."""
    e = g.shape(x)[-1]
    n = g.op("Slice", g.op("Shape", x), g.ints([0]), g.ints([1]))
    shape = g.op("Concat", n, g.ints([1, e]), axis=0)
    tok = g.op("Expand", g.constant(layer.class_token.detach().numpy().reshape(1, 1, e), name="class_token"), shape)
    return g.op("Concat", tok, x, axis=1)


def sequence_pool(layer, g, x):
    """SequencePool: the mean over the sequence, or its first position."""
    if layer.mode == "mean":
        return g.reduce("ReduceMean", x, [g.rank(x) - 2], False)
    return g.op("Gather", x, g.constant(np.int64(0)), axis=g.rank(x) - 2)
