"""normal, bernoulli, multinomial, poisson: PyTorch's overloads, dtypes and errors, seeded reproducibility,
the distributions they sample (checked statistically with fixed seeds), and PyTorch's zero gradient."""
from __future__ import annotations

import numpy as np
import pytest

import trainkit as tk


def test_normal_overloads_shapes_and_dtypes():
    mean = tk.zeros(3, 1, dtype=tk.float64)
    std = tk.ones(4)
    assert tk.normal(mean, std).shape == (3, 4) and tk.normal(mean, std).dtype == np.float64
    assert tk.normal(mean, 2.0).shape == (3, 1)
    assert tk.normal(0.0, std).dtype == np.float32
    out = tk.normal(1.0, 2.0, (2, 5))
    assert out.shape == (2, 5) and out.dtype == np.float32
    assert tk.normal(1.0, 2.0, size=(3,), dtype=tk.float64).dtype == np.float64
    with pytest.raises(RuntimeError, match="std >= 0"):
        tk.normal(mean, -1.0)
    with pytest.raises(TypeError):
        tk.normal(1.0, 2.0)


def test_normal_moments_and_seeding():
    mean = tk.tensor([[-3.0], [5.0]])
    x = tk.normal(mean.expand(2, 20000), tk.tensor([0.5, 2.0]).reshape(2, 1).expand(2, 20000),
                  generator=np.random.default_rng(0)).numpy()
    assert abs(x[0].mean() + 3) < 0.02 and abs(x[0].std() - 0.5) < 0.02
    assert abs(x[1].mean() - 5) < 0.06 and abs(x[1].std() - 2.0) < 0.05
    tk.manual_seed(3)
    a = tk.normal(0.0, 1.0, (5,))
    tk.manual_seed(3)
    assert tk.normal(0.0, 1.0, (5,)).tolist() == a.tolist()


def test_bernoulli_probability_dtype_and_range_check():
    p = tk.tensor([0.0, 0.25, 1.0], dtype=tk.float64).expand(40000, 3)
    s = tk.bernoulli(p, generator=np.random.default_rng(1))
    assert s.dtype == np.float64
    col = s.numpy().mean(axis=0)
    assert col[0] == 0 and col[2] == 1 and abs(col[1] - 0.25) < 0.01
    q = tk.bernoulli(tk.zeros(20000), 0.7, generator=np.random.default_rng(2)).numpy()
    assert abs(q.mean() - 0.7) < 0.015
    with pytest.raises(RuntimeError, match="p_in >= 0"):
        tk.bernoulli(tk.tensor([1.5]))


def test_normal_and_bernoulli_have_zero_gradient_like_torch():
    mu = tk.tensor([0.5, -1.0], requires_grad=True)
    y = tk.normal(mu, 1.0)
    assert y.requires_grad
    (y * y).sum().backward()
    assert mu.grad.tolist() == [0.0, 0.0]
    p = tk.tensor([0.3, 0.6], requires_grad=True)
    s = tk.bernoulli(p, generator=np.random.default_rng(0))
    (s * p).sum().backward()  # only the product's path carries a gradient
    assert p.grad.tolist() == s.tolist()


def test_multinomial_with_replacement_follows_the_weights():
    w = tk.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]])
    s = tk.multinomial(w, 20000, replacement=True, generator=np.random.default_rng(0))
    assert s.shape == (2, 20000) and s.dtype == np.int64
    f0 = np.bincount(s.numpy()[0], minlength=3) / 20000
    f1 = np.bincount(s.numpy()[1], minlength=3) / 20000
    assert f0[1] == 0 and abs(f0[0] - 0.25) < 0.015 and f1[0] == 0 and abs(f1[1] - 0.5) < 0.015
    one = tk.multinomial(tk.tensor([0.0, 0.0, 1.0]), 4, replacement=True)
    assert one.shape == (4,) and one.tolist() == [2, 2, 2, 2]


def test_multinomial_without_replacement_draws_distinct_categories_in_sequential_order():
    w = np.array([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(0)
    draws = tk.multinomial(tk.tensor(w).expand(30000, 4), 2, generator=rng).numpy()
    assert (draws[:, 0] != draws[:, 1]).all()
    # the first draw follows the weights; the second the weights renormalised without the first
    first = np.bincount(draws[:, 0], minlength=4) / len(draws)
    np.testing.assert_allclose(first, w, atol=0.012)
    p_second_given_3 = np.bincount(draws[draws[:, 0] == 3, 1], minlength=4) / (draws[:, 0] == 3).sum()
    np.testing.assert_allclose(p_second_given_3[:3], w[:3] / w[:3].sum(), atol=0.02)


def test_multinomial_rejects_what_torch_rejects():
    with pytest.raises(RuntimeError, match="without replacement"):
        tk.multinomial(tk.tensor([1.0, 2.0]), 3)
    with pytest.raises(RuntimeError, match="not enough"):
        tk.multinomial(tk.tensor([1.0, 0.0, 0.0]), 2)
    with pytest.raises(RuntimeError, match="inf"):
        tk.multinomial(tk.tensor([1.0, -1.0]), 1)
    with pytest.raises(RuntimeError, match="sum of probabilities"):
        tk.multinomial(tk.tensor([0.0, 0.0]), 1, replacement=True)


def test_generator_makes_draws_reproducible_and_leaves_the_global_stream_alone():
    tk.manual_seed(0)
    before = tk.rand(3).tolist()
    tk.manual_seed(0)
    a = tk.multinomial(tk.ones(5), 3, generator=np.random.default_rng(9))
    b = tk.multinomial(tk.ones(5), 3, generator=np.random.default_rng(9))
    assert a.tolist() == b.tolist()
    assert tk.rand(3).tolist() == before  # a generator= draw does not consume the global generator
    assert tk.poisson(tk.full((20000,), 3.0), generator=np.random.default_rng(1)).numpy().mean() == pytest.approx(3, abs=0.05)
