"""ReLU's backward from its output (one compiled pass, with numba) against PyTorch and the mask path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk
from trainkit.autograd.ops import elementwise, jit

torch = pytest.importorskip("torch")


def _grad(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = tk.tensor(x, requires_grad=True)
    y = tk.relu(a)
    y.backward(tk.tensor(g))
    return y.detach().numpy(), a.grad.numpy()


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.float32, np.float64]), specials=st.booleans())
def test_relu_matches_torch_with_and_without_numba(shape, seed, dtype, specials):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    if specials:  # zeros (gradient 0 there, as torch), infinities, a NaN (torch passes its gradient)
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 4))] = 0
        flat[0], flat[-1] = np.inf, -np.inf
        if flat.size > 2:
            flat[1] = np.nan
    t = torch.tensor(x, requires_grad=True)
    ty = torch.relu(t)
    ty.backward(torch.tensor(g))
    prev = elementwise.RELU_MIN_ELEMENTS, elementwise.RELU_PIECE
    elementwise.RELU_MIN_ELEMENTS, elementwise.RELU_PIECE = 7, 1000  # the compiled path, in pieces
    try:
        y, gx = _grad(x, g)
    finally:
        elementwise.RELU_MIN_ELEMENTS, elementwise.RELU_PIECE = prev
    np.testing.assert_array_equal(y, ty.detach().numpy())
    if x.size >= 7 and jit.kernels() is not None:
        np.testing.assert_array_equal(gx, t.grad.numpy())
    prev = jit.set_enabled(False)  # the numpy path: the mask x > 0 (a NaN input gets gradient 0)
    try:
        y2, gx2 = _grad(x, g)
    finally:
        jit.set_enabled(prev)
    np.testing.assert_array_equal(y2, y)
    keep = ~np.isnan(x)
    np.testing.assert_array_equal(gx2[keep], t.grad.numpy()[keep])


def test_small_outputs_keep_the_mask_path_without_numba_and_large_ones_use_the_kernel():
    for size, compiled in ((elementwise.RELU_MIN_ELEMENTS - 1, False), (elementwise.RELU_MIN_ELEMENTS, True)):
        op = elementwise.ReLU()
        op.needs = (True,)
        op.forward(np.ones(size, np.float32))
        assert (op.jit is not None) == (compiled and jit.kernels() is not None)


def test_relu_backward_pieces_on_two_threads_and_no_state_under_no_grad(two_threads):
    x = np.random.default_rng(0).standard_normal((3 * elementwise.RELU_PIECE + 5,)).astype(np.float32)
    g = np.ones_like(x)
    y, gx = _grad(x, g)
    np.testing.assert_array_equal(gx, (x > 0).astype(np.float32))
    op = elementwise.ReLU()
    op.needs = None  # as under no_grad: nothing is kept for backward
    op.forward(x)
    assert not hasattr(op, "y") and not hasattr(op, "mask")
