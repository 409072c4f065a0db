"""LayerNorm, GroupNorm, InstanceNorm1d/2d and Embedding against PyTorch 2.13 (float64 outputs, input and
parameter gradients, running statistics, state dicts and reprs on hypothesis-drawn sizes), plus YAML rules."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit as tk
import trainkit.nn as nn
from trainkit.registry import LAYERS, ShapeProblem

torch = pytest.importorskip("torch")
tnn = torch.nn

from trainkit.testing.oracle import check_module_against_torch  # noqa: E402

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
dims = st.integers(1, 4)


def _pair(name, *args, rng=None, **kwargs):
    """The trainkit layer (random affine parameters) and its torch twin, float64."""
    ours, theirs = getattr(nn, name)(*args, **kwargs).double(), getattr(tnn, name)(*args, **kwargs).double()
    assert repr(ours) == repr(theirs)
    if rng is not None:
        for p in ours.parameters():
            p._array[...] = rng.standard_normal(p.shape)
    return ours, theirs


@SETTINGS
@given(data=st.data())
def test_layer_norm_matches_torch(data):
    shape = tuple(data.draw(st.lists(dims, min_size=1, max_size=4), label="shape"))
    k = data.draw(st.integers(1, len(shape)), label="normalized dims")
    affine, bias = data.draw(st.booleans(), label="affine"), data.draw(st.booleans(), label="bias")
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.5]), label="eps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    ns = shape[-k:]
    ours, theirs = _pair("LayerNorm", ns if k > 1 else ns[0], eps=eps, elementwise_affine=affine, bias=bias,
                         rng=rng)
    check_module_against_torch(ours, theirs, [rng.standard_normal(shape)])


@SETTINGS
@given(data=st.data())
def test_group_norm_matches_torch(data):
    groups, per = data.draw(dims, label="groups"), data.draw(dims, label="channels per group")
    rest = tuple(data.draw(st.lists(dims, max_size=2), label="positions"))
    n = data.draw(dims, label="batch")
    affine, bias = data.draw(st.booleans(), label="affine"), data.draw(st.booleans(), label="bias")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    if per * math_prod(rest) == 1:
        rest = rest + (2,)  # one value per group has zero variance: both give 0, gradients are rounding noise
    ours, theirs = _pair("GroupNorm", groups, groups * per, affine=affine, bias=bias, rng=rng)
    check_module_against_torch(ours, theirs, [rng.standard_normal((n, groups * per) + rest)])


def math_prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out


@pytest.mark.parametrize("name,spatial", [("InstanceNorm1d", 1), ("InstanceNorm2d", 2)])
@SETTINGS
@given(data=st.data())
def test_instance_norm_matches_torch_in_training_and_eval(name, spatial, data):
    c = data.draw(dims, label="channels")
    kw = {k: data.draw(st.booleans(), label=k) for k in ("affine", "track_running_stats", "bias")}
    kw["momentum"] = data.draw(st.sampled_from([0.1, 0.5, None]), label="momentum")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    ours, theirs = _pair(name, c, rng=rng, **kw)
    pos = tuple(int(v) for v in rng.integers(2, 5, size=spatial))
    n = data.draw(dims, label="batch")
    for _ in range(2):
        check_module_against_torch(ours, theirs, [rng.standard_normal((n, c) + pos)])
    if kw["track_running_stats"]:
        np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-10)
    ours.eval(), theirs.eval()
    check_module_against_torch(ours, theirs, [rng.standard_normal((n, c) + pos)])
    check_module_against_torch(ours, theirs, [rng.standard_normal((c,) + pos)])  # unbatched


@SETTINGS
@given(data=st.data())
def test_embedding_matches_torch(data):
    num, dim = data.draw(st.integers(1, 6), label="num"), data.draw(dims, label="dim")
    pad = data.draw(st.one_of(st.none(), st.integers(-num, num - 1)), label="padding_idx")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    ours, theirs = _pair("Embedding", num, dim, padding_idx=pad)
    shape = tuple(data.draw(st.lists(dims, min_size=1, max_size=3), label="index shape"))
    check_module_against_torch(ours, theirs, [rng.integers(0, num, size=shape)])
    if pad is not None:
        assert not ours.weight.detach().numpy()[pad].any()


def test_embedding_initialisation_from_pretrained_and_errors():
    tk.manual_seed(0)
    w = nn.Embedding(2000, 8).weight.detach().numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    table = tk.tensor(np.arange(6.0).reshape(3, 2))
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and list(dict(frozen.named_parameters())) == ["weight"]
    np.testing.assert_array_equal(frozen(tk.tensor([2, 0])).numpy(), [[4.0, 5.0], [0.0, 1.0]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(3, 2, max_norm=1.0)
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=3)


def test_group_and_instance_norm_errors_are_pytorchs():
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups \(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        nn.InstanceNorm2d(3)(tk.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
        nn.InstanceNorm2d(3)(tk.randn(2, 3, 1, 1))
    with pytest.raises(ValueError, match="to match num_features"):
        nn.InstanceNorm2d(3, affine=True)(tk.randn(2, 4, 2, 2))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm2d(3)(tk.randn(2, 4, 2, 2))
    with pytest.raises(RuntimeError, match="expected input with shape"):
        nn.LayerNorm(4)(tk.randn(2, 5))


def test_yaml_shape_rules():
    ln = LAYERS["layernorm"]
    assert ln.input_value((7, 16)) == [16]
    got = ln.infer({"normalized_shape": [16]}, (7, 16))
    assert got.shape == (7, 16) and got.params == 32
    with pytest.raises(ShapeProblem, match="needs input ending in those dimensions"):
        ln.infer({"normalized_shape": [8]}, (7, 16))
    gn = LAYERS["groupnorm"]
    assert gn.infer({"num_groups": 2, "num_channels": 4}, (4, 3, 3)).params == 8
    with pytest.raises(ShapeProblem, match="do not split into 3 groups"):
        gn.infer({"num_groups": 3, "num_channels": 4}, (4, 3, 3))
    inorm = LAYERS["instancenorm2d"].infer({"num_features": 3, "track_running_stats": True}, (3, 4, 4))
    assert (inorm.params, inorm.buffers) == (0, 7)
    emb = LAYERS["embedding"].infer({"num_embeddings": 65, "embedding_dim": 32}, (64,))
    assert emb.shape == (64, 32) and emb.params == 65 * 32


def test_yaml_embedding_padding_idx_is_checked(tmp_path):
    from trainkit.config import ConfigError, load_config

    path = tmp_path / "m.yaml"
    path.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\n"
                    "model: {layers: [{embedding: {num_embeddings: 5, embedding_dim: 3, padding_idx: 5}}]}\n")
    with pytest.raises(ConfigError, match="padding_idx 5 is outside the 5 embeddings"):
        load_config(path)
