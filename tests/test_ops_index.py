"""Indexing, sorting, layout and linear-algebra ops (einsum included) against PyTorch: float64 values and
gradients to 1e-7 on hypothesis-drawn shapes, dims and indices; return types; in-place ops under no_grad."""
from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import trainkit as tk

torch = pytest.importorskip("torch")

from trainkit.testing.oracle import check_against_torch  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def floats(shape, lo=-3.0, hi=3.0):
    # magnitudes below 1e-30 become 0: products of them underflow, where torch and numpy round differently
    elements = st.floats(lo, hi, allow_nan=False, width=64).map(lambda v: 0.0 if abs(v) < 1e-30 else v)
    return hnp.arrays(np.float64, shape, elements=elements)


def distinct(data, shape):
    """Values without ties (sorting and selection then have one right answer)."""
    n = int(np.prod(shape))
    perm = data.draw(st.permutations(list(range(n))))
    return (np.asarray(perm, dtype=np.float64) * 0.5 - n / 4).reshape(shape)


nd_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


# ------------------------------------------------------------------------------------------------ indexing
@SETTINGS
@given(data=st.data())
def test_gather_and_take_along_dim_with_repeated_indices_match_torch(data):
    shape = data.draw(nd_shapes)
    x = data.draw(floats(shape))
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    ishape = tuple(data.draw(st.integers(1, n)) if k != d % len(shape) else data.draw(st.integers(1, 5))
                   for k, n in enumerate(shape))
    idx = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, shape[d] - 1)))
    check_against_torch(lambda t, i: tk.gather(t, d, i), lambda t, i: torch.gather(t, d, i), [x, idx])
    check_against_torch(lambda t, i: t.gather(d, i), lambda t, i: t.gather(d, i), [x, idx])
    # take_along_dim broadcasts: a size-1 index dimension spreads over the input
    bshape = tuple(ishape[k] if k == d % len(shape) else (1 if data.draw(st.booleans()) else n)
                   for k, n in enumerate(shape))
    bidx = data.draw(hnp.arrays(np.int64, bshape, elements=st.integers(0, shape[d] - 1)))
    check_against_torch(lambda t, i: tk.take_along_dim(t, i, d), lambda t, i: torch.take_along_dim(t, i, d), [x, bidx])
    flat = data.draw(hnp.arrays(np.int64, (3,), elements=st.integers(0, x.size - 1)))
    check_against_torch(lambda t, i: tk.take_along_dim(t, i), lambda t, i: torch.take_along_dim(t, i), [x, flat])


@SETTINGS
@given(data=st.data())
def test_scatter_and_scatter_add_match_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(floats(shape))
    d = data.draw(st.integers(0, len(shape) - 1))
    ishape = tuple(data.draw(st.integers(1, n)) for n in shape)
    src = data.draw(floats(ishape))
    big_src = data.draw(floats(tuple(n + 1 for n in ishape)))  # src may be larger than index (forward only:
    # scatter: unique targets along dim (PyTorch leaves the winner of a duplicate unspecified)
    n = shape[d]
    rows = [data.draw(st.permutations(list(range(n)))) for _ in range(int(np.prod(ishape)) // ishape[d])]
    uniq = np.moveaxis(np.array([r[:ishape[d]] for r in rows]).reshape(
        tuple(m for k, m in enumerate(ishape) if k != d) + (ishape[d],)), -1, d)
    check_against_torch(lambda t, i, s: tk.scatter(t, d, i, s), lambda t, i, s: torch.scatter(t, d, i, s),
                        [x, uniq, src])
    check_against_torch(lambda t, i, s: tk.scatter(t, d, i, s), lambda t, i, s: torch.scatter(t, d, i, s),
                        [x, uniq, big_src], grad=[True, False, False])  # torch's backward rejects a larger src)
    check_against_torch(lambda t, i: t.scatter(d, i, 1.5), lambda t, i: t.scatter(d, i, 1.5), [x, uniq])
    rep = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, n - 1)))
    check_against_torch(lambda t, i, s: tk.scatter_add(t, d, i, s), lambda t, i, s: torch.scatter_add(t, d, i, s),
                        [x, rep, src])
    check_against_torch(lambda t, i, s: t.scatter_add(d, i, s), lambda t, i, s: t.scatter_add(d, i, s),
                        [x, rep, big_src], grad=[True, False, False])


