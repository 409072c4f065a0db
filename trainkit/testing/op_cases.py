"""Gradient-check cases for every engine op (small float64 inputs), as one plain list."""
from __future__ import annotations

import numpy as np

from trainkit.autograd import functional as T
from trainkit.autograd.ops import elementwise as ew
from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F

from .cases import CheckCase


def _t(rng, *shape, low=None, high=None, grad=True):
    a = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return Tensor(a, requires_grad=grad)


def _away0(rng, *shape):
    """Values at least 0.1 away from 0 (kinks of abs/relu)."""
    a = rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    return Tensor(a, requires_grad=True)


def _distinct(rng, *shape):
    """Well-separated values (no ties for max/min/pool)."""
    n = int(np.prod(shape))
    return Tensor((rng.permutation(n) * 0.1 + rng.uniform(0, 0.01, n)).reshape(shape), requires_grad=True)


def _labels(rng, n, c):
    return Tensor(rng.integers(0, c, n).astype(np.int64))


def R(name, fn, make_inputs, kind="op", **tol):
    return CheckCase(name, kind, fn, make_inputs, **tol)


_bn_stats = lambda c: (np.zeros(c), np.ones(c))  # noqa: E731

OP_CASES: list[CheckCase] = [
    # --- elementwise
    R("add", lambda a, b: a + b, lambda r: (_t(r, 3, 1, 4), _t(r, 2, 4))),
    R("sub", lambda a, b: a - b, lambda r: (_t(r, 2, 3), _t(r, 3))),
    R("mul", lambda a, b: a * b, lambda r: (_t(r, 2, 3), _t(r, 2, 1))),
    R("div", lambda a, b: a / b, lambda r: (_t(r, 2, 3), _t(r, 3, low=0.5, high=2.0))),
    R("pow_scalar", lambda a: a ** 3, lambda r: (_t(r, 2, 3),)),
    R("pow_tensor", lambda a, b: a ** b, lambda r: (_t(r, 2, 3, low=0.5, high=2.0), _t(r, 3))),
    R("scalar_ops", lambda a: 2.0 - a * 0.5 + 1 / (a + 3), lambda r: (_t(r, 4, low=-1, high=1),)),
    R("neg", lambda a: -a, lambda r: (_t(r, 3),)),
    R("exp", T.exp, lambda r: (_t(r, 2, 3),)),
    R("log", T.log, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("sqrt", T.sqrt, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("abs", T.abs, lambda r: (_away0(r, 2, 3),)),
    R("tanh", T.tanh, lambda r: (_t(r, 2, 3),)),
    R("sigmoid", T.sigmoid, lambda r: (_t(r, 2, 3),)),
    R("relu", F.relu, lambda r: (_away0(r, 2, 5),)),
    R("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda r: (_away0(r, 2, 5),)),
    R("gelu", F.gelu, lambda r: (_t(r, 2, 5),)),
    R("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda r: (_t(r, 2, 5),)),
    R("clamp", lambda x: T.clamp(x, -0.5, 0.5), lambda r: (_away0(r, 3, 4),)),
    R("maximum", T.maximum, lambda r: (_distinct(r, 2, 3), _distinct(r, 3))),
    R("minimum", T.minimum, lambda r: (_distinct(r, 2, 3), _distinct(r, 3))),
    R("where", lambda a, b: T.where(a > 0, a, b), lambda r: (_away0(r, 2, 3), _t(r, 3))),
    R("cast", lambda a: ew.Cast.apply(a, dtype=np.dtype("float64")) * 2, lambda r: (_t(r, 3),)),
    R("clone", lambda a: a.clone() * a, lambda r: (_t(r, 3),)),
    # --- reductions and softmax
    R("sum", lambda a: a.sum(), lambda r: (_t(r, 2, 3),)),
    R("sum_dim_keepdim", lambda a: a.sum(dim=1, keepdim=True) * a, lambda r: (_t(r, 2, 3),)),
    R("sum_dims", lambda a: a.sum(dim=(0, 2)), lambda r: (_t(r, 2, 3, 4),)),
    R("mean", lambda a: a.mean(dim=0), lambda r: (_t(r, 4, 3),)),
    R("var", lambda a: a.var(dim=1), lambda r: (_t(r, 3, 5),)),
    R("var_biased_all", lambda a: a.var(unbiased=False), lambda r: (_t(r, 3, 5),)),
    R("max_all", lambda a: a.max(), lambda r: (_distinct(r, 3, 4),)),
    R("max_dim", lambda a: a.max(dim=1)[0], lambda r: (_distinct(r, 3, 4),)),
    R("min_dim_keepdim", lambda a: a.min(dim=0, keepdim=True).values, lambda r: (_distinct(r, 3, 4),)),
    R("logsumexp", lambda a: T.logsumexp(a, dim=1), lambda r: (_t(r, 3, 4),)),
    R("softmax", lambda a: F.softmax(a, dim=1), lambda r: (_t(r, 3, 4),)),
    R("log_softmax", lambda a: F.log_softmax(a, dim=-1), lambda r: (_t(r, 3, 4),)),
    # --- shape and indexing
    R("reshape", lambda a: a.reshape(3, 4) * a.view(3, 4), lambda r: (_t(r, 2, 6),)),
    R("permute", lambda a: a.permute(2, 0, 1), lambda r: (_t(r, 2, 3, 4),)),
    R("transpose", lambda a: a.transpose(0, 1) @ a, lambda r: (_t(r, 3, 3),)),
    R("expand", lambda a: a.expand(3, 2, 4), lambda r: (_t(r, 2, 1),)),
    R("repeat", lambda a: a.repeat(2, 3), lambda r: (_t(r, 2, 3),)),
    R("squeeze_unsqueeze", lambda a: a.unsqueeze(0).squeeze(2), lambda r: (_t(r, 2, 1, 3),)),
    R("getitem_basic", lambda a: a[1:, ::2, 0], lambda r: (_t(r, 3, 4, 2),)),
    R("getitem_repeated_index", lambda a: a[Tensor(np.array([0, 2, 0, 0]))], lambda r: (_t(r, 3, 4),)),
    R("getitem_mask", lambda a: a[a > 0], lambda r: (_away0(r, 3, 4),)),
    R("cat", lambda a, b: T.cat([a, b, a], dim=1), lambda r: (_t(r, 2, 3), _t(r, 2, 2))),
    R("stack", lambda a, b: T.stack([a, b], dim=1), lambda r: (_t(r, 2, 3), _t(r, 2, 3))),
    # --- matrix products
    R("matmul", lambda a, b: a @ b, lambda r: (_t(r, 3, 4), _t(r, 4, 2))),
    R("matmul_batched_broadcast", lambda a, b: a @ b, lambda r: (_t(r, 2, 3, 4), _t(r, 4, 5))),
    R("matmul_vector", lambda a, b: a @ b, lambda r: (_t(r, 3, 4), _t(r, 4))),
    R("linear", F.linear, lambda r: (_t(r, 5, 4), _t(r, 3, 4), _t(r, 3))),
    R("linear_no_bias_3d", F.linear, lambda r: (_t(r, 2, 5, 4), _t(r, 3, 4))),
    # --- convolution and pooling
    R("conv2d", lambda x, w, b: F.conv2d(x, w, b), lambda r: (_t(r, 2, 3, 6, 6), _t(r, 4, 3, 3, 3), _t(r, 4))),
    R("conv2d_stride2_pad1", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
      lambda r: (_t(r, 2, 2, 7, 7), _t(r, 3, 2, 3, 3), _t(r, 3))),
    R("conv2d_rect_nobias", lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(2, 0)),
      lambda r: (_t(r, 1, 2, 5, 6), _t(r, 2, 2, 3, 2))),
    R("max_pool2d_2x2", lambda x: F.max_pool2d(x, 2), lambda r: (_distinct(r, 2, 2, 4, 5),)),
    R("max_pool2d_k3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), lambda r: (_distinct(r, 2, 2, 7, 7),)),
    R("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1), lambda r: (_t(r, 2, 2, 7, 7),)),
    R("avg_pool2d_exclude_pad", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), lambda r: (_t(r, 1, 2, 6, 6),)),
    R("adaptive_avg_pool2d_1", lambda x: F.adaptive_avg_pool2d(x, 1), lambda r: (_t(r, 2, 3, 5, 5),)),
    R("adaptive_avg_pool2d_uneven", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), lambda r: (_t(r, 2, 2, 5, 7),)),
    # --- normalisation and dropout
    R("batch_norm_train", lambda x, w, b: F.batch_norm(x, *_bn_stats(3), w, b, training=True),
      lambda r: (_t(r, 4, 3, 2, 2), _t(r, 3), _t(r, 3))),
    R("batch_norm_eval", lambda x, w, b: F.batch_norm(x, np.full(3, 0.2), np.full(3, 1.5), w, b),
      lambda r: (_t(r, 4, 3), _t(r, 3), _t(r, 3))),
    R("batch_norm_no_affine", lambda x: F.batch_norm(x, None, None, training=True), lambda r: (_t(r, 5, 2, 3),)),
    R("dropout", lambda x: F.dropout(x, 0.4, generator=np.random.default_rng(0)), lambda r: (_t(r, 4, 5),)),
    # --- losses
    R("cross_entropy", lambda x, y: F.cross_entropy(x, y), lambda r: (_t(r, 5, 4), _labels(r, 5, 4)), kind="loss"),
    R("cross_entropy_smooth_weight_ignore",
      lambda x, y: F.cross_entropy(x, y, weight=np.array([1.0, 2.0, 0.5, 1.0]), ignore_index=1, label_smoothing=0.1),
      lambda r: (_t(r, 6, 4), Tensor(np.array([0, 1, 2, 3, 1, 2]))), kind="loss"),
    R("cross_entropy_probs", lambda x, p: F.cross_entropy(x, p),
      lambda r: (_t(r, 3, 4), Tensor(r.dirichlet(np.ones(4), 3))), kind="loss"),
    R("cross_entropy_nd_none", lambda x, y: F.cross_entropy(x, y, reduction="none"),
      lambda r: (_t(r, 2, 3, 2, 2), Tensor(r.integers(0, 3, (2, 2, 2)))), kind="loss"),
    R("nll_loss", lambda x, y: F.nll_loss(F.log_softmax(x, 1), y), lambda r: (_t(r, 5, 3), _labels(r, 5, 3)), kind="loss"),
    R("mse_loss", F.mse_loss, lambda r: (_t(r, 4, 2), _t(r, 4, 2)), kind="loss"),
    R("l1_loss", lambda x, y: F.l1_loss(x, y, reduction="sum"), lambda r: (_away0(r, 4, 2), _t(r, 4, 2, grad=False) * 0),
      kind="loss"),
    R("bce_with_logits", lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=np.array([2.0, 0.5])),
      lambda r: (_t(r, 4, 2), _t(r, 4, 2, low=0.0, high=1.0)), kind="loss"),
]
