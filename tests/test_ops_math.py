"""Elementwise math, reductions, comparisons and logic against PyTorch (float64 values and gradients to 1e-7),
on hypothesis-drawn shapes and values; dtype rules (float32 stays float32, integers promote); the exact erf."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import trainkit as tk
from trainkit.autograd.ops import special

torch = pytest.importorskip("torch")

from trainkit.testing.oracle import check_against_torch  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def arrays(shape, lo=-3.0, hi=3.0):
    # magnitudes below 1e-30 become 0: products of them underflow, where torch and numpy round differently
    elements = st.floats(lo, hi, allow_nan=False, width=64).map(lambda v: 0.0 if abs(v) < 1e-30 else v)
    return hnp.arrays(np.float64, shape, elements=elements)


# name -> (domain low, domain high)
UNARY = {
    "sin": (-4, 4), "cos": (-4, 4), "tan": (-1.3, 1.3), "asin": (-0.95, 0.95), "acos": (-0.95, 0.95),
    "atan": (-4, 4), "sinh": (-3, 3), "cosh": (-3, 3), "log1p": (-0.9, 4), "expm1": (-3, 3), "log2": (0.05, 5),
    "log10": (0.05, 5), "rsqrt": (0.05, 5), "reciprocal": (0.2, 5), "erf": (-4, 4), "neg": (-3, 3),
    "square": (-3, 3), "exp": (-3, 3), "sigmoid": (-5, 5),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(data=st.data())
def test_unary_math_matches_torch(name, data):
    lo, hi = UNARY[name]
    x = data.draw(arrays(data.draw(shapes), lo, hi))
    check_against_torch(lambda t: getattr(tk, name)(t), lambda t: getattr(torch, name)(t), [x])
    check_against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x])  # the Tensor method


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_math_keeps_float32_and_promotes_integers(name):
    lo, hi = UNARY[name]
    x = tk.tensor(np.linspace(lo, hi, 6).astype(np.float32), requires_grad=True)
    y = getattr(tk, name)(x)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    ints = np.arange(1, 4) if lo > 0 else np.array([0, 1])
    expected = getattr(torch, name)(torch.from_numpy(ints)).dtype
    assert str(getattr(tk, name)(tk.tensor(ints)).dtype) == str(expected).replace("torch.", "trainkit.")


@SETTINGS
@given(data=st.data())
def test_atan2_broadcasts_in_both_operand_orders(data):
    a_shape, b_shape = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    a = data.draw(arrays(a_shape))
    b = data.draw(arrays(b_shape, 0.2, 3)) * data.draw(st.sampled_from([-1.0, 1.0]))
    check_against_torch(tk.atan2, torch.atan2, [a, b])
    check_against_torch(tk.atan2, torch.atan2, [b, a + 5.0])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign", "frac"])
def test_roundings_match_torch_with_zero_gradient(name):
    # halves (round half to even), negatives, exact integers and NaN-free values
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 1.2, 3.0, -0.0, 0.0, 2.6])
    check_against_torch(getattr(tk, name), getattr(torch, name), [x])


def test_round_decimals_sign_nan_and_integer_roundings_match_torch():
    x = np.array([1.2345, -2.5551, 0.0049, 123.456])
    check_against_torch(lambda t: tk.round(t, decimals=2), lambda t: torch.round(t, decimals=2), [x])
    check_against_torch(lambda t: tk.round(t, decimals=-1), lambda t: torch.round(t, decimals=-1), [x])
    assert tk.sign(tk.tensor([float("nan"), -0.0, -3.0])).tolist() == [0.0, 0.0, -1.0]  # torch: sign(nan) = 0
    ints = tk.tensor([-3, 0, 4])
    for name in ("floor", "ceil", "round", "trunc", "sign"):
        out = getattr(tk, name)(ints)
        assert out.dtype == np.int64 and out.tolist() == getattr(torch, name)(torch.tensor([-3, 0, 4])).tolist()


def test_erf_is_exact_in_float64_without_scipy():
    xs = np.concatenate([np.linspace(-7, 7, 40001), np.random.default_rng(0).standard_normal(20000) * 2,
                         [0.0, -0.0, 1.0, -1.0, 6.0, 1e-300, np.inf, -np.inf]])
    ref = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(special.erf(xs), ref, rtol=0, atol=4e-16)
    assert np.isnan(special.erf(np.array([np.nan])))[0]
    assert special.erf(np.float32([0.5, 2.0])).dtype == np.float32
    np.testing.assert_allclose(special.erf(np.float32(xs[:1000])), ref[:1000], atol=3e-7)
    np.testing.assert_allclose(tk.erf(tk.tensor(xs)).numpy(), torch.erf(torch.from_numpy(xs)).numpy(), atol=4e-16)


def test_gelu_float64_value_and_gradient_match_torch_to_1e12():
    import trainkit.nn.functional as F

    x = np.concatenate([np.linspace(-8, 8, 4001), np.random.default_rng(1).standard_normal(4000)])
    check_against_torch(F.gelu, torch.nn.functional.gelu, [x], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------------------ reductions
def _dim(data, ndim, allow_none=True):
    choices = list(range(-ndim, ndim)) if ndim else [0]
    return data.draw(st.sampled_from(([None] if allow_none else []) + choices))


@SETTINGS
@given(data=st.data())
def test_prod_cumsum_cumprod_with_zeros_match_torch(data):
    shape = data.draw(shapes)
    x = data.draw(arrays(shape, -2, 2))
    if x.size:  # zeros exercise the exact gradients (one zero, several zeros)
        mask = data.draw(hnp.arrays(bool, shape, elements=st.booleans()))
        x = np.where(mask & (data.draw(st.integers(0, 2)) > 0), 0.0, x)
    dim = _dim(data, x.ndim, allow_none=False)
    keep = data.draw(st.booleans())
    check_against_torch(lambda t: tk.prod(t), lambda t: torch.prod(t), [x])
    check_against_torch(lambda t: tk.prod(t, dim, keep), lambda t: torch.prod(t, dim, keep), [x])
    check_against_torch(lambda t: tk.cumsum(t, dim), lambda t: torch.cumsum(t, dim), [x])
    check_against_torch(lambda t: t.cumprod(dim), lambda t: t.cumprod(dim), [x])


def test_integer_prod_and_cumsum_give_int64_like_torch():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    for f in (lambda m, t: m.prod(t), lambda m, t: m.cumsum(t, 1), lambda m, t: m.prod(t, 0)):
        ours, theirs = f(tk, tk.tensor(a)), f(torch, torch.from_numpy(a))
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "trainkit.") and ours.tolist() == theirs.tolist()


@SETTINGS
@given(data=st.data())
def test_std_var_with_correction_and_dims_match_torch(data):
    x = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))))
    dims = data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True))
    correction = data.draw(st.sampled_from([0, 1]))
    keep = data.draw(st.booleans())
    for name in ("var", "std"):
        check_against_torch(lambda t: getattr(tk, name)(t, dims, keepdim=keep, correction=correction),
                            lambda t: getattr(torch, name)(t, dims, keepdim=keep, correction=correction), [x])
    check_against_torch(lambda t: t.std(0, False), lambda t: t.std(0, False), [x])
    check_against_torch(lambda t: tk.var(t, False), lambda t: torch.var(t, False), [x])


@SETTINGS
@given(data=st.data())
def test_amax_amin_share_gradient_between_ties_like_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    x = np.round(data.draw(arrays(shape, -2, 2)))  # few distinct values: many ties
    dims = tuple(data.draw(st.lists(st.integers(0, x.ndim - 1), max_size=x.ndim, unique=True)))
    keep = data.draw(st.booleans())
    check_against_torch(lambda t: tk.amax(t, dims, keep), lambda t: torch.amax(t, dims, keep), [x])
    check_against_torch(lambda t: t.amin(dims, keep), lambda t: t.amin(dims, keep), [x])
    check_against_torch(lambda t: tk.max(t), lambda t: torch.max(t), [x])


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), float("-inf"), 0, "fro"])
@SETTINGS
@given(data=st.data())
def test_norm_matches_torch(p, data):
    x = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)), -2, 2))
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # |x| kinks: away from 0 for p <= 1
    if p in (float("inf"), float("-inf")):
        x = np.round(x, 1)  # ties share the gradient
    most = 2 if p == "fro" else x.ndim  # torch's 'fro' is a matrix norm over at most two dimensions
    dims = data.draw(st.none() | st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=most, unique=True))
    keep = data.draw(st.booleans())
    check_against_torch(lambda t: tk.norm(t, p, dims, keep), lambda t: torch.norm(t, p, dims, keep), [x])
    check_against_torch(lambda t: t.norm(p), lambda t: t.norm(p), [x])


def test_norm_of_zero_vector_has_zero_gradient_and_nuclear_norm_matches_torch():
    check_against_torch(lambda t: tk.norm(t), lambda t: torch.norm(t), [np.zeros((2, 3))])
    check_against_torch(lambda t: tk.norm(t, 3, 1), lambda t: torch.norm(t, 3, 1), [np.array([[0.0, 0.0], [1.0, 2.0]])])
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    check_against_torch(lambda t: tk.norm(t[0], "nuc"), lambda t: torch.norm(t[0], "nuc"), [x])
    check_against_torch(lambda t: tk.norm(t, "nuc", (0, 2), keepdim=True),
                        lambda t: torch.norm(t, "nuc", (0, 2), keepdim=True), [x])


@SETTINGS
@given(data=st.data())
def test_all_any_logsumexp_match_torch(data):
    x = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)), -2, 2))
    x = np.where(np.abs(x) < 0.7, 0.0, x)
    dim = _dim(data, x.ndim, allow_none=False)
    keep = data.draw(st.booleans())
    for name in ("all", "any"):
        check_against_torch(lambda t: getattr(tk, name)(t), lambda t: getattr(torch, name)(t), [x])
        check_against_torch(lambda t: getattr(t, name)(dim, keep), lambda t: getattr(t, name)(dim, keep), [x])
    check_against_torch(lambda t: tk.logsumexp(t, dim, keep), lambda t: torch.logsumexp(t, dim, keep), [x])
    if x.ndim >= 2:
        check_against_torch(lambda t: t.logsumexp((0, -1)), lambda t: t.logsumexp((0, -1)), [x])


# ------------------------------------------------------------------------------------------------ comparisons
@pytest.mark.parametrize("name", ["eq", "ne", "gt", "lt", "ge", "le", "logical_and", "logical_or", "logical_xor",
                                  "greater", "less_equal", "not_equal"])
@SETTINGS
@given(data=st.data())
def test_comparisons_and_logic_match_torch(name, data):
    a_shape, b_shape = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    a = np.round(data.draw(arrays(a_shape, -2, 2)))
    b = np.round(data.draw(arrays(b_shape, -2, 2)))
    check_against_torch(lambda x, y: getattr(tk, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b])
    if not name.startswith("logical"):  # torch's logical ops take tensors only
        check_against_torch(lambda x: getattr(x, name)(1.0), lambda x: getattr(x, name)(1.0), [a])


def test_isnan_isinf_isfinite_logical_not_match_torch():
    x = np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 2.0])
    for name in ("isnan", "isinf", "isfinite", "logical_not", "isposinf", "isneginf"):
        check_against_torch(getattr(tk, name), getattr(torch, name), [x])
    check_against_torch(lambda a, b: tk.isclose(a, b), lambda a, b: torch.isclose(a, b),
                        [x, x + np.array([1e-9, 1e-3, 0, 0, 0, 0])])
    assert (tk.tensor([True, False]) ^ tk.tensor([True, True])).tolist() == [False, True]


def test_comparison_results_are_outside_the_graph():
    x = tk.randn(3, requires_grad=True)
    assert not tk.gt(x, 0).requires_grad and tk.gt(x, 0).dtype == np.bool_


# Cases whose inputs deliberately mix in float64 (a cast to float64, float64 running statistics or weights).
MIXED_FLOAT64 = {"cast", "batch_norm_eval", "bce_with_logits"}


def test_float32_inputs_give_float32_outputs_and_gradients_in_every_op_case():
    from trainkit.testing.op_cases import OP_CASES

    for case in OP_CASES:
        if case.name in MIXED_FLOAT64:
            continue
        inputs = [tk.Tensor(t._array.astype(np.float32), requires_grad=t.requires_grad)
                  if isinstance(t, tk.Tensor) and t.dtype == np.float64 else t
                  for t in case.make_inputs(np.random.default_rng(0))]
        with np.errstate(all="ignore"):
            out = case.fn(*inputs)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, tk.Tensor)]
        assert {o.dtype for o in outs} == {np.dtype(np.float32)}, case.name
        total = sum((o.sum() for o in outs[1:]), outs[0].sum())
        total.backward()
        for t in inputs:
            if isinstance(t, tk.Tensor) and t.requires_grad and t.grad is not None:
                assert t.grad.dtype == np.float32, case.name


_PROMOTION_DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]


@settings(max_examples=120, deadline=None)
@given(a=st.sampled_from(_PROMOTION_DTYPES), b=st.sampled_from(_PROMOTION_DTYPES),
       shapes=st.sampled_from([((2,), ()), ((), (2,)), ((), ()), ((2,), (2,)), ((2, 1), (3,))]),
       op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_ops_follow_torchs_type_promotion(a, b, shapes, op):
    """Result dtypes of tensor-tensor arithmetic are torch's, including its rule that a 0-d tensor of the
    same category does not widen a dimensioned one (float32 vector + float64 0-d tensor is float32)."""
    sa, sb = shapes
    ta, tb = torch.ones(sa, dtype=getattr(torch, a)), torch.ones(sb, dtype=getattr(torch, b))
    try:
        expected = getattr(torch, op)(ta, tb)
    except RuntimeError:  # torch refuses bool subtraction; trainkit allows it
        return
    ours = getattr(tk, op)(tk.ones(sa, dtype=getattr(tk, a)), tk.ones(sb, dtype=getattr(tk, b)))
    assert str(ours.dtype).split(".")[-1] == str(expected.dtype).split(".")[-1]
    assert tuple(ours.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())
