"""``is_contiguous``, ``contiguous`` and ``stride`` follow torch's on views (transposes, permutes, slices,
expands), and ``contiguous`` copies only what is not contiguous, inside the graph."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk

torch = pytest.importorskip("torch")

VIEWS = {
    "itself": lambda t: t,
    "transpose": lambda t: t.transpose(0, -1),
    "permute": lambda t: t.permute(*reversed(range(t.dim()))),
    "step slice": lambda t: t[::2],
    "column slice": lambda t: t[..., 1:],
    "expand": lambda t: t.unsqueeze(0).expand(3, *t.shape),
}


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(2, 4), min_size=2, max_size=3), view=st.sampled_from(sorted(VIEWS)))
def test_layout_queries_match_torch(shape, view):
    data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    ours, theirs = VIEWS[view](tk.tensor(data)), VIEWS[view](torch.tensor(data))
    assert ours.is_contiguous() == theirs.is_contiguous()
    assert ours.stride() == theirs.stride() and ours.stride(-1) == theirs.stride(-1)
    c = ours.contiguous()
    assert c.is_contiguous() and (c is ours) == theirs.is_contiguous()
    assert c.stride() == theirs.contiguous().stride()
    np.testing.assert_array_equal(c.numpy(), theirs.contiguous().numpy())


def test_contiguous_copy_carries_the_gradient():
    x = tk.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.t().contiguous()
    assert y.is_contiguous() and not x.t().is_contiguous()
    (y * tk.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6.0).reshape(3, 2).T)
