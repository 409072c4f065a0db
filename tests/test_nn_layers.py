"""Layers, losses, init and the registry: shapes, parameter layouts, gradients, train/eval behaviour."""
from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest

import trainkit.nn as nn
from trainkit.autograd import random as tk_random
from trainkit.autograd.gradcheck import gradcheck
from trainkit.autograd.tensor import Tensor
from trainkit.nn import init
from trainkit.testing.layer_cases import nn_cases
from trainkit.registry import LAYERS, LOSSES, suggest


def _x(*shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# ------------------------------------------------------- shapes and parameters
SHAPES = [
    (lambda: nn.Linear(5, 3), (4, 5), (4, 3)),
    (lambda: nn.Linear(5, 3), (2, 7, 5), (2, 7, 3)),
    (lambda: nn.Conv2d(3, 6, 5), (2, 3, 32, 32), (2, 6, 28, 28)),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (1, 3, 9, 9), (1, 4, 5, 5)),
    (lambda: nn.Conv2d(3, 4, 3, padding="same"), (1, 3, 7, 6), (1, 4, 7, 6)),
    (lambda: nn.MaxPool2d(2, 2), (2, 6, 28, 28), (2, 6, 14, 14)),
    (lambda: nn.MaxPool2d(3, 2, 1), (1, 2, 9, 9), (1, 2, 5, 5)),
    (lambda: nn.AvgPool2d(2), (1, 2, 6, 6), (1, 2, 3, 3)),
    (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 4, 7, 8), (2, 4, 2, 3)),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 4, 7, 8), (2, 4, 1, 1)),
    (lambda: nn.GlobalAvgPool2d(), (2, 4, 7, 8), (2, 4)),
    (lambda: nn.BatchNorm1d(3), (4, 3), (4, 3)),
    (lambda: nn.BatchNorm1d(3), (4, 3, 5), (4, 3, 5)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4), (2, 3, 4, 4)),
    (lambda: nn.Flatten(), (2, 3, 4, 5), (2, 60)),
    (lambda: nn.Flatten(0, 2), (2, 3, 4, 5), (24, 5)),
    (lambda: nn.Dropout(0.2), (3, 4), (3, 4)),
    (lambda: nn.Identity(54, unused="x"), (3, 4), (3, 4)),
    (lambda: nn.Softmax(dim=-1), (3, 4), (3, 4)),
]


@pytest.mark.parametrize("make,in_shape,out_shape", SHAPES)
def test_output_shape_and_dtype(make, in_shape, out_shape):
    y = make()(_x(*in_shape))
    assert y.shape == out_shape and y.dtype == np.float32


PARAMS = [
    (lambda: nn.Linear(5, 3), {"weight": (3, 5), "bias": (3,)}),
    (lambda: nn.Linear(5, 3, bias=False), {"weight": (3, 5)}),
    (lambda: nn.Conv2d(3, 6, (5, 3)), {"weight": (6, 3, 5, 3), "bias": (6,)}),
    (lambda: nn.BatchNorm2d(4), {"weight": (4,), "bias": (4,), "running_mean": (4,), "running_var": (4,),
                                 "num_batches_tracked": ()}),
    (lambda: nn.BatchNorm1d(4, affine=False, track_running_stats=False), {}),
    (lambda: nn.BatchNorm1d(2, bias=False), {"weight": (2,), "running_mean": (2,), "running_var": (2,),
                                             "num_batches_tracked": ()}),
    (lambda: nn.MaxPool2d(2), {}),
    (lambda: nn.ReLU(), {}),
]


@pytest.mark.parametrize("make,expected", PARAMS)
def test_state_dict_names_and_shapes(make, expected):
    sd = make().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert list(sd) == list(expected)  # PyTorch's order: parameters, then buffers
    for k, v in sd.items():
        assert v.dtype == (np.int64 if k == "num_batches_tracked" else np.float32)


def test_constructor_arguments_are_stored_like_pytorch():
    c = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    assert (c.kernel_size, c.stride, c.padding) == ((3, 3), (2, 2), (1, 1))
    p = nn.MaxPool2d(3)
    assert (p.kernel_size, p.stride, p.padding) == (3, 3, 0)
    bn = nn.BatchNorm2d(5)
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)
    assert nn.LeakyReLU().negative_slope == 0.01 and nn.Dropout().p == 0.5
    assert nn.CrossEntropyLoss().label_smoothing == 0.0 and nn.MSELoss().reduction == "mean"


