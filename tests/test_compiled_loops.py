"""The compiled loops on numba's OpenMP threads (trainkit/autograd/ops/_numba_par.py, _numba_blas.py) give the
intra-op pool's results, whatever the geometry, dtype and thread count, and step aside where they cannot run.

Each test runs an op twice, with :func:`jit.set_parallel` off (the numpy pieces on the intra-op pool) and on
(one compiled loop), on the same data. The pieces are the same, so the values agree to the last bits
(the comparison allows a few units in the last place where BLAS may pick another kernel).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")
pytest.importorskip("scipy")

import trainkit as tk  # noqa: E402
from trainkit.autograd.ops import conv as conv_ops  # noqa: E402
from trainkit.autograd.ops import im2col, jit  # noqa: E402
from trainkit.autograd.ops.conv import Conv2d  # noqa: E402
from trainkit.autograd.ops import matmul as matmul_ops  # noqa: E402
from trainkit.autograd.ops.matmul import gemm  # noqa: E402
from trainkit.autograd.ops.norm import BatchNorm  # noqa: E402
from trainkit.autograd.ops.pool import MaxPool2x2  # noqa: E402

pytestmark = pytest.mark.skipif(jit.blas_parallel() is None, reason="numba's OpenMP layer is not available")

#: Differences allowed, relative to the largest magnitude: a strided conv's input gradient is summed phase by
#: phase on the pool and tap by tap in the loop, so its last bits may differ (a few float32 units).
TOL = {np.float32: 4e-6, np.float64: 1e-13}


def _both(fn, expect=None):
    """fn() with the compiled loops off, then on; the two results. ``expect``: names of compiled loops that
    must have run in the second call (so that a test cannot pass by comparing the pool with itself)."""
    from trainkit.autograd.ops import _numba_blas, _numba_par
    out, calls = [], []
    for flag in (False, True):
        prev = jit.set_parallel(flag)
        saved = {}
        if flag:
            for mod in (_numba_blas, _numba_par):
                for name in ("forward", "backward_same", "backward_cols", "pad_flat", "gemm_blocks", "gemm_t", "gemm_k", "moments",
                             "affine", "grad_sums", "grad_input", "relu_forward", "relu_backward",
                             "maxpool2x2_forward", "maxpool2x2_backward", "layer_norm_forward",
                             "layer_norm_backward"):
                    if hasattr(mod, name):
                        f = getattr(mod, name)
                        saved[(mod, name)] = f
                        setattr(mod, name, lambda *a, _f=f, _n=name: (calls.append(_n), _f(*a))[1])
        try:
            out.append(fn())
        finally:
            jit.set_parallel(prev)
            for (mod, name), f in saved.items():
                setattr(mod, name, f)
    assert not (set(expect or ()) - set(calls)), (expect, calls)
    return out


def _close(a, b, dtype):
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is None and v is None
            continue
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(v, u, rtol=0, atol=TOL[dtype] * max(1.0, float(np.abs(u).max())))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), c=st.integers(1, 5), o=st.integers(1, 18), size=st.integers(3, 12),
       k=st.sampled_from([1, 2, 3, 5]), stride=st.sampled_from([1, 2, (2, 1)]), pad=st.integers(0, 2),
       bias=st.booleans(), needs_x=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 16))
def test_conv_compiled_passes_match_the_pool(two_threads, n, c, o, size, k, stride, pad, bias, needs_x, dtype, seed):
    if size + 2 * pad < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(dtype)
    w = rng.standard_normal((o, c, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None

    def run():
        op = Conv2d(stride, pad)
        op.needs = (needs_x, True) + ((True,) if bias else ())
        y = op.forward(x, w, b)
        gy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
        return (y,) + tuple(op.backward(gy))

    direct = k == 1 and stride == 1 and pad == 0  # a 1x1 conv's columns are the input: one numpy product
    pool, compiled = _both(run, expect=[] if direct else ["forward"])
    _close(pool, compiled, dtype)


@pytest.mark.parametrize("chunk", [20000, 1 << 20])  # several pieces per op, and the usual size
def test_resnet_layers_give_the_same_values_with_and_without_compiled_loops(two_threads, monkeypatch, chunk):
    """The residual net's layer shapes: 3x3 'same' (columns of the output gradient), strided 3x3, strided 1x1,
    a 3-channel stem whose columns are kept, LeNet's 5x5 convs without padding (col2im)."""
    monkeypatch.setattr(conv_ops, "COLUMN_CHUNK_BYTES", chunk)
    rng = np.random.default_rng(0)
    for (c, o, size, k, s, p, needs_x) in [(16, 16, 16, 3, 1, 1, True), (16, 32, 16, 3, 2, 1, True),
                                           (16, 32, 16, 1, 2, 0, True), (3, 16, 32, 3, 1, 1, False),
                                           (3, 6, 32, 5, 1, 0, False), (6, 16, 14, 5, 1, 0, True),
                                           (4, 16, 32, 3, 1, 1, True)]:
        x = rng.standard_normal((10, c, size, size)).astype(np.float32)
        w = rng.standard_normal((o, c, k, k)).astype(np.float32)
        gy = None

        def run():
            op = Conv2d(s, p)
            op.needs = (needs_x, True)
            y = op.forward(x, w)
            return (y,) + tuple(op.backward(gy if gy is not None else np.ones_like(y)))

        pool, compiled = _both(run, expect=["forward", "backward_same" if (k, s, p) == (3, 1, 1) and needs_x
                                            else "backward_cols"])
        for u, v in zip(pool, compiled):
            if u is None:
                continue
            if s == 1:
                np.testing.assert_array_equal(u, v)
            else:  # the pool sums a strided conv's input gradient phase by phase, the loop tap by tap
                np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-5 * np.abs(u).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 5, 5), (7, 16, 16, 16), (33, 4, 9, 7), (5, 8)])
