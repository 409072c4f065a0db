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


# ==================================================================================================================
# Ops with PyTorch's names (issue 13): math, reductions, indexing, sorting, layout, linear algebra, sampling,
# activations, pointwise losses, layer norm. One row per op class (and per distinct code path).
# ==================================================================================================================
from trainkit.autograd import sampling as _sampling  # noqa: E402
from trainkit.autograd.ops import einsum as _es  # noqa: E402
from trainkit.autograd.ops import index as _ix  # noqa: E402
from trainkit.autograd.ops import layout as _lay  # noqa: E402
from trainkit.autograd.ops import linalg as _la  # noqa: E402
from trainkit.autograd.ops import math as _m  # noqa: E402
from trainkit.autograd.ops import reduce as _red  # noqa: E402
from trainkit.autograd.ops import scan as _scan  # noqa: E402
from trainkit.autograd.ops import sort as _sort  # noqa: E402


def _noninteger(rng, *shape):
    """Values at least 0.1 away from every integer (floor/ceil/round are locally constant there)."""
    a = rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.4, shape) + rng.choice([0.0, 0.5], shape)
    return Tensor(a, requires_grad=True)


def _idx(array):
    return Tensor(np.asarray(array, dtype=np.int64))


OP_CASES += [
    # --- elementwise math
    R("sin", _m.sin, lambda r: (_t(r, 2, 3),)),
    R("cos", _m.cos, lambda r: (_t(r, 2, 3),)),
    R("tan", _m.tan, lambda r: (_t(r, 2, 3, low=-1.2, high=1.2),)),
    R("asin", _m.asin, lambda r: (_t(r, 2, 3, low=-0.9, high=0.9),)),
    R("acos", _m.acos, lambda r: (_t(r, 2, 3, low=-0.9, high=0.9),)),
    R("atan", _m.atan, lambda r: (_t(r, 2, 3),)),
    R("atan2_broadcast", _m.atan2, lambda r: (_t(r, 2, 3), _away0(r, 3))),
    R("sinh", _m.sinh, lambda r: (_t(r, 2, 3),)),
    R("cosh", _m.cosh, lambda r: (_t(r, 2, 3),)),
    R("log1p", _m.log1p, lambda r: (_t(r, 2, 3, low=-0.5, high=2.0),)),
    R("expm1", _m.expm1, lambda r: (_t(r, 2, 3),)),
    R("log2", _m.log2, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("log10", _m.log10, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("rsqrt", _m.rsqrt, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("reciprocal", _m.reciprocal, lambda r: (_t(r, 2, 3, low=0.5, high=3.0),)),
    R("erf", _m.erf, lambda r: (_t(r, 2, 3),)),
    R("frac", lambda x: _m.frac(x) * x, lambda r: (_noninteger(r, 2, 3),)),
    R("floor_ceil_round_trunc_sign",
      lambda x: _m.floor(x) * x + _m.ceil(x) * x + _m.round(x) + _m.trunc(x) * x + _m.sign(x) * x,
      lambda r: (_noninteger(r, 2, 3),)),
    R("round_decimals", lambda x: _m.round(x, decimals=1) * x, lambda r: (_t(r, 4),)),
    # --- reductions
    R("prod_all", _scan.prod, lambda r: (_t(r, 2, 3),)),
    R("prod_dim_with_zero", lambda x: _scan.prod(x * Tensor(np.array([1.0, 0.0, 1.0], x.dtype)), 1),
      lambda r: (_t(r, 2, 3),)),
    R("cumsum", lambda x: _scan.cumsum(x, 1), lambda r: (_t(r, 2, 4),)),
    R("cumprod", lambda x: _scan.cumprod(x, 0), lambda r: (_t(r, 4, 2),)),
    R("cumprod_zeros", lambda x: _scan.cumprod(x * Tensor(np.array([1.0, 0.0, 1.0, 0.0, 1.0], x.dtype)), -1),
      lambda r: (_t(r, 2, 5),)),
    R("amax_dims_ties", lambda x: _red.amax(x, (0, 2)),
      lambda r: (Tensor(np.repeat(r.standard_normal((1, 3, 2)), 2, axis=0), requires_grad=True),)),
    R("amin_keepdim", lambda x: _red.amin(x, 1, keepdim=True), lambda r: (_distinct(r, 3, 4),)),
    R("std_correction", lambda x: _red.std(x, 1, correction=0), lambda r: (_t(r, 3, 4),)),
    R("norm_p2_dim", lambda x: _la.norm(x, 2, 1), lambda r: (_t(r, 3, 4),)),
    R("norm_p1_p3_inf", lambda x: _la.norm(x, 1) + _la.norm(x, 3, (0, 1)) + _la.norm(x, float("inf"), 0),
      lambda r: (_distinct(r, 3, 2),)),
    R("norm_nuc", lambda x: _la.norm(x, "nuc"), lambda r: (_t(r, 3, 2),)),
    # --- indexing
    R("gather_smaller_index", lambda x: _ix.gather(x, 1, _idx([[0, 2], [1, 1]])), lambda r: (_t(r, 3, 4),)),
    R("take_along_dim_broadcast", lambda x: _ix.take_along_dim(x, _idx([[[0], [2]]]), 2),
      lambda r: (_t(r, 2, 2, 3),)),
    R("scatter_src_and_value", lambda x, s: _ix.scatter(x, 0, _idx([[1, 0, 2]]), s) + _ix.scatter(x, 1, _idx([[0]]), 2.0),
      lambda r: (_t(r, 3, 3), _t(r, 2, 3))),
    R("scatter_add_repeats", lambda x, s: _ix.scatter_add(x, 1, _idx([[0, 0, 2], [1, 1, 1]]), s),
      lambda r: (_t(r, 2, 3), _t(r, 2, 4))),
    R("index_select_repeats", lambda x: _ix.index_select(x, 1, _idx([2, 0, 2])), lambda r: (_t(r, 2, 3),)),
    R("masked_fill_broadcast", lambda x: _ix.masked_fill(x, Tensor(np.array([True, False, True])), -1.0),
      lambda r: (_t(r, 2, 3),)),
    R("masked_select", lambda x: _ix.masked_select(x, Tensor(np.array([[True], [False]]))),
      lambda r: (_t(r, 2, 3),)),
    R("embedding", lambda w: F.embedding(_idx([[0, 2], [2, 2]]), w, padding_idx=1),
      lambda r: (_t(r, 3, 2),)),
    # --- sorting (values flow through Gather)
    R("sort_descending", lambda x: _sort.sort(x, 1, descending=True).values, lambda r: (_distinct(r, 2, 4),)),
    R("topk_smallest", lambda x: _sort.topk(x, 2, 0, largest=False).values, lambda r: (_distinct(r, 4, 2),)),
    R("median_dim", lambda x: _sort.median(x, 1).values, lambda r: (_distinct(r, 2, 5),)),
    # --- layout
    R("flip", lambda x: _lay.flip(x, (0, 1)) * x, lambda r: (_t(r, 2, 3),)),
    R("roll", lambda x: _lay.roll(x, (1, -1), (0, 1)) + _lay.roll(x, 2), lambda r: (_t(r, 2, 3),)),
    R("repeat_interleave", lambda x: _lay.repeat_interleave(x, 2, 1) , lambda r: (_t(r, 2, 3),)),
    R("repeat_interleave_counts", lambda x: _lay.repeat_interleave(x, Tensor(np.array([0, 2, 1])), 0),
      lambda r: (_t(r, 3, 2),)),
    R("split_chunk_narrow_movedim", lambda x: _lay.split(x, [1, 2], 1)[1] * _lay.chunk(x, 2, 1)[1]
      + _lay.movedim(_lay.narrow(x, 1, 1, 2), 0, 1).T, lambda r: (_t(r, 2, 3),)),
    R("constant_pad_and_crop", lambda x: F.pad(x, (1, -1, 2, 0), value=0.5), lambda r: (_t(r, 2, 3),)),
    R("pad_reflect_replicate_circular",
      lambda x: F.pad(x, (2, 1), mode="reflect") + F.pad(x, (1, 2), mode="replicate")
      + F.pad(x, (3, 0), mode="circular"), lambda r: (_t(r, 1, 2, 3),)),
    # --- linear algebra
    R("tril_triu", lambda x: _la.tril(x, -1) + _la.triu(x, 1) * 2, lambda r: (_t(r, 2, 3, 3),)),
    R("diag_and_diagonal", lambda x, v: _la.diag(x, 1) + _la.diagonal(_la.diag_embed(v, -1), -1),
      lambda r: (_t(r, 3, 4), _t(r, 3))),
    R("mm_bmm_dot_outer", lambda a, b: _la.mm(a, b).sum() + _la.bmm(a[None], b[None]).sum()
      + _la.dot(a[0], b[:, 0]) + _la.outer(a[1], b[1]).sum(), lambda r: (_t(r, 2, 3), _t(r, 3, 2))),
    R("einsum_chain", lambda a, b, c: _es.einsum("ij,jk,kl->il", a, b, c),
      lambda r: (_t(r, 2, 3), _t(r, 3, 2), _t(r, 2, 2))),
    R("einsum_batch_diag_broadcast", lambda a, b: _es.einsum("bii,b...->bi...", a, b),
      lambda r: (_t(r, 2, 2, 2), _t(r, 1, 3))),
    # --- sampling (zero gradient to the distribution's parameters, as in PyTorch)
    R("bernoulli_zero_grad", lambda p: _sampling.bernoulli(p, generator=np.random.default_rng(0)) * p,
      lambda r: (_t(r, 2, 3, low=0.2, high=0.8),)),
    # --- activations
    R("silu", F.silu, lambda r: (_t(r, 2, 3),)),
    R("elu_selu_celu", lambda x: F.elu(x, 0.7) + F.selu(x) + F.celu(x, 1.5), lambda r: (_away0(r, 2, 3),)),
    R("softplus_threshold", lambda x: F.softplus(x, beta=2.0, threshold=1.0), lambda r: (_t(r, 2, 4),)),
    R("mish", F.mish, lambda r: (_t(r, 2, 3),)),
    R("hardswish", F.hardswish, lambda r: (Tensor(np.array([-4.0, -2.0, -0.5, 0.7, 2.5, 4.0]), requires_grad=True),)),
    R("hardtanh_relu6", lambda x: F.hardtanh(x, -0.5, 0.5) + F.relu6(x * 4), lambda r: (_away0(r, 2, 4),)),
    R("prelu_channels", F.prelu, lambda r: (_away0(r, 2, 3, 2), _t(r, 3))),
    R("prelu_single", F.prelu, lambda r: (_away0(r, 4), _t(r, 1))),
    # --- pointwise losses
    R("smooth_l1_and_huber", lambda x, y: F.smooth_l1_loss(x, y, beta=0.5) + F.huber_loss(x, y, "sum", 0.8),
      lambda r: (_t(r, 3, 2), _t(r, 3, 2)), kind="loss"),
    R("binary_cross_entropy_weight", lambda x, y: F.binary_cross_entropy(x, y, weight=np.array([0.5, 2.0])),
      lambda r: (_t(r, 3, 2, low=0.1, high=0.9), _t(r, 3, 2, low=0.0, high=1.0)), kind="loss"),
    R("kl_div_batchmean", lambda x, t: F.kl_div(x, t, reduction="batchmean"),
      lambda r: (_t(r, 2, 3), _t(r, 2, 3, low=0.1, high=1.0)), kind="loss"),
    R("kl_div_log_target_none", lambda x, t: F.kl_div(x, t, reduction="none", log_target=True),
      lambda r: (_t(r, 2, 3), _t(r, 2, 3)), kind="loss"),
    R("margin_losses", lambda a, b, c: F.margin_ranking_loss(a[:, 0], b[:, 0], Tensor(np.array([1.0, -1.0, 1.0])))
      + F.cosine_embedding_loss(a, b, Tensor(np.array([1.0, -1.0, -1.0])), margin=-0.5)
      + F.triplet_margin_loss(a, b, c, swap=True, margin=2.0),
      lambda r: (_t(r, 3, 2), _t(r, 3, 2), _t(r, 3, 2)), kind="loss"),
    # --- normalisation and similarity
    R("layer_norm_affine", lambda x, w, b: F.layer_norm(x, (3,), w, b), lambda r: (_t(r, 2, 3), _t(r, 3), _t(r, 3))),
    R("layer_norm_2d_plain", lambda x: F.layer_norm(x, (2, 2)), lambda r: (_t(r, 2, 2, 2),)),
    R("normalize_cosine_similarity", lambda a, b: F.normalize(a, dim=1) * 2 + F.cosine_similarity(a, b)[:, None],
      lambda r: (_t(r, 2, 3), _t(r, 2, 3))),
    R("interpolate_bilinear_nearest", lambda x: F.interpolate(x, size=(3, 4), mode="bilinear").sum()
      + F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True).sum()
      + F.interpolate(x, scale_factor=2).sum(), lambda r: (_t(r, 1, 1, 2, 3),)),
    R("conv1d_same", lambda x, w, b: F.conv1d(x, w, b, padding="same"),
      lambda r: (_t(r, 2, 2, 5), _t(r, 3, 2, 2), _t(r, 3))),
]