def test_scatter_reduce_argument_forward_and_its_missing_gradient():
    x = np.arange(6.0).reshape(2, 3)
    idx = np.array([[0, 0, 1]])
    src = np.full((1, 3), 2.0)
    for mode in ("add", "multiply"):
        ours = tk.scatter(tk.tensor(x), 0, tk.tensor(idx), tk.tensor(src), reduce=mode)
        theirs = torch.scatter(torch.tensor(x), 0, torch.tensor(idx), torch.tensor(src), reduce=mode)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(RuntimeError, match="derivative for scatter with reduce"):
        tk.scatter(tk.tensor(x, requires_grad=True), 0, tk.tensor(idx), tk.tensor(src), reduce="add")


@SETTINGS
@given(data=st.data())
def test_index_select_masked_fill_masked_select_nonzero_match_torch(data):
    shape = data.draw(nd_shapes)
    x = data.draw(floats(shape))
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    idx = data.draw(hnp.arrays(np.int64, (data.draw(st.integers(0, 5)),), elements=st.integers(0, shape[d] - 1)))
    check_against_torch(lambda t, i: tk.index_select(t, d, i), lambda t, i: torch.index_select(t, d, i), [x, idx])
    mshape = data.draw(hnp.broadcastable_shapes(shape, max_dims=len(shape)))
    mask = data.draw(hnp.arrays(bool, mshape))
    check_against_torch(lambda t, m: t.masked_fill(m, -2.0), lambda t, m: t.masked_fill(m, -2.0), [x, mask])
    check_against_torch(lambda t, m: tk.masked_select(t, m), lambda t, m: torch.masked_select(t, m), [x, mask])
    z = np.where(np.abs(x) < 1, 0.0, x)
    check_against_torch(lambda t: tk.nonzero(t), lambda t: torch.nonzero(t), [z], grad=[False])
    check_against_torch(lambda t: tk.nonzero(t, as_tuple=True), lambda t: torch.nonzero(t, as_tuple=True), [z],
                        grad=[False])


def test_masked_fill_with_a_tensor_value_sends_its_gradient():
    x = np.random.default_rng(0).standard_normal((3, 4))
    mask = x > 0.3
    check_against_torch(lambda t, v: t.masked_fill(tk.tensor(mask), v), lambda t, v: t.masked_fill(torch.tensor(mask), v),
                        [x, np.array(0.7)])


def test_embedding_matches_torch_and_padding_row_gets_no_gradient():
    import trainkit.nn.functional as F

    w = np.random.default_rng(0).standard_normal((5, 3))
    idx = np.array([[0, 2, 2], [4, 1, 2]])
    for pad in (None, 2, -1):
        check_against_torch(lambda i, t: F.embedding(i, t, padding_idx=pad),
                            lambda i, t: torch.nn.functional.embedding(i, t, padding_idx=pad), [idx, w])


# ------------------------------------------------------------------------------------------------ sorting
@SETTINGS
@given(data=st.data())
def test_sort_argsort_topk_kthvalue_median_match_torch(data):
    shape = data.draw(nd_shapes)
    x = distinct(data, shape)
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    desc = data.draw(st.booleans())
    check_against_torch(lambda t: tk.sort(t, d, desc), lambda t: torch.sort(t, d, desc), [x])
    check_against_torch(lambda t: t.argsort(d, desc), lambda t: t.argsort(d, desc), [x], grad=[False])
    k = data.draw(st.integers(0, shape[d]))
    largest = data.draw(st.booleans())
    check_against_torch(lambda t: tk.topk(t, k, d, largest), lambda t: torch.topk(t, k, d, largest), [x])
    kk = data.draw(st.integers(1, shape[d]))
    keep = data.draw(st.booleans())
    check_against_torch(lambda t: tk.kthvalue(t, kk, d, keep), lambda t: torch.kthvalue(t, kk, d, keep), [x])
    check_against_torch(lambda t: t.median(d, keep), lambda t: t.median(d, keep), [x])
    check_against_torch(lambda t: tk.median(t), lambda t: torch.median(t), [x])
    check_against_torch(lambda t: tk.msort(t), lambda t: torch.msort(t), [x])


def test_stable_sort_keeps_input_order_of_ties_in_both_directions():
    x = np.array([2, 1, 2, 3, 1, 2, 3], dtype=np.int64)
    for desc in (False, True):
        ours = tk.sort(tk.tensor(x), descending=desc, stable=True)
        theirs = torch.sort(torch.tensor(x), descending=desc, stable=True)
        assert ours.indices.tolist() == theirs.indices.tolist() and ours.values.tolist() == theirs.values.tolist()
    nan = np.array([1.0, np.nan, -1.0])
    assert np.isnan(tk.sort(tk.tensor(nan)).values.numpy()[-1])  # NaN sorts last, as in torch
    assert tk.topk(tk.tensor(nan), 1).indices.tolist() == [1]


