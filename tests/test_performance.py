"""The fast paths of the hot ops give the same values and gradients as the plain definitions.

The gradient checker uses tiny inputs, which never reach the chunked conv2d
forward (several chunks per batch), the frozen-weight and no_grad branches, or
an odd-sized 2x2 max pool; these tests do, against direct numpy loops.
"""
from __future__ import annotations

import numpy as np
import pytest

import trainkit as tk
import trainkit.nn.functional as F
from trainkit.autograd.ops import conv as conv_ops


def conv_ref(x, w, b, stride, pad):
    """Direct cross-correlation and its gradients for the loss sum(y * gy)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y + b.reshape(1, o, 1, 1)


def conv_grads_ref(x, w, gy, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(gy.shape[2]):
        for j in range(gy.shape[3]):
            sl = (slice(None), slice(None), slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw))
            gw += np.tensordot(gy[:, :, i, j], xp[sl], axes=([0], [0]))
            gxp[sl] += np.tensordot(gy[:, :, i, j], w, axes=([1], [0]))
    return gxp[:, :, pad:pad + h, pad:pad + wd], gw


@pytest.mark.parametrize("stride,pad,k", [(1, 0, 3), (1, 2, 3), (2, 1, 3), (1, 1, 3), (1, 2, 5), (1, 3, 3),
                                          (1, 0, 1), (2, 0, 1), (3, 2, 3)])
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 19])
@pytest.mark.parametrize("keep_max", [1 << 40, 0])
@pytest.mark.parametrize("flat_junk", [0.0, 1.0])
@pytest.mark.parametrize("block_bytes", [1, 1 << 18])
def test_conv2d_chunked_forward_and_backward_match_direct_loops(monkeypatch, stride, pad, k, chunk_bytes, keep_max,
                                                                  flat_junk, block_bytes):
    # flat_junk 1.0: flat windows for every stride-1 conv, 0.0: only where they add no junk columns;
    # pad >= (k-1)/2 takes the transposed-conv input gradient, smaller pads the col2im one
    monkeypatch.setattr(conv_ops, "FLAT_MAX_JUNK", flat_junk)
    monkeypatch.setattr(conv_ops, "FLAT_MAX_WIDTH", 1 << 20)
    monkeypatch.setattr(conv_ops, "COLUMN_CHUNK_BYTES", chunk_bytes)  # 1 byte: one image per piece
    monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_MAX_BYTES", keep_max)  # 0: columns rebuilt in backward
    monkeypatch.setattr(conv_ops, "POSITION_BLOCK_BYTES", block_bytes)  # 1 byte: blocks of 5 positions
    monkeypatch.setattr(conv_ops, "POSITION_BLOCK", 5)  # (w has 4 output channels: blocked)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 9, 8))
    w = rng.standard_normal((4, 3, k, k))
    b = rng.standard_normal(4)
    xt, wt, bt = (tk.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    np.testing.assert_allclose(y.detach().numpy(), conv_ref(x, w, b, stride, pad), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    (y * tk.tensor(gy)).sum().backward()
    gx_ref, gw_ref = conv_grads_ref(x, w, gy, stride, pad)
    np.testing.assert_allclose(xt.grad.numpy(), gx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), gw_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bt.grad.numpy(), gy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)


def test_conv2d_frozen_weight_and_no_grad_paths(monkeypatch):
    monkeypatch.setattr(conv_ops, "COLUMN_CHUNK_BYTES", 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    b = np.zeros(5, np.float32)
    xt, wt = tk.tensor(x, requires_grad=True), tk.tensor(w)  # weight frozen: no columns kept
    y = F.conv2d(xt, wt, padding=1)
    assert y.dtype == np.float32
    gy = rng.standard_normal(y.shape).astype(np.float32)
    (y * tk.tensor(gy)).sum().backward()
    gx_ref, _ = conv_grads_ref(x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64), 1, 1)
    np.testing.assert_allclose(xt.grad.numpy(), gx_ref, rtol=1e-4, atol=1e-4)
    assert wt.grad is None and xt.grad.dtype == np.float32
    with tk.no_grad():
        z = F.conv2d(tk.tensor(x, requires_grad=True), tk.tensor(w, requires_grad=True), padding=1)
    assert z.grad_fn is None and not z.requires_grad
    np.testing.assert_allclose(z.numpy(), conv_ref(x, w, b, 1, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 2, 7, 5)])
def test_max_pool_2x2_gradient_goes_to_the_first_maximum(shape):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, shape).astype(np.float64)  # many ties
    xt = tk.tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, 2)
    gy = rng.standard_normal(y.shape)
    (y * tk.tensor(gy)).sum().backward()
    n, c, h, w = shape
    ref_y = np.zeros(y.shape)
    ref_g = np.zeros(shape)
    for i in range(h // 2):
        for j in range(w // 2):
            win = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(n, c, 4)
            k = win.argmax(axis=2)  # first maximum in scan order, as PyTorch
            ref_y[:, :, i, j] = win.max(axis=2)
            for a in range(n):
                for b in range(c):
                    ref_g[a, b, 2 * i + k[a, b] // 2, 2 * j + k[a, b] % 2] += gy[a, b, i, j]
    np.testing.assert_array_equal(y.detach().numpy(), ref_y)
    np.testing.assert_allclose(xt.grad.numpy(), ref_g, rtol=0, atol=0)


def test_relu_under_no_grad_and_in_training():
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    with tk.no_grad():
        assert F.relu(tk.tensor(x)).numpy().tolist() == [[0.0, 0.0, 2.0]]
    xt = tk.tensor(x, requires_grad=True)
    F.relu(xt).sum().backward()
    assert xt.grad.numpy().tolist() == [[0.0, 0.0, 1.0]] and xt.grad.dtype == np.float32


def test_allocator_tuning_is_on_by_default_on_glibc_and_can_be_turned_off():
    import subprocess
    import sys
    code = "import trainkit, trainkit.autograd.allocator as a; print(a._tuned)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    import platform
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert on == "True"
    env = {**__import__("os").environ, "TRAINKIT_MALLOC_TUNING": "0"}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.strip() == "False"


def _numba_or_skip(use_jit):
    if use_jit:
        pytest.importorskip("numba")


@pytest.fixture
def jit_mode(request):
    """Run a test with the numba kernels (param True; skipped without numba) or the numpy code (False)."""
    from trainkit.autograd.ops import jit
    _numba_or_skip(request.param)
    prev = jit.set_enabled(request.param)
    yield request.param
    jit.set_enabled(prev)


def bn_ref(x, w, b, gy, eps=1e-5):
    """Training-mode batch norm and its gradients in float64, straight from the definition."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var + eps).reshape(shape)
    y = xhat * w.reshape(shape) + b.reshape(shape)
    gxhat = gy * w.reshape(shape)
    gx = (gxhat - gxhat.sum(axis=axes).reshape(shape) / n
          - xhat * (gxhat * xhat).sum(axis=axes).reshape(shape) / n) / np.sqrt(var + eps).reshape(shape)
    return y, gx, (gy * xhat).sum(axis=axes), gy.sum(axis=axes), mean, var * n / (n - 1)


