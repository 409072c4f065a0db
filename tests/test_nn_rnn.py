"""RNN, LSTM, GRU and their cells against PyTorch 2.13 (float64 outputs, input, state and parameter gradients
to 1e-6 on hypothesis-drawn sizes), plus their errors, reprs, dropout between layers and YAML declarations."""
from __future__ import annotations

import warnings

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


def _pair(name, *args, **kwargs):
    """The trainkit layer and its torch twin, float64 (torch's initial weights are overwritten by ours)."""
    return getattr(nn, name)(*args, **kwargs).double(), getattr(tnn, name)(*args, **kwargs).double()


def _inputs(rng, mode, t, b, i, h, layers, directions, batch_first, with_state, unbatched=False):
    x_shape = (t, i) if unbatched else ((b, t, i) if batch_first else (t, b, i))
    x = rng.standard_normal(x_shape)
    if not with_state:
        return [x]
    s_shape = (layers * directions, h) if unbatched else (layers * directions, b, h)
    h0 = rng.standard_normal(s_shape)
    if mode == "LSTM":
        return [x, (h0, rng.standard_normal(s_shape))]
    return [x, h0]


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@SETTINGS
@given(data=st.data())
def test_recurrent_layers_match_torch_on_random_sizes(mode, data):
    t, b, i, h = (data.draw(st.integers(1, 4), label=k) for k in "tbih")
    layers = data.draw(st.integers(1, 2), label="num_layers")
    bidirectional, bias, batch_first, with_state, unbatched = (data.draw(st.booleans(), label=k) for k in
                                                               ("bidirectional", "bias", "batch_first",
                                                                "with_state", "unbatched"))
    kw = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    if mode == "RNN":
        kw["nonlinearity"] = data.draw(st.sampled_from(["tanh", "relu"]), label="nonlinearity")
    ours, theirs = _pair(mode, i, h, **kw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    args = _inputs(rng, mode, t, b, i, h, layers, 2 if bidirectional else 1, batch_first, with_state, unbatched)
    check_module_against_torch(ours, theirs, args)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_two_layer_bidirectional_with_initial_states(mode, batch_first):
    ours, theirs = _pair(mode, 5, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    rng = np.random.default_rng(1)
    args = _inputs(rng, mode, 6, 3, 5, 4, 2, 2, batch_first, True)
    check_module_against_torch(ours, theirs, args)
    assert [k for k in ours.state_dict()][:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_hh_l1_reverse" in ours.state_dict()


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_float32_agrees_with_torch(mode):
    ours, theirs = getattr(nn, mode)(6, 5, 2), getattr(tnn, mode)(6, 5, 2)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((7, 2, 6)).astype(np.float32)
    out, _ = ours(tk.tensor(x))
    ref, _ = theirs(torch.from_numpy(x))
    assert out.dtype == tk.float32
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,kw", [("RNN", {"nonlinearity": "relu"}), ("LSTM", {"num_layers": 2, "dropout": 0.5}),
                                     ("GRU", {"bias": False, "batch_first": True, "bidirectional": True})])
def test_reprs_and_parameter_order_match_torch(mode, kw):
    ours, theirs = getattr(nn, mode)(3, 4, **kw), getattr(tnn, mode)(3, 4, **kw)
    assert repr(ours) == repr(theirs)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]


def test_default_init_is_uniform_in_one_over_sqrt_hidden():
    tk.manual_seed(0)
    m = nn.LSTM(30, 64, 2)
    bound = 1 / 8
    values = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.003


def test_dropout_between_layers_only_in_training():
    tk.manual_seed(0)
    m = nn.LSTM(4, 8, num_layers=2, dropout=0.5)
    x = tk.randn(5, 3, 4)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c, _ = m(x)
    d, _ = m(x)
    assert not np.allclose(c.detach().numpy(), d.detach().numpy())
    # without dropout, training and evaluation give the same result
    m2 = nn.LSTM(4, 8, num_layers=2)
    m2.train()
    e, _ = m2(x)
    m2.eval()
    f, _ = m2(x)
    np.testing.assert_allclose(e.detach().numpy(), f.detach().numpy())


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