def test_return_types_unpack_and_read_by_name():
    x = tk.tensor([[3.0, 1.0, 2.0]])
    values, indices = x.sort()
    r = x.topk(2)
    assert type(r).__name__ == "topk" and r.values.tolist() == [[3.0, 2.0]] and r[1].tolist() == [[0, 2]]
    assert repr(x.max(1)).startswith("trainkit.return_types.max(\nvalues=tensor(")
    assert isinstance(values, tk.Tensor) and indices.dtype == np.int64
    assert tk.return_types.sort is type(x.sort())


@SETTINGS
@given(data=st.data())
def test_unique_matches_torch(data):
    x = data.draw(hnp.arrays(np.int64, data.draw(nd_shapes), elements=st.integers(-2, 2)))
    for kw in ({}, {"return_inverse": True}, {"return_counts": True}, {"return_inverse": True, "return_counts": True}):
        check_against_torch(lambda t: tk.unique(t, **kw), lambda t: torch.unique(t, **kw), [x], grad=[False])
    d = data.draw(st.integers(0, x.ndim - 1))
    check_against_torch(lambda t: tk.unique(t, dim=d, return_counts=True),
                        lambda t: torch.unique(t, dim=d, return_counts=True), [x], grad=[False])


# ------------------------------------------------------------------------------------------------ layout
@SETTINGS
@given(data=st.data())
def test_split_chunk_tensor_split_unbind_narrow_select_match_torch(data):
    shape = data.draw(nd_shapes)
    x = data.draw(floats(shape))
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[d]
    size = data.draw(st.integers(1, n + 1))
    check_against_torch(lambda t: tk.split(t, size, d), lambda t: torch.split(t, size, d), [x])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    check_against_torch(lambda t: t.split(sizes, d), lambda t: t.split(sizes, d), [x])
    chunks = data.draw(st.integers(1, 5))
    check_against_torch(lambda t: tk.chunk(t, chunks, d), lambda t: torch.chunk(t, chunks, d), [x])
    check_against_torch(lambda t: tk.tensor_split(t, chunks, d), lambda t: torch.tensor_split(t, chunks, d), [x])
    check_against_torch(lambda t: tk.tensor_split(t, cuts, d), lambda t: torch.tensor_split(t, cuts, d), [x])
    check_against_torch(lambda t: tk.unbind(t, d), lambda t: torch.unbind(t, d), [x])
    start = data.draw(st.integers(-n, n - 1))
    length = data.draw(st.integers(0, n - (start % n)))
    check_against_torch(lambda t: tk.narrow(t, d, start, length), lambda t: torch.narrow(t, d, start, length), [x])
    i = data.draw(st.integers(-n, n - 1))
    check_against_torch(lambda t: t.select(d, i), lambda t: t.select(d, i), [x])


@SETTINGS
@given(data=st.data())
def test_movedim_flip_roll_repeat_interleave_match_torch(data):
    shape = data.draw(nd_shapes)
    x = data.draw(floats(shape))
    nd = len(shape)
    src = data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    dst = data.draw(st.permutations(list(range(nd))))[:len(src)]
    check_against_torch(lambda t: tk.movedim(t, src, dst), lambda t: torch.movedim(t, src, dst), [x])
    dims = data.draw(st.lists(st.integers(0, nd - 1), max_size=nd, unique=True))
    check_against_torch(lambda t: tk.flip(t, dims), lambda t: torch.flip(t, dims), [x])
    check_against_torch(lambda t: t.flip(*dims) if dims else t.flip(dims), lambda t: t.flip(dims), [x])
    shifts = [data.draw(st.integers(-5, 5)) for _ in dims]
    if dims:
        check_against_torch(lambda t: tk.roll(t, shifts, dims), lambda t: torch.roll(t, shifts, dims), [x])
    check_against_torch(lambda t: tk.roll(t, 3), lambda t: torch.roll(t, 3), [x])
    d = data.draw(st.integers(-nd, nd - 1))
    r = data.draw(st.integers(0, 3))
    check_against_torch(lambda t: tk.repeat_interleave(t, r, d), lambda t: torch.repeat_interleave(t, r, d), [x])
    counts = data.draw(hnp.arrays(np.int64, (shape[d],), elements=st.integers(0, 3)))
    check_against_torch(lambda t, c: t.repeat_interleave(c, d), lambda t, c: t.repeat_interleave(c, d), [x, counts])
    check_against_torch(lambda t: tk.repeat_interleave(t, 2), lambda t: torch.repeat_interleave(t, 2), [x])
    check_against_torch(lambda c: tk.repeat_interleave(c), lambda c: torch.repeat_interleave(c), [counts])