def test_batch_norm_relu_and_max_pool_match_the_pool(two_threads, shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::7] = 0.0  # ties and ReLU's zeros
    gy = rng.standard_normal(shape).astype(dtype)
    wt, bs = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)

    def run():
        bn = BatchNorm(np.zeros(shape[1], dtype), np.ones(shape[1], dtype), training=True)
        bn.needs = (True, True, True)
        y = bn.forward(x, wt, bs)
        out = [y, *bn.backward(gy), bn.rm.copy(), bn.rv.copy()]
        relu = tk.nn.ReLU()
        t = tk.tensor(np.repeat(x.reshape(-1), 1 + (1 << 16) // x.size), requires_grad=True)  # the kernel's size
        r = relu(t)
        r.backward(tk.tensor(np.ones(r.shape, dtype)))
        out += [r.detach().numpy(), t.grad.numpy()]
        if len(shape) == 4:
            mp = MaxPool2x2()
            mp.needs = (True,)
            out += [mp.forward(x), *mp.backward(np.ones((shape[0], shape[1], shape[2] // 2, shape[3] // 2), dtype))]
        return out

    expect = ["moments", "affine", "grad_sums", "grad_input", "relu_forward", "relu_backward"]
    pool, compiled = _both(run, expect=expect + (["maxpool2x2_forward", "maxpool2x2_backward"] if len(shape) == 4 else []))
    # batch norm's float64 sums are vectorised (fastmath reassociation): the kernel compiled inside the loop
    # may order them differently in the last bit than when called alone; ReLU and max pool are exact
    _close(pool[:6], compiled[:6], dtype)
    for u, v in zip(pool[6:], compiled[6:]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("ph,pw,kw", [(1, 1, 3), (0, 2, 5), (2, 0, 1), (0, 0, 3)])
def test_flat_planes_compiled_pass_writes_every_value(ph, pw, kw):
    x = np.random.default_rng(2).standard_normal((5, 3, 6, 7)).astype(np.float32)
    pool, compiled = _both(lambda: im2col.flat_planes(x, ph, pw, kw), expect=["pad_flat"])
    np.testing.assert_array_equal(pool, compiled)


def _product(rng, m, k, n, dtype, a_t, b_t):
    """a (m, k) and b (k, n), each C-contiguous or (``*_t``) the transpose of a C-contiguous array."""
    a = rng.standard_normal((k, m) if a_t else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if b_t else (k, n)).astype(dtype)
    return (a.T if a_t else a), (b.T if b_t else b)


def _check_product(got, lhs, rhs, bias, dtype):
    ref = lhs.astype(np.float64) @ rhs.astype(np.float64) + (0 if bias is None else bias)
    assert got.shape == ref.shape and got.dtype == dtype and got.flags.c_contiguous
    assert np.abs(got - ref).max() <= (2e-6 if dtype == np.float32 else 1e-13) * max(1.0, np.abs(ref).max()) * 8


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 90), k=st.integers(1, 70), n=st.integers(1, 90), dtype=st.sampled_from([np.float32, np.float64]),
       a_t=st.booleans(), b_t=st.booleans(), bias=st.booleans(), swap_k=st.sampled_from([1, 30, 10 ** 9]),
       seed=st.integers(0, 2 ** 16))
def test_gemm_blocks_match_numpy_for_any_shape_and_layout(two_threads, monkeypatch, m, k, n, dtype, a_t, b_t, bias,
                                                          swap_k, seed):
    """Every product goes through the blocks here (GEMM_MIN 1): rows, columns or swapped roles, edge blocks of
    one row or column, transposed operands (BLAS's flags and leading dimensions), with and without a bias."""
    monkeypatch.setattr(matmul_ops, "GEMM_MIN", 1)
    monkeypatch.setattr(matmul_ops, "ROWS_PER_THREAD", 4)
    monkeypatch.setattr(matmul_ops, "SWAP_MIN_K", swap_k)  # 1: every short product swaps; 10**9: none
    rng = np.random.default_rng(seed)
    lhs, rhs = _product(rng, m, k, n, dtype, a_t, b_t)
    b = rng.standard_normal(n).astype(dtype) if bias else None
    swap = m <= matmul_ops.SWAP_MAX_ROWS and k >= swap_k
    blocks = m >= 8 and n <= m or n >= 32
    expect = ["gemm_t"] if swap else (["gemm_blocks"] if blocks else [])
    pool, compiled = _both(lambda: gemm(lhs, rhs, b), expect=expect)
    _check_product(compiled, lhs, rhs, b, dtype)
    _check_product(pool, lhs, rhs, b, dtype)


@pytest.mark.parametrize("m,k,n,loop", [(128, 3072, 512, "gemm_t"), (512, 128, 3072, "gemm_blocks"),
                                        (300, 128, 64, "gemm_blocks"), (70, 33, 129, "gemm_blocks"),
                                        (20, 33, 30, None), (256, 4160, 96, "gemm_k")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_paths_at_real_sizes(two_threads, m, k, n, loop, dtype):
    """The MLP's products (swapped roles for its first layer, column blocks for its weight gradient), row and
    column blocks, one too small for blocks, and a weight gradient over many rows cut along the reduction."""
    rng = np.random.default_rng(3)
    lhs, rhs = _product(rng, m, k, n, dtype, loop == "gemm_k", True)
    bias = rng.standard_normal(n).astype(dtype)
    pool, compiled = _both(lambda: gemm(lhs, rhs, bias), expect=[loop] if loop else [])
    _check_product(compiled, lhs, rhs, bias, dtype)
    assert np.abs(compiled - pool).max() <= (1e-5 if dtype == np.float32 else 1e-12) * np.abs(pool).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_linear_layer_on_the_compiled_products_matches_torch(two_threads, dtype):
    """nn.Linear through the public API, large enough for the swapped roles (forward, with the bias) and column
    blocks (both gradients), against torch.nn.functional.linear."""
    torch = pytest.importorskip("torch")
    from trainkit import nn
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 1100)).astype(dtype)
    gy = rng.standard_normal((100, 300)).astype(dtype)
    layer = nn.Linear(1100, 300).to(tk.float32 if dtype == np.float32 else tk.float64)

    def run():
        xt = tk.tensor(x, requires_grad=True)
        layer.zero_grad()
        y = layer(xt)
        y.backward(tk.tensor(gy))
        return y.detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()

    pool, compiled = _both(run, expect=["gemm_t", "gemm_blocks"])
    w = torch.from_numpy(layer.weight.detach().numpy().copy()).requires_grad_()
    b = torch.from_numpy(layer.bias.detach().numpy().copy()).requires_grad_()
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.linear(xt, w, b)
    yt.backward(torch.from_numpy(gy))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for ours, theirs in zip(compiled, (yt.detach(), xt.grad, w.grad, b.grad)):
        theirs = theirs.numpy()
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * np.abs(theirs).max())
    _close(pool, compiled, dtype)


def _layer_norm(x, gy, weight, bias, nd):
    """LayerNorm's op forward and backward on arrays: (y, gx[, gw[, gb]])."""
    from trainkit.autograd.ops.layer_norm import LayerNorm
    params = [p for p in (weight, bias) if p is not None]
    op = LayerNorm(nd, 1e-5)
    op.needs = (True,) * (1 + len(params))
    y = op.forward(x, *params)
    return (y,) + tuple(op.backward(gy))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.lists(st.integers(1, 9), min_size=1, max_size=2), norm=st.lists(st.integers(1, 40), min_size=1,
       max_size=2), params=st.integers(0, 2), dtype=st.sampled_from([np.float32, np.float64]),
       offset=st.sampled_from([0.0, 50.0]), seed=st.integers(0, 2 ** 16))
@example(lead=[2], norm=[4], params=0, dtype=np.float32, offset=50.0, seed=263)  # a row of spread 0.08 near 50
def test_layer_norm_compiled_rows_match_the_numpy_path(two_threads, monkeypatch, lead, norm, params, dtype, offset,
                                                       seed):
    """Any shape (one or two normalised dimensions, rows of one value, pieces of one row), with and without
    weight and bias, and inputs far from zero mean: the compiled pieces give the numpy path's values."""
    from trainkit.autograd.ops import layer_norm
    monkeypatch.setattr(layer_norm, "COMPILED_MIN", 1)
    monkeypatch.setattr(layer_norm, "PIECE_VALUES", 64)
    rng = np.random.default_rng(seed)
    shape = tuple(lead) + tuple(norm)
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal(norm).astype(dtype) if params >= 1 else None
    bias = rng.standard_normal(norm).astype(dtype) if params >= 2 else None
    pool, compiled = _both(lambda: _layer_norm(x, gy, weight, bias, len(norm)),
                           expect=["layer_norm_forward", "layer_norm_backward"])
    # Both paths subtract a mean rounded to the input's dtype, so each row's result is exact to about
    # eps * max|x| / std: a row of values near 50 with a spread of 0.08 loses 600 ulp in either path.
    rows = x.reshape(-1, int(np.prod(norm))).astype(np.float64)
    cond = float(np.max(np.abs(rows).max(axis=1) / np.sqrt(rows.var(axis=1) + 1e-5)))
    tol = max(2e-5 if dtype == np.float32 else 1e-11, 4 * float(np.finfo(dtype).eps) * cond)
    for u, v in zip(pool, compiled):
        assert u.shape == v.shape and u.dtype == v.dtype == dtype
        np.testing.assert_allclose(v, u, rtol=0, atol=tol * max(1.0, float(np.abs(u).max())))


def test_layer_norm_compiled_rows_match_torch_and_do_not_depend_on_threads():
    """A ViT's (4160, 128) activations through nn.LayerNorm: torch's values, and bitwise the same on 1 and 2
    threads (per-piece sums of the parameter gradients added in piece order)."""
    torch = pytest.importorskip("torch")
    from trainkit import nn
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4160, 128)) * 3 + 1).astype(np.float32)
    gy = rng.standard_normal((4160, 128)).astype(np.float32)
    w, b = rng.standard_normal(128).astype(np.float32), rng.standard_normal(128).astype(np.float32)

    def run():
        layer = nn.LayerNorm(128)
        layer.weight.data, layer.bias.data = tk.tensor(w), tk.tensor(b)
        xt = tk.tensor(x, requires_grad=True)
        layer(xt).backward(tk.tensor(gy))
        return [a.numpy().copy() for a in (layer(xt).detach(), xt.grad, layer.weight.grad, layer.bias.grad)]

    prev = tk.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            tk.set_num_threads(nt)
            outs.append(_both(run, expect=["layer_norm_forward", "layer_norm_backward"])[1])
    finally:
        tk.set_num_threads(prev)
    for u, v in zip(*outs):
        np.testing.assert_array_equal(u, v)
    tl = torch.nn.LayerNorm(128)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(w))
        tl.bias.copy_(torch.from_numpy(b))
    xx = torch.from_numpy(x).requires_grad_()
    yy = tl(xx)
    yy.backward(torch.from_numpy(gy))
    for ours, theirs in zip(outs[0], (yy.detach(), xx.grad, tl.weight.grad, tl.bias.grad)):
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-6 * np.abs(theirs).max())


