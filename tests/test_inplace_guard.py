"""In-place methods change data only; trainkit does not record them in the autograd graph. Under grad mode
they refuse any tensor or operand that requires grad, because the gradient would otherwise be wrong
without any error. Outside the graph they give PyTorch's values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk

torch = pytest.importorskip("torch")

# method, its arguments built by lib from (operand array, mask array): the same call for both libraries
CALLS = {
    "add_": lambda lib, o, m: (o,),
    "sub_": lambda lib, o, m: (o,),
    "mul_": lambda lib, o, m: (o,),
    "div_": lambda lib, o, m: (o,),
    "copy_": lambda lib, o, m: (o,),
    "zero_": lambda lib, o, m: (),
    "fill_": lambda lib, o, m: (1.5,),
    "clamp_": lambda lib, o, m: (-0.5, 0.5),
    "masked_fill_": lambda lib, o, m: (m, -2.0),
    "tril_": lambda lib, o, m: (),
    "triu_": lambda lib, o, m: (),
}
OPERAND = {"add_", "sub_", "mul_", "div_", "copy_"}


def _lib_args(lib, name, operand, mask):
    wrap = (lambda a: tk.tensor(a)) if lib is tk else (lambda a: torch.tensor(a))
    return CALLS[name](lib, wrap(operand), wrap(mask))


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(CALLS)), rows=st.integers(1, 4), cols=st.integers(1, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_inplace_values_match_torch_outside_the_graph(name, rows, cols, dtype, seed):
    """On tensors that need no gradient (grad mode on), and on a graph tensor under no_grad, each method
    gives torch's values, returns the tensor itself and keeps its dtype."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((rows, cols)).astype(dtype)
    operand = (rng.standard_normal((rows, cols)) + 3).astype(dtype)  # away from zero for div_
    mask = rng.random((rows, cols)) < 0.5
    theirs = torch.tensor(base)
    getattr(theirs, name)(*_lib_args(torch, name, operand, mask))
    ours = tk.tensor(base)
    assert getattr(ours, name)(*_lib_args(tk, name, operand, mask)) is ours
    assert ours.numpy().dtype == dtype
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = tk.tensor(base, requires_grad=True)
    y = x * 1.0
    with tk.no_grad():
        getattr(y, name)(*_lib_args(tk, name, operand, mask))
    np.testing.assert_array_equal(y.detach().numpy(), theirs.numpy())


@pytest.mark.parametrize("name", sorted(CALLS) + ["uniform_", "normal_", "bernoulli_", "exponential_"])
def test_inplace_on_a_graph_tensor_is_refused_and_changes_nothing(name):
    """A non-leaf tensor that requires grad: a RuntimeError naming the method (with the out-of-place form
    where there is one), the data untouched, and the graph still gives the right gradient."""
    x = tk.tensor([[1.0, -2.0], [0.25, 3.0]], requires_grad=True)
    y = x.exp()
    before = y.detach().numpy().copy()
    args = _lib_args(tk, name, np.full((2, 2), 2.0), np.eye(2, dtype=bool)) if name in CALLS else ()
    with pytest.raises(RuntimeError, match=rf"^{name}\(\) on a tensor that requires grad: .* not record") as e:
        getattr(y, name)(*args)
    base = name[:-1]
    if base in ("add", "mul", "masked_fill", "clamp"):
        assert f"y = y.{base}(...)" in str(e.value)
    np.testing.assert_array_equal(y.detach().numpy(), before)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPERAND))
def test_an_operand_that_requires_grad_is_refused(name):
    """A plain buffer updated from a tensor that requires grad would drop that tensor's gradient: refused
    under grad mode, allowed under no_grad."""
    w = tk.tensor([1.0, 2.0], requires_grad=True)
    buf = tk.ones(2)
    with pytest.raises(RuntimeError, match=rf"^{name}\(\) on a tensor that requires grad"):
        getattr(buf, name)(w * 2)
    assert buf.tolist() == [1.0, 1.0]
    with tk.no_grad():
        getattr(buf, name)(w * 2)
    assert buf.tolist() != [1.0, 1.0] or name == "div_"


def test_a_leaf_keeps_torchs_message_and_item_assignment_is_guarded_both_ways():
    w = tk.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w.mul_(2)
    buf = tk.zeros(3)
    with pytest.raises(RuntimeError, match="value that requires grad is not supported.*no_grad"):
        buf[0] = (w * 3)[1]
    assert buf.tolist() == [0.0, 0.0, 0.0]
    buf[1] = 4.0  # plain values: allowed under grad mode
    with tk.no_grad():
        buf[0] = (w * 3)[1]
    assert buf.tolist() == [3.0, 4.0, 0.0]