def test_expand_as_view_as_match_torch():
    x = np.random.default_rng(0).standard_normal((3, 1))
    other = np.zeros((2, 3, 4))
    check_against_torch(lambda t, o: t.expand_as(o), lambda t, o: t.expand_as(o), [x, other], grad=[True, False])
    check_against_torch(lambda t, o: t.view_as(o[0, :, 0]), lambda t, o: t.view_as(o[0, :, 0]), [x, other],
                        grad=[True, False])


def test_flip_returns_a_copy_like_torch():
    x = tk.arange(4.0)
    y = tk.flip(x, (0,))
    y[0] = 100.0
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0]


# ------------------------------------------------------------------------------------------------ linalg
@SETTINGS
@given(data=st.data())
def test_tril_triu_diag_diagonal_diag_embed_trace_match_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4))
    x = data.draw(floats(shape))
    k = data.draw(st.integers(-3, 3))
    check_against_torch(lambda t: tk.tril(t, k), lambda t: torch.tril(t, k), [x])
    check_against_torch(lambda t: t.triu(k), lambda t: t.triu(k), [x])
    d1, d2 = data.draw(st.permutations(list(range(len(shape)))))[:2]
    check_against_torch(lambda t: tk.diagonal(t, k, d1, d2), lambda t: torch.diagonal(t, k, d1, d2), [x])
    check_against_torch(lambda t: tk.diag_embed(t, k), lambda t: torch.diag_embed(t, k), [x])
    m = x.reshape(-1, shape[-1])
    check_against_torch(lambda t: tk.diag(t, k), lambda t: torch.diag(t, k), [m])
    check_against_torch(lambda t: tk.diag(t, k), lambda t: torch.diag(t, k), [m[0]])
    check_against_torch(lambda t: tk.trace(t), lambda t: torch.trace(t), [m])


def test_eye_mm_bmm_dot_outer_match_torch():
    rng = np.random.default_rng(0)
    assert tk.eye(3).dtype == np.float32 and tk.eye(2, 4).tolist() == torch.eye(2, 4).tolist()
    assert tk.eye(3, dtype=tk.float64).dtype == np.float64
    a, b, v, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4), rng.standard_normal(3)
    check_against_torch(tk.mm, torch.mm, [a, b])
    check_against_torch(lambda x, y: x.bmm(y), lambda x, y: x.bmm(y), [np.stack([a, a * 2]), np.stack([b, -b])])
    check_against_torch(tk.dot, torch.dot, [v, v * 3])
    check_against_torch(tk.outer, torch.outer, [v, w])
    for bad in (lambda m: m.mm(m.ones(2, 3), m.ones(2, 3)), lambda m: m.bmm(m.ones(2, 3), m.ones(3, 2)),
                lambda m: m.dot(m.ones(2), m.ones(3))):
        with pytest.raises(RuntimeError):
            bad(tk)
        with pytest.raises(RuntimeError):
            bad(torch)


def _einsum_case(data):
    """A random einsum equation: operands share labels, some summed, some repeated, maybe with an ellipsis."""
    letters = string.ascii_lowercase[:6]
    sizes = {c: data.draw(st.integers(1, 4)) for c in letters}
    n_ops = data.draw(st.integers(1, 3))
    terms = []
    for _ in range(n_ops):
        terms.append("".join(data.draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3))))
    used = sorted(set("".join(terms)))
    out = "".join(data.draw(st.permutations(used))[:data.draw(st.integers(0, len(used)))])
    ell = data.draw(st.booleans())
    eshape = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2))) if ell else ()
    shapes, subs = [], []
    for t in terms:
        shape = tuple(sizes[c] for c in t)
        if ell and data.draw(st.booleans()):
            k = data.draw(st.integers(0, len(eshape)))
            shape = eshape[len(eshape) - k:] + shape
            t = "..." + t
        subs.append(t)
        shapes.append(shape)
    has_ell = any("..." in s for s in subs)
    eq = ",".join(subs) + ("->" + ("..." if has_ell else "") + out if data.draw(st.booleans()) or has_ell else "")
    return eq, shapes


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_einsum_random_equations_match_torch(data):
    eq, shapes = _einsum_case(data)
    arrays = [data.draw(floats(s)) for s in shapes]
    check_against_torch(lambda *ts: tk.einsum(eq, *ts), lambda *ts: torch.einsum(eq, *ts), arrays)


