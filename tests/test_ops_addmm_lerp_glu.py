"""torch.addmm / baddbmm (and the Tensor methods), torch.lerp and F.glu against torch: values, dtypes and
gradients on random shapes, scales and weights."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk
import trainkit.nn.functional as F

torch = pytest.importorskip("torch")

from trainkit.testing.oracle import check_against_torch  # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64])


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), k=st.integers(1, 5), p=st.integers(1, 5), batch=st.integers(0, 3),
       input_shape=st.sampled_from(["full", "row", "col", "scalar"]), beta=st.sampled_from([1, 0, 0.5, -2]),
       alpha=st.sampled_from([1, 0.25, -1.5]), method=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2 ** 16))
def test_addmm_and_baddbmm_match_torch(n, k, p, batch, input_shape, beta, alpha, method, dtype, seed):
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    shape = {"full": lead + (n, p), "row": (p,), "col": (n, 1), "scalar": ()}[input_shape]
    arrays = [rng.standard_normal(s).astype(dtype) for s in (shape, lead + (n, k), lead + (k, p))]
    name = "baddbmm" if batch else "addmm"

    def call(lib):
        if method:
            return lambda i, a, b: getattr(i, name)(a, b, beta=beta, alpha=alpha)
        return lambda i, a, b: getattr(lib, name)(i, a, b, beta=beta, alpha=alpha)
    check_against_torch(call(tk), call(torch), arrays, seed=seed, **_tol(dtype))


def test_addmm_beta_zero_ignores_nan_input_and_refuses_a_larger_input():
    i = np.array([[np.nan, np.inf]])
    a, b = np.ones((2, 3)), np.ones((3, 2))
    check_against_torch(lambda i, a, b: tk.addmm(i, a, b, beta=0), lambda i, a, b: torch.addmm(i, a, b, beta=0),
                        [i, a, b])
    with pytest.raises(RuntimeError, match=r"input of shape \(3, 2\) does not broadcast to the product's shape "
                                           r"\(2, 2\)"):
        tk.addmm(tk.ones(3, 2), tk.tensor(a), tk.tensor(b))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), weight=st.one_of(
       st.sampled_from([0.0, 0.3, 0.5, 0.75, 1.0, -0.7, 1.6]), st.just("tensor")), dtype=DTYPES,
       seed=st.integers(0, 2 ** 16))
def test_lerp_matches_torch_on_both_sides_of_one_half(shape, weight, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) * 10, rng.standard_normal(shape).astype(dtype)]
    if weight == "tensor":
        arrays.append((rng.random(shape) * 2 - 0.5).astype(dtype))  # some below 0.5, some above, some outside
        check_against_torch(lambda a, b, w: tk.lerp(a, b, w), lambda a, b, w: torch.lerp(a, b, w), arrays,
                            seed=seed, **_tol(dtype))
    else:
        check_against_torch(lambda a, b: a.lerp(b, weight), lambda a, b: a.lerp(b, weight), arrays, seed=seed,
                            **_tol(dtype))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), dtype=DTYPES, seed=st.integers(0, 2 ** 16),
       data=st.data())
def test_glu_matches_torch(shape, dtype, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    shape[dim] *= 2
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    check_against_torch(lambda t: F.glu(t, dim), lambda t: torch.nn.functional.glu(t, dim), [x], seed=seed,
                        **_tol(dtype))


def test_glu_refuses_an_odd_dimension_as_torch():
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is size 3"):
        F.glu(tk.ones(2, 3))
