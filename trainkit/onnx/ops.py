"""Export rules of the engine ops a plain ``nn.Module.forward`` calls (``x.view``, ``F.relu``, ``a @ b``, ``+``).

Layers with a declared rule are exported whole (see :mod:`trainkit.nn.onnx_rules`);
what a model's own ``forward`` does between them is made of engine ops, each
written here as ONNX nodes by ``rule(op, g, *inputs) -> name``. An op's
arguments are the attributes its constructor stored (``Reshape.shape``,
``Softmax.dim``); the values it saw are in ``g.shape(name)``.
"""
from __future__ import annotations

import numpy as np

from ..autograd.ops import activation as A
from ..autograd.ops import conv as C
from ..autograd.ops import elementwise as E
from ..autograd.ops import layer_norm as LN
from ..autograd.ops import layout as L
from ..autograd.ops import math as M
from ..autograd.ops import matmul as MM
from ..autograd.ops import norm as N
from ..autograd.ops import pool as P
from ..autograd.ops import reduce as R
from ..autograd.ops import shape as S
from .errors import OnnxExportError

__all__ = ["OP_RULES", "op_rule"]


def _unary(op_type):
    return lambda op, g, x: g.op(op_type, x)


def _binary(op_type):
    return lambda op, g, a, b: g.op(op_type, a, b)


def _dims(dim, rank):
    if dim is None:
        return None
    return [int(d) % rank for d in (dim if isinstance(dim, (tuple, list)) else [dim])]


def _reduce(op_type):
    def rule(op, g, x):
        return g.reduce(op_type, x, _dims(op.dim, g.rank(x)), op.keepdim)
    return rule


def _reshape(op, g, x):
    return g.reshape(x, op.shape)


def _permute(op, g, x):
    return g.op("Transpose", x, perm=[int(d) % g.rank(x) for d in op.dims])


def _expand(op, g, x):
    src = g.shape(x)
    target = [(-1 if s == -1 else int(s)) for s in op.shape]
    lead = len(target) - len(src)
    # -1 keeps a size; sizes equal to the input's are written as 1 so a dynamic batch broadcasts through
    out = [1 if (t == -1 or (i >= lead and src[i - lead] == t)) else t for i, t in enumerate(target)]
    return g.op("Expand", x, g.ints(out, "shape"))


def _getitem(op, g, x):
    """Basic indexing (ints, slices with steps, None, Ellipsis) as Slice/Squeeze/Unsqueeze."""
    key = op.key if isinstance(op.key, tuple) else (op.key,)
    shape = g.shape(x)
    if any(not (isinstance(k, (int, np.integer, slice)) or k is None or k is Ellipsis) for k in key):
        raise OnnxExportError("indexing with a tensor or a list (advanced indexing) has no export rule; "
                              "use index_select or gather")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - n_real) + key[i + 1:]
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    dim = 0
    out_dim = 0
    for k in key:
        if k is None:
            unsqueeze.append(out_dim)
            out_dim += 1
            continue
        if isinstance(k, slice):
            if k != slice(None):
                start, stop, step = k.indices(shape[dim])
                if step < 0 and stop < 0:
                    stop = -(2 ** 62)
                starts.append(start); ends.append(stop); axes.append(dim); steps.append(step)  # noqa: E702
            out_dim += 1
        else:
            i = int(k) % shape[dim]
            starts.append(i); ends.append(i + 1); axes.append(dim); steps.append(1)  # noqa: E702
            squeeze.append(dim)
        dim += 1
    y = x
    if axes:
        y = g.op("Slice", y, g.ints(starts, "starts"), g.ints(ends, "ends"), g.ints(axes, "axes"),
                 g.ints(steps, "steps"))
    if squeeze:
        y = g.squeeze(y, squeeze)
    if unsqueeze:
        y = g.unsqueeze(y, unsqueeze)
    return y if y != x else g.op("Identity", x)


def _flip(op, g, x):
    """torch.flip: a Slice with step -1 along each flipped axis."""
    dims = sorted({int(d) % g.rank(x) for d in ((op.dims,) if isinstance(op.dims, (int, np.integer)) else op.dims)})
    if not dims:
        return g.op("Identity", x)
    n = len(dims)
    return g.op("Slice", x, g.ints([-1] * n, "starts"), g.ints([-(2 ** 62)] * n, "ends"), g.ints(dims, "axes"),
                g.ints([-1] * n, "steps"))


def _cat(op, g, *xs):
    return g.op("Concat", *xs, axis=int(op.dim))


def _stack(op, g, *xs):
    rank = g.rank(xs[0]) + 1
    d = int(op.dim) % rank
    return g.op("Concat", *[g.unsqueeze(x, [d]) for x in xs], axis=d)


def _softmax(op_type):
    return lambda op, g, x: g.op(op_type, x, axis=int(op.dim))


def _linear(op, g, x, w, b=None):
    wt = g.op("Transpose", w, perm=[1, 0])
    y = g.op("MatMul", x, wt)
    return g.op("Add", y, b) if b is not None else y