# ----------------------------------------------------------------------------- augmented assignment
AUG = {"+=": "__iadd__", "-=": "__isub__", "*=": "__imul__", "/=": "__itruediv__", "**=": "__ipow__",
       "//=": "__ifloordiv__", "%=": "__imod__"}


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(sorted(AUG)), shape=st.sampled_from([(3,), (2, 3)]), other_shape=st.sampled_from(
       ["same", "row", "scalar", "python"]), dtype=st.sampled_from([np.float32, np.float64]),
       other_dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_augmented_assignment_is_in_place_with_torchs_values(op, shape, other_shape, dtype, other_dtype, seed):
    """``t op= o`` outside the graph: the same object, aliases see it, torch's values and dtype (a float32
    tensor stays float32 with a float64 operand; a Python scalar computes in the tensor's dtype)."""
    rng = np.random.default_rng(seed)
    base = (rng.random(shape) + 0.5).astype(dtype)
    other = {"same": lambda: (rng.random(shape) + 0.5).astype(other_dtype),
             "row": lambda: (rng.random(shape[-1:]) + 0.5).astype(other_dtype),
             "scalar": lambda: np.array(rng.random() + 0.5, other_dtype), "python": lambda: 1.7}[other_shape]()
    theirs = torch.tensor(base)
    getattr(theirs, AUG[op])(other if other_shape == "python" else torch.tensor(other))
    ours = tk.tensor(base)
    alias = ours
    ours = getattr(ours, AUG[op])(other if other_shape == "python" else tk.tensor(other))
    assert ours is alias and ours.numpy().dtype == dtype
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-7 if dtype == np.float32 else 1e-15)


def test_manual_sgd_under_no_grad_updates_the_parameter_itself():
    """PyTorch's tutorial loop ``with no_grad(): w -= lr * w.grad`` keeps w the same leaf parameter (before,
    ``-=`` rebound the name to a new tensor that did not require grad, and the model never learned)."""
    model = tk.nn.Linear(3, 1)
    w = model.weight
    start = w.detach().numpy().copy()
    loss = model(tk.ones(4, 3)).pow(2).mean()
    loss.backward()
    grad = w.grad.numpy().copy()
    with tk.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    assert model.weight is w and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.detach().numpy(), start - 0.1 * grad, rtol=1e-6)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w += 1  # under grad mode, as in torch


def test_augmented_assignment_in_the_graph_gives_torchs_gradients():
    """Inside the graph ``x += h`` (a residual block's ``out += identity``) and ``total += loss`` on a plain
    tensor: out of place, with torch's values and gradients."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def run(lib, tensor):
        x = tensor(a, requires_grad=True)
        h = tensor(b, requires_grad=True)
        out = x * 3.0  # (torch refuses an in-place change of a value saved for backward, as exp's output)
        out += h
        out = out * h
        out /= 2.0
        out -= x
        total = lib.zeros(())
        total += out.sum()
        total -= (x * x).sum()
        total.backward()
        return total.detach().numpy(), x.grad.numpy(), h.grad.numpy()

    for ours, theirs in zip(run(tk, tk.tensor), run(torch, torch.tensor)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_augmented_assignment_refusals_are_runtime_errors():
    """Casts torch refuses (an integer tensor += a float) and a broadcast that would grow the tensor: a
    RuntimeError naming the shape and dtype, the data untouched; integer floor division stays integer."""
    i = tk.tensor([1, 2])
    with pytest.raises(RuntimeError, match=r"in-place add on a tensor of shape \(2,\) and dtype trainkit.int64"):
        i += 1.5
    with pytest.raises(RuntimeError, match="in-place divide"):
        i /= 2
    small = tk.zeros(3)
    with pytest.raises(RuntimeError, match=r"shape \(3,\)"):
        small += tk.ones(2, 3)
    assert i.tolist() == [1, 2] and small.tolist() == [0.0, 0.0, 0.0]
    h = tk.ones(3, requires_grad=True) * 2  # in the graph too (out of place there): it cannot grow
    with pytest.raises(RuntimeError, match=r"result's shape \(2, 3\) is not the tensor's \(3,\)"):
        h += tk.ones(2, 3)
    i //= 2
    assert i.tolist() == [0, 1] and i.dtype == tk.int64
