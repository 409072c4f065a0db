"""The engine: gradients of every registered op, graph semantics, dtypes, custom Functions."""

import numpy as np
import pytest

import trainkit as tk
import trainkit.nn.functional as F
from trainkit.autograd import Function, GradcheckError, gradcheck
from trainkit.testing.run import run_case
from trainkit.autograd.gradcheck import all_op_classes, check_gradients
from trainkit.testing.cases import cases

CASES = cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_registered_case_passes_gradcheck(name):
    r = run_case(CASES[name])
    assert r.passed, r.message


def test_every_op_class_is_covered_by_a_case():
    covered = set()
    for c in CASES.values():
        covered |= check_gradients(c.fn, c.make_inputs(np.random.default_rng(0)), atol=c.atol, rtol=c.rtol).ops
    assert all_op_classes() - covered == set()


class WrongSquare(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # wrong: should be 2 * g * x


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * g * x


def test_custom_function_with_wrong_backward_is_caught():
    x = tk.randn(3, 2, dtype=tk.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 at element .*analytic .*numerical"):
        gradcheck(WrongSquare.apply, (x,))
    assert gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False
    assert gradcheck(Square.apply, (x,))


def test_custom_function_in_a_graph():
    x = tk.tensor([1.0, 2.0, 3.0], requires_grad=True)
    Square.apply(x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 8 * np.array([1.0, 2.0, 3.0]))


def test_gradcheck_warns_for_float32():
    x = tk.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="not float64"):
        gradcheck(lambda a: a * 2, (x,), atol=1e-2, rtol=1e-2, raise_exception=False)


def test_forward_values_match_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4,)).astype(np.float32)
    ta, tb = tk.tensor(a), tk.tensor(b)
    np.testing.assert_allclose((ta * tb + ta / 2 - tb).numpy(), a * b + a / 2 - b, rtol=1e-6)
    np.testing.assert_allclose(tk.exp(ta).numpy(), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(ta.var(dim=1).numpy(), a.var(axis=1, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(ta.var(dim=1, unbiased=False).numpy(), a.var(axis=1), rtol=1e-5)
    np.testing.assert_allclose(tk.logsumexp(ta, dim=0).numpy(), np.log(np.exp(a).sum(0)), rtol=1e-5)
    np.testing.assert_allclose(F.softmax(ta, dim=1).numpy().sum(1), np.ones(3), rtol=1e-6)
    np.testing.assert_allclose((ta @ tb).numpy(), a @ b, rtol=1e-5)
    vals, idx = tk.max(ta, 1)
    np.testing.assert_array_equal(idx.numpy(), a.argmax(1))
    np.testing.assert_array_equal(vals.numpy(), a.max(1))
    assert idx.dtype == tk.int64
    np.testing.assert_array_equal(ta[1:, [0, 2]].numpy(), a[1:, [0, 2]])
    np.testing.assert_array_equal(tk.cat([ta, ta], 0).numpy(), np.concatenate([a, a]))
    np.testing.assert_array_equal(tk.where(ta > 0, ta, tk.zeros(1)).numpy(), np.where(a > 0, a, 0))
    np.testing.assert_array_equal(tk.clamp(ta, min=0).numpy(), np.clip(a, 0, None))
    assert (ta > 0).dtype == tk.bool


def test_conv_and_pool_forward_match_a_direct_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y = F.conv2d(tk.tensor(x), tk.tensor(w), tk.tensor(b), stride=2, padding=1).numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 4, 4, 3))
    for i in range(4):
        for j in range(3):
            patch = xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            ref[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    np.testing.assert_allclose(y, ref, rtol=1e-10)
    m = F.max_pool2d(tk.tensor(x), 2).numpy()
    np.testing.assert_array_equal(m, x[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    m3 = F.max_pool2d(tk.tensor(x), 3, 2, 1).numpy()
    xpi = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    assert m3[1, 2, 1, 1] == xpi[1, 2, 2:5, 2:5].max()


def test_python_scalars_never_upcast_float32():
    x = tk.randn(4, 3, requires_grad=True)
    w = tk.randn(2, 3, requires_grad=True)
    y = (F.linear(x * 0.5 + 1, w) ** 2 / 3.0 - 1e-3).mean()
    assert y.dtype == tk.float32
    y.backward()
    assert x.grad.dtype == tk.float32 and w.grad.dtype == tk.float32
    img = tk.randn(2, 3, 8, 8)
    k = tk.randn(4, 3, 3, 3, requires_grad=True)
    out = F.max_pool2d(F.relu(F.conv2d(img, k, padding=1)), 2)
    loss = F.cross_entropy(out.flatten(1), tk.tensor([1, 3]))
    assert out.dtype == tk.float32 and loss.dtype == tk.float32
    loss.backward()
    assert k.grad.dtype == tk.float32
    d = tk.randn(3, dtype=tk.float64, requires_grad=True)
    assert (d * 2.5 + 1).dtype == tk.float64


def test_dtype_rules_of_tensor_factory():
    assert tk.tensor([1.0, 2.0]).dtype == tk.float32
    assert tk.tensor([1, 2]).dtype == tk.int64
    assert tk.tensor([True]).dtype == tk.bool
    assert tk.tensor(np.zeros(2)).dtype == tk.float64
    assert tk.zeros(2, 3).shape == (2, 3) and tk.ones((2,)).dtype == tk.float32
    assert tk.arange(5).dtype == tk.int64 and tk.arange(0.0, 1.0, 0.5).dtype == tk.float32
    assert (tk.tensor([1, 2]) * 0.5).dtype == tk.float32
    assert (tk.tensor([1, 2]) / 2).dtype == tk.float32


def test_gradients_accumulate_across_backward_calls():
    x = tk.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_shared_leaf_gradient_is_not_aliased():
    a = tk.tensor([1.0, 2.0], requires_grad=True)
    b = tk.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.numpy()[:] = 100  # must not change b.grad
    assert b.grad.tolist() == [1.0, 1.0]
    (a + b).sum().backward()
    assert b.grad.tolist() == [2.0, 2.0]


def test_graph_is_freed_unless_retained():
    x = tk.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (x.exp() * 2).sum()
    x.grad = None
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_no_grad_records_nothing_and_data_gets_no_grad():
    w = tk.randn(3, 2, requires_grad=True)
    with tk.no_grad():
        y = tk.randn(4, 2) @ w.T
    assert not y.requires_grad and y.grad_fn is None
    with tk.no_grad():
        with tk.enable_grad():
            assert (w * 2).requires_grad
    data = tk.randn(2, 3, 6, 6)
    k = tk.randn(4, 3, 3, 3, requires_grad=True)
    out = F.conv2d(data, k)
    assert out.grad_fn.needs == (False, True)
    out.sum().backward()
    assert data.grad is None and k.grad is not None


def test_ten_thousand_op_chain_backpropagates():
    x = tk.tensor([1.0], dtype=tk.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_repeated_index_gradients_accumulate():
    x = tk.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tk.tensor([0, 0, 2, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_tensor_api_surface():
    x = tk.arange(6).float().view(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.dim() == 2 and x.ndim == 2
    assert x.T.shape == (3, 2) and x.permute(1, 0).shape == (3, 2)
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(0).squeeze().shape == (2, 3)
    assert x.flatten().shape == (6,) and x.reshape(-1, 2).shape == (3, 2)
    assert x.expand(4, 2, 3).shape == (4, 2, 3)
    assert x.sum().item() == 15.0 and x.mean(dim=0, keepdim=True).shape == (1, 3)
    assert x.argmax().item() == 5 and x.max().item() == 5.0
    assert x.long().dtype == tk.int64 and x.to(tk.float64).dtype == tk.float64
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x.data.numpy() is x.numpy()
    assert x.detach().numpy() is x.numpy()
    assert (x == 1.0).sum().item() == 1
    w = tk.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        w.numpy()
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1)
    with tk.no_grad():
        w.add_(1)
    assert w.tolist() == [2.0, 2.0]
    assert "requires_grad=True" in repr(w)


def test_manual_seed_is_reproducible():
    tk.manual_seed(3)
    a = tk.randn(5)
    tk.manual_seed(3)
    assert tk.randn(5).equal(a)


def test_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = rng.integers(0, 5, 4)
    ours = [tk.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]

    def run(lib, Fn, t, tgt):
        h = Fn.conv2d(t[0], t[1], t[2], stride=1, padding=1)
        h = Fn.max_pool2d(Fn.relu(h), 2)
        h = Fn.avg_pool2d(h, 2).flatten(1)
        logits = h.reshape(4, 5, -1).mean(2)
        return Fn.cross_entropy(logits, tgt, label_smoothing=0.1)

    import torch.nn.functional as TF
    lo = run(tk, F, ours, tk.tensor(y))
    lt = run(torch, TF, theirs, torch.tensor(y))
    lo.backward()
    lt.backward()
    np.testing.assert_allclose(lo.item(), lt.item(), rtol=1e-5)
    for a, b_ in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b_.grad.numpy(), rtol=1e-4, atol=1e-6)