def test_swapped_products_are_bitwise_the_same_on_one_and_two_threads():
    """The swapped roles run on one thread too; their column blocks do not change a value's sum."""
    rng = np.random.default_rng(4)
    x, wt = _product(rng, 100, 2000, 300, np.float32, False, True)
    bias = rng.standard_normal(300).astype(np.float32)
    prev = tk.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            tk.set_num_threads(nt)
            outs.append(_both(lambda: gemm(x, wt, bias), expect=["gemm_t"])[1])
    finally:
        tk.set_num_threads(prev)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_training_steps_are_bitwise_the_same_on_one_and_two_threads_with_compiled_loops(monkeypatch):
    """The compiled loops' pieces depend on the data's sizes only: 1 and 2 threads give the same weights."""
    from trainkit import nn, optim
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((11, 3, 16, 16)).astype(np.float32) for _ in range(2)]
    ys = [rng.integers(0, 10, 11) for _ in range(2)]

    def train():
        tk.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(), nn.Flatten(),
                              nn.Linear(16 * 4 * 4, 10))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        for x, y in zip(xs, ys):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(tk.tensor(x)), tk.tensor(y))
            loss.backward()
            opt.step()
        return [p.detach().numpy().copy() for p in model.parameters()]

    prev = tk.get_num_threads()
    try:
        tk.set_num_threads(1)
        one = train()
        tk.set_num_threads(2)
        two = train()
    finally:
        tk.set_num_threads(prev)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def _run(code: str, env=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_a_child_forked_after_openmp_started_runs_the_pool_instead():
    """GNU OpenMP aborts a forked child that starts a parallel region: the child must not use the loops."""
    r = _run("""
        import os, sys, numpy as np
        import trainkit
        from trainkit.autograd.ops import jit
        from trainkit.autograd.ops.conv import Conv2d
        trainkit.set_num_threads(2)
        x = np.random.default_rng(0).standard_normal((8, 4, 12, 12)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((6, 4, 3, 3)).astype(np.float32)
        def conv():
            op = Conv2d(1, 1); op.needs = (True, True)
            y = op.forward(x, w)
            return y, op.backward(np.ones_like(y))[1]
        assert jit.blas_parallel() is not None
        y0, g0 = conv()
        pid = os.fork()
        if pid == 0:
            ok = jit.parallel() is None and jit.blas_parallel() is None
            y1, g1 = conv()
            os._exit(0 if ok and np.array_equal(y0, y1) and np.array_equal(g0, g1) else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """)
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout, r.stdout + r.stderr


def test_another_threading_layer_keeps_the_pool():
    """numba's workqueue layer makes its workers sleep between regions (slower than the pool): not used."""
    r = _run("""
        import numpy as np, trainkit
        from trainkit.autograd.ops import jit
        from trainkit.autograd.ops.norm import BatchNorm
        trainkit.set_num_threads(2)
        print("parallel", jit.parallel())
        bn = BatchNorm(None, None, training=True); bn.needs = (True,)
        x = np.random.default_rng(0).standard_normal((6, 3, 4, 4)).astype(np.float32)
        y = bn.forward(x)
        print("mean", float(abs(y.mean(axis=(0, 2, 3))).max()) < 1e-6)
        """, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert r.returncode == 0, r.stderr
    assert "parallel None" in r.stdout and "mean True" in r.stdout, r.stdout


def test_scipy_blas_is_serial_inside_the_loops_and_restored(two_threads):
    jit.blas_parallel()
    if jit._sp_get is None:
        pytest.skip("SciPy's BLAS controls were not found")
    before = jit._sp_get()
    with jit.serial_scipy_blas():
        assert jit._sp_get() == 1
    assert jit._sp_get() == before


def test_float16_takes_the_numpy_path(two_threads):
    """numba has no float16 arrays: batch norm, max pool, a large ReLU and the fused SGD step in float16 run
    their numpy code (they used to stop with numba's NotImplementedError)."""
    from trainkit import nn, optim
    rng = np.random.default_rng(4)
    x = tk.tensor(rng.standard_normal((4, 3, 6, 6)).astype(np.float16), requires_grad=True)
    y = nn.MaxPool2d(2)(nn.BatchNorm2d(3)(x))
    y.sum().backward()
    assert y.dtype == tk.float16 and x.grad.dtype == tk.float16 and np.isfinite(x.grad.numpy()).all()
    big = tk.tensor(rng.standard_normal(1 << 17).astype(np.float16), requires_grad=True)
    r = nn.ReLU()(big)
    r.sum().backward()
    np.testing.assert_array_equal(big.grad.numpy(), (big.detach().numpy() > 0).astype(np.float16))
    p = tk.tensor(np.ones(1 << 15, np.float16), requires_grad=True)
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    (p * p).sum().backward()
    opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), np.zeros(1 << 15, np.float16))