# ------------------------------------------------------------------ gradcheck
CASES = nn_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradcheck_through_every_layer_and_loss(case):
    inputs = case.make_inputs(np.random.default_rng(0))
    assert all(t.dtype == np.float64 for t in inputs if t.requires_grad)
    # The (float) input and every parameter are checked (parameters are passed as inputs); token ids are not.
    n_params = len(list(case.module.parameters()))
    if case.kind == "layer":  # every float input (token ids are not checked)
        checked_inputs = sum(t.is_floating_point() for t in inputs[:len(inputs) - n_params])
        assert checked_inputs == (0 if case.name in ("Embedding", "TokenPositionEmbedding") else 2 if case.name == "Transformer" else 1)
    else:  # a loss: its input, not its target
        checked_inputs = 1
    assert sum(t.requires_grad for t in inputs) == checked_inputs + n_params
    assert gradcheck(case.fn, inputs, fast_mode=case.fast)


def test_gradcheck_cases_cover_the_registry_and_reach_the_cli_table():
    covered = {type(c.module) for c in CASES}
    from trainkit.testing.layer_cases import merge_cases
    covered |= {type(c.module) for c in merge_cases()}
    assert {d.cls for d in LAYERS.values()} <= covered and {d.cls for d in LOSSES.values()} <= covered
    from trainkit.testing.cases import cases

    table = cases()
    assert {c.name for c in CASES} <= set(table) and table["Conv2d"].kind == "layer" and "Add" in table


def test_building_cases_leaves_the_global_generator_alone():
    tk_random.manual_seed(5)
    expected = tk_random.default_generator().random(3)
    tk_random.manual_seed(5)
    nn_cases()
    np.testing.assert_array_equal(tk_random.default_generator().random(3), expected)


def test_gradcheck_catches_a_wrong_layer_gradient():
    case = next(c for c in CASES if c.name == "Linear")
    inputs = case.make_inputs(np.random.default_rng(0))
    wrong = lambda x, w, b: case.fn(x, w, b) + (x * x).detach().sum()  # noqa: E731 - value changes, grad does not
    assert not gradcheck(wrong, inputs, raise_exception=False)
    assert not gradcheck(wrong, inputs, raise_exception=False, fast_mode=True)
    assert gradcheck(case.fn, inputs, fast_mode=True)
    # fast mode catches an error in a single element of a parameter too
    weight_only = lambda x, w, b: case.fn(x, w, b) + (w[0, 0] * w[0, 0]).detach()  # noqa: E731
    assert not gradcheck(weight_only, inputs, raise_exception=False, fast_mode=True)


def test_composite_layers_are_checked_in_fast_mode_the_rest_element_by_element():
    fast = {c.name for c in CASES if c.fast}
    assert fast and all(name.startswith("Transformer") for name in fast)
    assert not any(c.fast for c in CASES if c.name in ("Linear", "LSTM", "MultiheadAttention(causal)"))


# -------------------------------------------------------------------- dropout
def test_dropout_train_zeroes_about_p_and_rescales_eval_is_identity():
    tk_random.manual_seed(0)
    d = nn.Dropout(0.3)
    x = Tensor(np.ones((200, 100), dtype=np.float32))
    y = d(x)._array
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert y.dtype == np.float32
    d.eval()
    assert np.array_equal(d(x)._array, x._array)
    assert np.array_equal(nn.Dropout(0.0)(x)._array, x._array)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)


def test_dropout_follows_manual_seed():
    x = Tensor(np.ones((10, 10), dtype=np.float32))
    tk_random.manual_seed(3)
    a = nn.Dropout()(x)._array
    tk_random.manual_seed(3)
    b = nn.Dropout()(x)._array
    assert np.array_equal(a, b)


# ----------------------------------------------------------------- batch norm
def test_batchnorm_running_stats_update_with_unbiased_variance():
    bn = nn.BatchNorm2d(3)
    x = _x(4, 3, 5, 5, dtype=np.float32)
    bn(x)
    xs = x._array.astype(np.float64)
    mean, var_unbiased = xs.mean(axis=(0, 2, 3)), xs.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean._array, 0.1 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.running_var._array, 0.9 + 0.1 * var_unbiased, rtol=1e-5)
    assert bn.num_batches_tracked._array == 1 and bn.num_batches_tracked.dtype == np.int64
    assert bn.running_mean.dtype == np.float32