def _batchnorm(op, g, x, w=None, b=None):
    if op.training or op.rm is None:
        raise OnnxExportError("batch norm in training mode (batch statistics) cannot be exported; call "
                              "model.eval() first")
    c = g.shape(x)[1]
    w = w or g.constant(np.ones(c, np.float32))
    b = b or g.constant(np.zeros(c, np.float32))
    return g.op("BatchNormalization", x, w, b, g.tensor(op.rm, "running_mean"), g.tensor(op.rv, "running_var"),
                epsilon=float(op.eps))


def _layer_norm(op, g, x, w=None, b=None):
    shape = g.shape(x)[-op.nd:]
    w = w or g.constant(np.ones(shape, np.float32), name="ones")
    b = b or g.constant(np.zeros(shape, np.float32), name="zeros")
    return g.op("LayerNormalization", x, w, b, axis=-op.nd, epsilon=float(op.eps))


def _dropout(op, g, x):
    return x


def _leaky(op, g, x):
    return g.op("LeakyRelu", x, alpha=float(op.slope))


def _gelu(op, g, x):
    from ..nn.onnx_rules import _gelu as gelu
    return gelu(g, x, op.approximate)


def _clamp(op, g, x):
    dt = g.dtype(x)
    lo = g.constant(np.asarray(op.lo, dt)) if op.lo is not None else ""
    hi = g.constant(np.asarray(op.hi, dt)) if op.hi is not None else ""
    return g.op("Clip", x, lo, hi)


def _cast(op, g, x):
    from onnx import helper
    return g.op("Cast", x, to=int(helper.np_dtype_to_tensor_dtype(np.dtype(op.dtype))))


def _pow(op, g, a, b):
    return g.op("Pow", a, b)


def _silu(op, g, x):
    return g.op("Mul", x, g.op("Sigmoid", x))


def _rsqrt(op, g, x):
    return g.op("Reciprocal", g.op("Sqrt", x))


def _conv2d(op, g, x, w, b=None):
    (sh, sw), (ph, pw) = op.stride, op.padding
    return g.op("Conv", x, w, *([b] if b is not None else []), strides=[sh, sw], pads=[ph, pw, ph, pw])


def _maxpool(op, g, x):
    k, s, p = getattr(op, "k", (2, 2)), getattr(op, "s", (2, 2)), getattr(op, "p", (0, 0))
    return g.op("MaxPool", x, kernel_shape=list(k), strides=list(s), pads=list(p) + list(p))


def _avgpool(op, g, x):
    return g.op("AveragePool", x, kernel_shape=list(op.k), strides=list(op.s), pads=list(op.p) + list(op.p),
                count_include_pad=int(bool(op.count_include_pad)))


def _adaptive_avgpool(op, g, x):
    from types import SimpleNamespace

    from ..nn.onnx_rules import adaptive_avgpool
    return adaptive_avgpool(SimpleNamespace(output_size=list(op.out)), g, x)


OP_RULES = {
    E.Add: _binary("Add"), E.Sub: _binary("Sub"), E.Mul: _binary("Mul"), E.Div: _binary("Div"), E.Pow: _pow,
    E.Maximum: _binary("Max"), E.Minimum: _binary("Min"),
    E.Neg: _unary("Neg"), E.Exp: _unary("Exp"), E.Log: _unary("Log"), E.Sqrt: _unary("Sqrt"), E.Abs: _unary("Abs"),
    E.Tanh: _unary("Tanh"), E.Sigmoid: _unary("Sigmoid"), E.ReLU: _unary("Relu"), E.LeakyReLU: _leaky,
    E.GELU: _gelu, E.Clamp: _clamp, E.Clone: _unary("Identity"), E.Cast: _cast,
    M.Sin: _unary("Sin"), M.Cos: _unary("Cos"), M.Erf: _unary("Erf"), M.Reciprocal: _unary("Reciprocal"),
    M.Rsqrt: _rsqrt,
    A.SiLU: _silu,
    MM.MatMul: _binary("MatMul"), MM.Linear: _linear,
    S.Reshape: _reshape, S.Permute: _permute, S.Expand: _expand, S.GetItem: _getitem, S.Cat: _cat, S.Stack: _stack,
    L.Flip: _flip,
    R.Sum: _reduce("ReduceSum"), R.Mean: _reduce("ReduceMean"), R.Softmax: _softmax("Softmax"),
    R.LogSoftmax: _softmax("LogSoftmax"),
    C.Conv2d: _conv2d, P.MaxPool2x2: _maxpool, P.MaxPool2d: _maxpool, P.AvgPool2d: _avgpool,
    P.AdaptiveAvgPool2d: _adaptive_avgpool,
    N.BatchNorm: _batchnorm, N.Dropout: _dropout, LN.LayerNorm: _layer_norm,
}


def op_rule(op):
    """The export rule of an engine op (by class, then its bases); OnnxExportError naming it when none."""
    for cls in type(op).__mro__:
        rule = OP_RULES.get(cls)
        if rule is not None:
            return rule
    raise OnnxExportError(f"the engine op {type(op).__name__} has no ONNX export rule; it was called by the "
                          "model's own forward (not inside a layer with a rule): write that part with layers "
                          "that have rules, or give the module a to_onnx(self, g, *inputs) method")