def test_einsum_broadcasts_size_one_labels_and_accepts_a_list():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 1, 3)), rng.standard_normal((4, 3))
    check_against_torch(lambda x, y: tk.einsum("bij,kj->bik", x, y), lambda x, y: torch.einsum("bij,kj->bik", x, y), [a, b])
    check_against_torch(lambda x, y: tk.einsum("ij,ij->i", [x, y]), lambda x, y: torch.einsum("ij,ij->i", [x, y]),
                        [rng.standard_normal((3, 1)), rng.standard_normal((3, 4))])


def test_einsum_contracts_pairs_with_one_batched_matmul(monkeypatch):
    # numpy's own einsum takes its C loop for 'bij,bjk->bik' (many times slower than a GEMM); each pairwise
    # step here must be a single np.matmul, as torch.einsum uses bmm. Speed itself: benchmarks/ops.py.
    from trainkit.autograd.ops import einsum as einsum_ops

    calls = {"matmul": 0, "einsum": 0}
    real_matmul, real_einsum = np.matmul, np.einsum

    def counting_matmul(*args, **kwargs):
        calls["matmul"] += 1
        return real_matmul(*args, **kwargs)

    def counting_einsum(*args, **kwargs):
        calls["einsum"] += 1
        return real_einsum(*args, **kwargs)

    monkeypatch.setattr(einsum_ops.np, "matmul", counting_matmul)
    monkeypatch.setattr(einsum_ops.np, "einsum", counting_einsum)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 5, 6)), rng.standard_normal((4, 6, 3))
    y = einsum_ops.contract(("bij", "bjk"), "bik", [a, b])
    assert calls == {"matmul": 1, "einsum": 0}
    np.testing.assert_allclose(y, real_matmul(a, b), rtol=1e-12)
    c = rng.standard_normal((3, 2))
    calls.update(matmul=0, einsum=0)
    einsum_ops.contract(("bij", "bjk", "kl"), "bil", [a, b, c])
    assert calls["matmul"] == 2 and calls["einsum"] == 0


# ------------------------------------------------------------------------------------------------ in place
def test_in_place_ops_under_no_grad_match_torch():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    ours, theirs = tk.tensor(w0.copy(), requires_grad=True), torch.tensor(w0.copy(), requires_grad=True)
    steps = [
        lambda t, m: t.add_(m.ones(4), alpha=-0.5),
        lambda t, m: t.mul_(2.0),
        lambda t, m: t.clamp_(min=-1.0),
        lambda t, m: t.clamp_(-0.5, 0.5),
        lambda t, m: t.masked_fill_(t > 0.25, 9.0),
        lambda t, m: t.copy_(t * 0.5 + 1),
        lambda t, m: t.scatter_(1, m.tensor([[0], [1], [2]]), -3.0),
        lambda t, m: t.tril_(),
    ]
    for step in steps:
        with tk.no_grad():
            step(ours, tk)
        with torch.no_grad():
            step(theirs, torch)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)
    with tk.no_grad():
        ours.fill_(2.5).zero_()
    assert not ours.detach().numpy().any() and ours.dtype == np.float32
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ours.add_(1.0)


def test_in_place_random_fills_use_the_generator_and_keep_dtype():
    t = tk.zeros(2000)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    t.uniform_(-2, 3, generator=g1)
    assert t.dtype == np.float32 and -2 <= t.numpy().min() and t.numpy().max() < 3
    u = tk.zeros(2000).uniform_(-2, 3, generator=g2)
    np.testing.assert_array_equal(t.numpy(), u.numpy())
    n = tk.zeros(20000, dtype=tk.float64).normal_(1.0, 2.0, generator=np.random.default_rng(1))
    assert abs(n.numpy().mean() - 1.0) < 0.1 and abs(n.numpy().std() - 2.0) < 0.1 and n.dtype == np.float64
    b = tk.zeros(20000).bernoulli_(0.3, generator=np.random.default_rng(2))
    assert set(np.unique(b.numpy())) <= {0.0, 1.0} and abs(b.numpy().mean() - 0.3) < 0.02
    e = tk.zeros(20000).exponential_(2.0, generator=np.random.default_rng(3))
    assert abs(e.numpy().mean() - 0.5) < 0.03
