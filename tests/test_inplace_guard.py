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