def test_errors_are_pytorchs():
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(4, 8, proj_size=2)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.GRU(4, 8, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(4, 8, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(4, 8, dropout=1.5)
    m = nn.LSTM(4, 8)
    with pytest.raises(RuntimeError, match="Expected 4, got 5"):
        m(tk.randn(3, 2, 5))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        m(tk.randn(3, 2, 4, 1))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 8\), got \[1, 3, 8\]"):
        m(tk.randn(3, 2, 4), (tk.zeros(1, 3, 8), tk.zeros(1, 3, 8)))
    with pytest.raises(ValueError, match="does not match weight dtype"):
        m(tk.randn(3, 2, 4).double())


def test_packed_sequence_is_refused_clearly():
    class PackedSequence(tuple):
        batch_sizes = None

    with pytest.raises(TypeError, match="PackedSequence input is not supported"):
        nn.GRU(2, 3)(PackedSequence((tk.randn(4, 2),)))


def test_outputs_layout_and_final_states():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    out, (h, c) = m(tk.randn(2, 5, 3))
    assert tuple(out.shape) == (2, 5, 8) and tuple(h.shape) == (4, 2, 4) and tuple(c.shape) == (4, 2, 4)
    # the last layer's forward final state is the output at the last step, the reverse one at the first
    np.testing.assert_allclose(h[2].detach().numpy(), out[:, -1, :4].detach().numpy())
    np.testing.assert_allclose(h[3].detach().numpy(), out[:, 0, 4:].detach().numpy())


def test_no_grad_forward_keeps_no_graph_and_matches():
    m = nn.GRU(3, 4, num_layers=2)
    x = tk.randn(6, 2, 3)
    y1, h1 = m(x)
    with tk.no_grad():
        y2, h2 = m(x)
    assert y2.grad_fn is None and not y2.requires_grad
    np.testing.assert_allclose(y1.detach().numpy(), y2.numpy())
    np.testing.assert_allclose(h1.detach().numpy(), h2.numpy())


# ------------------------------------------------------------------------------------------------ cells
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@SETTINGS
@given(data=st.data())
def test_cells_match_torch(name, data):
    b, i, h = (data.draw(st.integers(1, 4), label=k) for k in "bih")
    bias, with_state, unbatched = (data.draw(st.booleans(), label=k) for k in ("bias", "with_state", "unbatched"))
    kw = {"bias": bias}
    if name == "RNNCell":
        kw["nonlinearity"] = data.draw(st.sampled_from(["tanh", "relu"]), label="nonlinearity")
    ours, theirs = _pair(name, i, h, **kw)
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    x = rng.standard_normal((i,) if unbatched else (b, i))
    args = [x]
    if with_state:
        s_shape = (h,) if unbatched else (b, h)
        args.append((rng.standard_normal(s_shape), rng.standard_normal(s_shape)) if name == "LSTMCell"
                    else rng.standard_normal(s_shape))
    check_module_against_torch(ours, theirs, args)


def test_cell_errors():
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNNCell(2, 3, nonlinearity="gelu")
    with pytest.raises(RuntimeError, match="Expected input to be 1D or 2D, got 3D"):
        nn.GRUCell(2, 3)(tk.randn(1, 2, 2))


# ------------------------------------------------------------------------------------------------ YAML
def test_yaml_declarations_give_shapes_outputs_and_parameter_counts():
    decl = LAYERS["lstm"]
    got = decl.infer({"input_size": 6, "hidden_size": 5, "num_layers": 2, "bidirectional": True}, (7, 6))
    assert got.shape == (7, 10)
    assert dict(got.outputs) == {"output": (7, 10), "h_n": (5,), "c_n": (5,)}
    built = nn.LSTM(6, 5, num_layers=2, bidirectional=True)
    assert got.params == sum(p.numel() for p in built.parameters())
    assert decl.defaults()["batch_first"] is True
    with pytest.raises(ShapeProblem, match="batch_first"):
        decl.infer({"input_size": 6, "hidden_size": 5, "batch_first": False}, (7, 6))
    with pytest.raises(ShapeProblem, match=r"\(sequence, features\)"):
        decl.infer({"input_size": 6, "hidden_size": 5}, (6,))
    gru = LAYERS["gru"].infer({"input_size": 3, "hidden_size": 4, "bias": False}, (2, 3))
    assert gru.params == sum(p.numel() for p in nn.GRU(3, 4, bias=False).parameters())


def test_yaml_output_paths_select_the_last_layers_final_state():
    m = nn.GRU(3, 4, num_layers=2, batch_first=True)
    result = m(tk.randn(2, 5, 3))
    value = result
    for i in LAYERS["gru"].outputs["h_n"]:
        value = value[i]
    np.testing.assert_allclose(value.detach().numpy(), result[1][-1].detach().numpy())
    assert tuple(value.shape) == (2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = LAYERS["lstm"].outputs
    assert paths == {"output": (0,), "h_n": (1, 0, -1), "c_n": (1, 1, -1)}


def test_a_yaml_graph_reads_an_lstm_output_and_final_states(tmp_path):
    from trainkit.assemble import build_model_and_plan
    from trainkit.config import load_config

    path = tmp_path / "m.yaml"
    path.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\nmodel:\n  graph:\n"
                    "    - {name: rnn, type: lstm, hidden_size: 4, num_layers: 2}\n"
                    "    - {name: h, type: linear, inputs: rnn.h_n, out_features: 3}\n"
                    "    - {name: c, type: linear, inputs: rnn.c_n, out_features: 3}\n"
                    "    - {name: out, type: add, inputs: [h, c]}\n")
    model, plan = build_model_and_plan(load_config(path), (5, 2))
    assert plan.node("rnn").kwargs["input_size"] == 2 and plan.node("rnn").kwargs["batch_first"] is True
    assert plan.shape_of("rnn.h_n") == (4,) and plan.shape_of("rnn.output") == (5, 4)
    assert plan.output_shape == (3,)
    x = tk.randn(6, 5, 2)
    out, (h, c) = model.get_submodule("rnn")(x)
    expected = model.get_submodule("h")(h[-1]) + model.get_submodule("c")(c[-1])
    np.testing.assert_allclose(model(x).detach().numpy(), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(h[-1].detach().numpy(), out[:, -1].detach().numpy(), rtol=1e-6)
    # the sequential form passes the output sequence on (one prediction per step)
    seq = tmp_path / "s.yaml"
    seq.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\n"
                   "model: {layers: [{gru: {hidden_size: 4}}, {linear: {out_features: 3}}]}\n")
    model, plan = build_model_and_plan(load_config(seq), (5, 2))
    assert plan.output_shape == (5, 3) and tuple(model(x).shape) == (6, 5, 3)
