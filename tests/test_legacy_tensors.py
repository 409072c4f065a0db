"""torch.LongTensor(...) and the other legacy typed constructors, against torch (randomized)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk

torch = pytest.importorskip("torch")

def _dt(t) -> str:
    return str(t.dtype).split(".")[-1]


NAMES = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ByteTensor", "BoolTensor"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(NAMES), st.lists(st.integers(0, 4), min_size=1, max_size=3),
       st.lists(st.integers(0, 100), max_size=6))
def test_sizes_values_and_isinstance_match_torch(name, sizes, values):
    ours, theirs = getattr(tk, name), getattr(torch, name)
    a, b = ours(*sizes), theirs(*sizes)
    assert tuple(a.shape) == tuple(b.shape) and _dt(a) == _dt(b)
    assert isinstance(a, ours) and isinstance(b, theirs)
    assert tuple(ours(tk.Size(sizes)).shape) == tuple(b.shape)
    c, d = ours(values), theirs(values)
    np.testing.assert_array_equal(c.numpy(), d.numpy())
    assert _dt(c) == _dt(d)
    assert ours().numel() == theirs().numel() == 0
    other = "LongTensor" if name != "LongTensor" else "FloatTensor"
    assert not isinstance(c, getattr(tk, other)) and not isinstance(d, getattr(torch, other))


def test_word_language_model_dummy_input():
    """The upstream example's ONNX export input: LongTensor(seq_len * batch).zero_().view(-1, batch)."""
    x = tk.LongTensor(35 * 1).zero_().view(-1, 1)
    assert tuple(x.shape) == (35, 1) and str(x.dtype) == "trainkit.int64" and int(x.sum()) == 0
    with pytest.raises(RuntimeError, match="negative dimension"):
        tk.LongTensor(-1)