@pytest.mark.parametrize("jit_mode", [False, True], indirect=True)
@pytest.mark.parametrize("shape", [(7, 3, 5, 4), (1, 4, 3, 3), (13, 2, 1, 1), (9, 5), (6, 3, 7)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("piece_bytes", [1, 1 << 18])
def test_batch_norm_pieces_and_kernels_match_the_definition(monkeypatch, jit_mode, shape, dtype, piece_bytes):
    from trainkit.autograd.ops import norm as norm_ops
    monkeypatch.setattr(norm_ops, "PIECE_BYTES", piece_bytes)  # 1 byte: one image per piece
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) * 2 + 30).astype(dtype)  # an offset: the variance must be centred
    c = shape[1]
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    bn = (tk.nn.BatchNorm2d if len(shape) == 4 else tk.nn.BatchNorm1d)(c, dtype=dtype)
    bn.weight._array[...] = w
    bn.bias._array[...] = b
    xt = tk.tensor(x, requires_grad=True)
    y = bn(xt)
    (y * tk.tensor(gy)).sum().backward()
    ref = bn_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), gy.astype(np.float64))
    tol = 1e-9 if dtype == np.float64 else 2e-4
    assert y.dtype == dtype and xt.grad.dtype == dtype and bn.weight.grad.dtype == dtype
    for got, want in [(y.detach().numpy(), ref[0]), (xt.grad.numpy(), ref[1]), (bn.weight.grad.numpy(), ref[2]),
                      (bn.bias.grad.numpy(), ref[3])]:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * ref[4], rtol=tol)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * ref[5], rtol=tol)
    bn.eval()  # running statistics: y = x * scale + shift, gradient gy * scale
    xt2 = tk.tensor(x, requires_grad=True)
    y2 = bn(xt2)
    (y2 * tk.tensor(gy)).sum().backward()
    shp = (1, -1) + (1,) * (len(shape) - 2)
    scale = w.astype(np.float64) / np.sqrt(bn.running_var.numpy().astype(np.float64) + 1e-5)
    want = (x - bn.running_mean.numpy().reshape(shp)) * scale.reshape(shp) + b.reshape(shp)
    np.testing.assert_allclose(y2.detach().numpy(), want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(xt2.grad.numpy(), gy * scale.reshape(shp), rtol=tol, atol=tol)


@pytest.mark.parametrize("jit_mode", [False, True], indirect=True)
@pytest.mark.parametrize("shape", [(3, 2, 6, 8), (2, 3, 7, 5), (5, 1, 2, 2), (1, 2, 3, 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool_2x2_pieces_and_kernels_pick_the_first_maximum(monkeypatch, jit_mode, shape, dtype):
    from trainkit.autograd.ops import pool as pool_ops
    monkeypatch.setattr(pool_ops, "POOL_PIECE_BYTES", 1)  # one image per piece
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, shape).astype(dtype)  # many ties, as after a ReLU
    xt = tk.tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, 2)
    gy = rng.standard_normal(y.shape).astype(dtype)
    (y * tk.tensor(gy)).sum().backward()
    n, c, h, w = shape
    ref_y, ref_g = np.zeros(y.shape, dtype), np.zeros(shape, dtype)
    for i in range(h // 2):
        for j in range(w // 2):
            win = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(n, c, 4)
            k = win.argmax(axis=2)
            ref_y[:, :, i, j] = win.max(axis=2)
            for a in range(n):
                for b in range(c):
                    ref_g[a, b, 2 * i + k[a, b] // 2, 2 * j + k[a, b] % 2] = gy[a, b, i, j]
    assert y.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_array_equal(y.detach().numpy(), ref_y)
    np.testing.assert_array_equal(xt.grad.numpy(), ref_g)


@pytest.mark.parametrize("cin,cout,size,k,stride,pad", [
    (16, 16, 16, 3, 1, 1),   # same-padded: one set of output-gradient columns for both gradients
    (3, 16, 32, 3, 1, 1),    # wide rows, 3 channels: sliding windows, kept columns
    (16, 32, 16, 3, 2, 1),   # strided: input gradient phase by phase
    (16, 32, 16, 1, 2, 0),   # 1x1 stride 2: three phases without taps
    (16, 16, 32, 3, 1, 1),   # 32x32 with 16 output channels: position blocks
    (6, 16, 14, 5, 1, 0),    # LeNet's second conv: col2im
])
def test_conv2d_float32_agrees_with_float64_to_1e4(cin, cout, size, k, stride, pad):
    """The float32 fast paths at real layer sizes (odd batch), against the same op in float64."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, cin, size, size))
    w = rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)
    gy = rng.standard_normal((9, cout, (size + 2 * pad - k) // stride + 1, (size + 2 * pad - k) // stride + 1))
    out = {}
    for dt in (np.float32, np.float64):
        xt = tk.tensor(x.astype(dt), requires_grad=True)
        wt = tk.tensor(w.astype(dt), requires_grad=True)
        y = F.conv2d(xt, wt, stride=stride, padding=pad)
        (y * tk.tensor(gy.astype(dt))).sum().backward()
        out[dt] = [a.astype(np.float64) for a in (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy())]
        assert y.dtype == dt and xt.grad.dtype == dt and wt.grad.dtype == dt
    for a32, a64 in zip(out[np.float32], out[np.float64]):
        assert np.abs(a32 - a64).max() <= 1e-4 * np.abs(a64).max()


@pytest.mark.parametrize("jit_mode", [False, True], indirect=True)
@pytest.mark.parametrize("shape", [(3, 5, 7, 11), (1, 1000), (4097,)])
@pytest.mark.parametrize("piece", [7, 1 << 16])
def test_gelu_pieces_and_kernel_match_the_plain_pass_and_torch(monkeypatch, two_threads, jit_mode, shape,
                                                                piece):
    """The compiled GELU forward and the pieced backward (on two threads, cut into pieces of 7 elements or
    one piece) give the plain numpy pass's values bit for bit, and torch's to float32 rounding."""
    import torch

    from trainkit.autograd.ops import elementwise as ew
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.reshape(-1)[:3] = [0.0, -12.0, 9.5]  # zero and both saturated tails
    gy = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(ew, "GELU_PIECE", 10**9)  # the plain pass: below the piece size
    op = ew.GELU()
    y_ref, g_ref = op.forward(x), op.backward(gy)[0]
    monkeypatch.setattr(ew, "GELU_PIECE", piece)
    op = ew.GELU()
    y, g = op.forward(x), op.backward(gy)[0]
    assert y.dtype == g.dtype == np.float32 and y.shape == g.shape == x.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(g, g_ref)
    t = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.gelu(t)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dampening,weight_decay,nesterov", [(0.0, 0.0, False), (0.0, 5e-4, True),
                                                             (0.3, 5e-4, False), (0.0, 0.0, True)])
def test_fused_sgd_step_gives_the_numpy_update_bit_for_bit(monkeypatch, two_threads, dtype, dampening,
                                                           weight_decay, nesterov):
    """With numba, a large parameter's momentum update is one compiled pass in pieces on two threads; it must
    give the numpy passes' values exactly (and the user's .grad must stay untouched)."""
    _numba_or_skip(True)
    import trainkit as tk
    from trainkit.autograd.ops import jit
    from trainkit.optim import sgd as sgd_mod
    monkeypatch.setattr(sgd_mod, "FUSED_PIECE", 1000)  # several pieces
    calls = []
    real = sgd_mod._fused_step
    monkeypatch.setattr(sgd_mod, "_fused_step", lambda *a: calls.append(real(*a)) or calls[-1])
    finals = []
    for use_jit in (False, True):
        prev = jit.set_enabled(use_jit)
        try:
            rng = np.random.default_rng(7)
            w = tk.tensor(rng.standard_normal((130, 170)).astype(dtype), requires_grad=True)
            small = tk.tensor(rng.standard_normal(10).astype(dtype), requires_grad=True)  # the numpy path
            opt = tk.optim.SGD([w, small], lr=0.05, momentum=0.9, dampening=dampening,
                               weight_decay=weight_decay, nesterov=nesterov)
            for _ in range(4):
                g = rng.standard_normal(w.shape).astype(dtype)
                w.grad, small.grad = tk.tensor(g.copy()), tk.tensor(rng.standard_normal(10).astype(dtype))
                opt.step()
                np.testing.assert_array_equal(w.grad.numpy(), g)
            finals.append((w.detach().numpy().copy(), opt.state[w]["momentum_buffer"].copy()))
        finally:
            jit.set_enabled(prev)
    assert True in calls and False in calls  # the kernel ran (numba on) and the numpy path too (numba off)
    for a, b in zip(*finals):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