def test_batchnorm_train_normalises_with_batch_stats_eval_with_running_stats():
    bn = nn.BatchNorm1d(3)
    bn.weight._array[...] = [1.0, 2.0, 0.5]
    bn.bias._array[...] = [0.0, 1.0, -1.0]
    x = _x(6, 3, seed=2, dtype=np.float64)
    bn.double()
    xs = x._array
    y = bn(x)._array
    ref = (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5) * bn.weight._array + bn.bias._array
    np.testing.assert_allclose(y, ref, rtol=1e-10)
    bn.eval()
    rm, rv = bn.running_mean._array.copy(), bn.running_var._array.copy()
    y_eval = bn(x)._array
    np.testing.assert_allclose(y_eval, (xs - rm) / np.sqrt(rv + 1e-5) * bn.weight._array + bn.bias._array,
                               rtol=1e-10)
    np.testing.assert_array_equal(bn.running_mean._array, rm)  # eval leaves the stats alone
    assert bn.num_batches_tracked._array == 1


def test_batchnorm_cumulative_average_and_untracked():
    bn = nn.BatchNorm1d(2, momentum=None)
    a, b = _x(5, 2, seed=1), _x(5, 2, seed=2)
    bn(a), bn(b)
    expected = (a._array.mean(0) + b._array.mean(0)) / 2
    np.testing.assert_allclose(bn.running_mean._array, expected, rtol=1e-5, atol=1e-6)
    free = nn.BatchNorm1d(2, track_running_stats=False).eval()
    y = free(a)._array  # no running stats: batch statistics even in eval
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    assert free.running_mean is None and "running_mean" not in free.state_dict()


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(_x(2, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(_x(2, 3, 4, 4))


# ----------------------------------------------------------------------- init
def test_default_init_bounds_and_spread():
    tk_random.manual_seed(0)
    lin = nn.Linear(256, 128)
    bound = 1 / math.sqrt(256)  # kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in))
    w = lin.weight._array
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(lin.bias._array).max() <= bound
    conv = nn.Conv2d(8, 16, 3)
    cb = 1 / math.sqrt(8 * 9)
    assert np.abs(conv.weight._array).max() <= cb and np.abs(conv.bias._array).max() <= cb
    assert np.abs(conv.weight._array).max() > 0.9 * cb


def test_init_is_reproducible_with_manual_seed():
    tk_random.manual_seed(7)
    a = nn.Linear(4, 4).weight._array.copy()
    tk_random.manual_seed(7)
    b = nn.Linear(4, 4).weight._array.copy()
    c = nn.Linear(4, 4).weight._array
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_init_functions_statistics():
    t = Tensor(np.empty((400, 300), dtype=np.float32))
    assert init.kaiming_normal_(t, nonlinearity="relu") is t and t.dtype == np.float32
    assert abs(t._array.std() - math.sqrt(2 / 300)) < 0.01 * math.sqrt(2 / 300) * 5
    init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    assert np.abs(t._array).max() <= math.sqrt(6 / 400)
    init.xavier_uniform_(t)
    assert np.abs(t._array).max() <= math.sqrt(6 / 700) and np.abs(t._array).max() > 0.95 * math.sqrt(6 / 700)
    init.xavier_normal_(t, gain=2.0)
    assert abs(t._array.std() - 2 * math.sqrt(2 / 700)) < 0.05 * 2 * math.sqrt(2 / 700)
    init.normal_(t, 1.0, 0.5)
    assert abs(t._array.mean() - 1.0) < 0.01
    init.uniform_(t, -2, -1)
    assert t._array.min() >= -2 and t._array.max() <= -1
    init.constant_(t, 0.25)
    assert np.all(t._array == 0.25)
    init.zeros_(t), init.ones_(t)
    assert np.all(t._array == 1)
    init.trunc_normal_(t, std=1.0, a=-1.0, b=1.0)
    assert np.abs(t._array).max() <= 1.0


def test_calculate_gain_and_fans():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("conv2d") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    with pytest.raises(ValueError):
        init.calculate_gain("swish")
    assert init._calculate_fan_in_and_fan_out(Tensor(np.empty((6, 3, 5, 5)))) == (75, 150)
    with pytest.raises(ValueError):
        init._calculate_fan_in_and_fan_out(Tensor(np.empty(3)))


# --------------------------------------------------------------------- losses
def test_loss_values_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    target = rng.integers(0, 4, 5)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = nn.CrossEntropyLoss()(Tensor(logits), Tensor(target)).item()
    assert ce == pytest.approx(-logp[np.arange(5), target].mean(), rel=1e-10)
    w = np.array([1.0, 2.0, 0.5, 1.0])
    cew = nn.CrossEntropyLoss(weight=w)(Tensor(logits), Tensor(target)).item()
    picked = -logp[np.arange(5), target] * w[target]
    assert cew == pytest.approx(picked.sum() / w[target].sum(), rel=1e-6)
    nll = nn.NLLLoss(reduction="sum")(Tensor(logp), Tensor(target)).item()
    assert nll == pytest.approx(-logp[np.arange(5), target].sum(), rel=1e-10)
    y = rng.standard_normal((5, 4))
    assert nn.MSELoss()(Tensor(logits), Tensor(y)).item() == pytest.approx(((logits - y) ** 2).mean())
    assert nn.L1Loss(reduction="sum")(Tensor(logits), Tensor(y)).item() == pytest.approx(np.abs(logits - y).sum())
    p = rng.uniform(size=(5, 4))
    bce = -(p * np.log(1 / (1 + np.exp(-logits))) + (1 - p) * np.log(1 - 1 / (1 + np.exp(-logits))))
    assert nn.BCEWithLogitsLoss()(Tensor(logits), Tensor(p)).item() == pytest.approx(bce.mean())
    assert nn.MSELoss(reduction="none")(Tensor(logits), Tensor(y)).shape == (5, 4)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


def test_loss_weight_is_a_buffer_and_follows_input_dtype():
    loss = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    assert list(loss.state_dict()) == ["weight"] and loss.weight.dtype == np.float32
    out = loss(_x(4, 3, dtype=np.float64), Tensor(np.array([0, 1, 2, 1])))
    assert out.dtype == np.float64


# ------------------------------------------------------------ activations etc.
def test_activations_values():
    x = Tensor(np.array([[-2.0, -0.5, 0.0, 1.5]]))
    np.testing.assert_allclose(nn.ReLU()(x)._array, [[0, 0, 0, 1.5]])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x)._array, [[-0.2, -0.05, 0, 1.5]])
    np.testing.assert_allclose(nn.Sigmoid()(x)._array, 1 / (1 + np.exp(-x._array)))
    np.testing.assert_allclose(nn.Tanh()(x)._array, np.tanh(x._array))
    np.testing.assert_allclose(nn.Softmax(dim=1)(x)._array.sum(), 1.0)
    np.testing.assert_allclose(np.exp(nn.LogSoftmax(dim=1)(x)._array).sum(), 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nn.Softmax()(x)
    assert any("Implicit dimension" in str(w.message) for w in caught)
    with pytest.raises(ValueError):
        nn.GELU(approximate="fast")


def test_flatten_rejects_out_of_range_dims():
    with pytest.raises(IndexError, match="Dimension out of range"):
        nn.Flatten(start_dim=4)(_x(2, 3, 4))
    with pytest.raises(ValueError):
        nn.Flatten(2, 1)(_x(2, 3, 4))


def test_conv_padding_strings_and_errors():
    assert nn.Conv2d(1, 1, 3, padding="valid")(_x(1, 1, 5, 5)).shape == (1, 1, 3, 3)
    # an even kernel pads one more on the bottom/right, as PyTorch does
    assert nn.Conv2d(1, 1, 2, padding="same")(_x(1, 1, 5, 4)).shape == (1, 1, 5, 4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError):
        nn.Conv2d(1, 1, 3, padding="full")


# ------------------------------------------------------------------- registry
def test_registry_names_and_inferred_arguments():
    expected = {"linear", "conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "global_avgpool",
                "batchnorm1d", "batchnorm2d", "dropout", "flatten", "identity", "relu", "leaky_relu", "gelu",
                "sigmoid", "tanh", "softmax", "log_softmax"}
    assert expected | {"add", "mul", "concat"} <= set(LAYERS)  # new declarations add to the list
    assert {"cross_entropy", "nll", "mse", "l1", "bce_with_logits"} <= set(LOSSES)
    for name, spec in LAYERS.items():
        assert issubclass(spec.cls, nn.Module)
        if spec.input_arg is not None:
            assert spec.input_arg in inspect.signature(spec.cls).parameters, name
    # input_dim counts per-sample dimensions: -1 the last (features), 0 the channels
    assert LAYERS["linear"].input_arg == "in_features" and LAYERS["linear"].input_dim == -1
    assert LAYERS["conv2d"].input_arg == "in_channels" and LAYERS["batchnorm2d"].input_dim == 0
    assert suggest("conv2", LAYERS) == "; did you mean 'conv2d'?" and suggest("zzz", LAYERS) == ""
