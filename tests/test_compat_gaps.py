"""API gaps that running PyTorch's example programs exposed, checked against torch.

- ``torch.where(cond, 1, 0)`` with two Python scalars (siamese_network's prediction);
- ``'{:+.2f}'.format(tensor)`` of a 0-d tensor (regression's ``poly_desc``);
- ``nn.Linear(in, out, bias, device, dtype)`` positionally (mnist_forward_forward's ``Layer``);
- convolutions whose output has only a few positions per image (ResNet's last stages on MNIST, 1x1
  to 4x4) and larger ones: values and gradients equal torch's.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit as tk
import trainkit.nn as nn
import trainkit.nn.functional as F

SCALARS = [1, 0, 2.5, -1.0, True, False]


@given(a=st.sampled_from(SCALARS), b=st.sampled_from(SCALARS), default64=st.booleans())
@settings(max_examples=40, deadline=None)
def test_where_with_scalars_has_torchs_dtype_and_values(a, b, default64):
    cond = np.array([[True, False, True], [False, False, True]])
    old_tk, old_th = tk.get_default_dtype(), th.get_default_dtype()
    try:
        if default64:
            tk.set_default_dtype(tk.float64), th.set_default_dtype(th.float64)
        r, e = tk.where(tk.tensor(cond), a, b), th.where(th.tensor(cond), a, b)
    finally:
        tk.set_default_dtype(old_tk), th.set_default_dtype(old_th)
    assert str(r.dtype).split(".")[1] == str(e.dtype).split(".")[1]
    np.testing.assert_array_equal(r.numpy(), e.numpy())


def test_where_tensor_and_scalar_keeps_gradient_and_single_argument_form():
    x = tk.tensor([0.2, 0.7, 0.9], dtype=tk.float64, requires_grad=True)
    y = tk.where(x > 0.5, x, 2)
    y.sum().backward()
    assert y.tolist() == [2.0, 0.7, 0.9] and x.grad.tolist() == [0.0, 1.0, 1.0]
    (idx,) = tk.where(x > 0.5)
    assert idx.tolist() == [1, 2] and idx.dtype == tk.int64
    rows, cols = tk.where(tk.tensor([[0, 3], [4, 0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    with pytest.raises(TypeError):
        tk.where(x > 0.5, x)


@pytest.mark.parametrize("spec", ["+.2f", ".3e", "", "8.1f", "d"])
def test_zero_dim_tensor_formats_like_its_number(spec):
    value = 3 if spec == "d" else -1.23456
    assert format(tk.tensor(value), spec) == format(th.tensor(value), spec)
    assert "{:+.2f} x^{}".format(tk.tensor([0.5, 1.5])[1], 2) == "+1.50 x^2"
    with pytest.raises(TypeError):
        format(tk.tensor([1.0, 2.0]), ".2f")  # as torch: only one number formats


def test_layers_take_device_and_dtype_where_torch_puts_them():
    class Layer(nn.Linear):
        def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
            super().__init__(in_features, out_features, bias, device, dtype)

    layer = Layer(3, 2, True, tk.device("cpu"), tk.float64)
    assert layer.weight.dtype == tk.float64 and layer.bias.shape == (2,)
    bn = nn.BatchNorm1d(4, 1e-5, 0.1, True, True, "cpu", tk.float64)
    assert bn.running_mean.dtype == tk.float64
    for cls in (nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.PReLU):
        ours = list(inspect.signature(cls).parameters)
        theirs = list(inspect.signature(getattr(th.nn, cls.__name__)).parameters)
        assert ours[:len(theirs)] == theirs, cls.__name__
    with pytest.raises(RuntimeError, match="CPU"):
        nn.Linear(2, 2, device="cuda")
    with pytest.raises(RuntimeError, match="CPU"):
        nn.Conv2d(1, 1, 3, device="cuda:0")


@pytest.mark.parametrize("n,c,h,w,o,k,stride,pad", [
    (3, 4, 1, 1, 5, 3, 1, 1),      # 1 position: ResNet-18's layer4 on MNIST
    (2, 3, 4, 4, 2, 3, 2, 1),      # 4 positions, strided
    (2, 2, 5, 6, 3, 3, 1, 1),      # 30 positions, stride 1
    (2, 2, 9, 9, 3, 3, 1, 1),      # 81 positions
    (2, 2, 21, 12, 3, (3, 2), 2, 0),
])
def test_conv2d_few_and_many_positions_match_torch_in_float64(n, c, h, w, o, k, stride, pad):
    rng = np.random.default_rng(n * 100 + h)
    kh, kw = (k, k) if isinstance(k, int) else k
    xs, ws, bs = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, kh, kw)), rng.normal(size=o)
    x, wt, b = (tk.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    tx, tw, tb = (th.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    y = F.conv2d(x, wt, b, stride, pad)
    ty = th.nn.functional.conv2d(tx, tw, tb, stride, pad)
    gy = rng.normal(size=tuple(ty.shape))
    (y * tk.tensor(gy)).sum().backward()
    (ty * th.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, e in ((x, tx), (wt, tw), (b, tb)):
        np.testing.assert_allclose(a.grad.numpy(), e.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,shape,fn", [
    ("Dropout1d", (6, 50, 7), "dropout1d"), ("Dropout1d", (50, 7), "dropout1d"),
    ("Dropout2d", (6, 50, 3, 4), "dropout2d"), ("Dropout2d", (6, 50, 7), "dropout2d"),
    ("Dropout3d", (4, 50, 2, 3, 2), "dropout3d"), ("Dropout3d", (50, 2, 3, 2), "dropout3d"),
])
@pytest.mark.filterwarnings("ignore:dropout2d")
def test_channel_dropout_zeroes_whole_channels_as_torch(cls, shape, fn):
    tk.manual_seed(0)
    x = tk.tensor(np.random.default_rng(0).uniform(1, 2, shape), requires_grad=True)
    layer = getattr(nn, cls)(p=0.4)
    y = layer(x)
    y.sum().backward()
    ratio = np.round(y.detach().numpy() / x.detach().numpy(), 9)
    batched = len(shape) == {"Dropout1d": 3, "Dropout2d": 4, "Dropout3d": 5}[cls] or cls == "Dropout2d"
    per_channel = ratio.reshape(shape[:2] + (-1,)) if batched else ratio.reshape(shape[:1] + (-1,))
    assert np.isin(per_channel, [0.0, round(1 / 0.6, 9)]).all()
    assert (per_channel == per_channel[..., :1]).all()  # one draw per channel
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.6
    np.testing.assert_allclose(x.grad.numpy(), ratio, rtol=1e-8)
    torch_layer = getattr(th.nn, cls)(p=0.4)
    assert repr(layer) == repr(torch_layer)
    layer.eval()
    assert layer(x) is x or np.array_equal(layer(x).detach().numpy(), x.detach().numpy())
    assert getattr(F, fn)(x, 1.0).detach().numpy().max() == 0 and getattr(F, fn)(x, 0.0) is x


def test_dropout2d_on_lstm_features_warns_and_drops_elements_as_torch():
    """pytorch/examples mnist_rnn applies nn.Dropout2d to (N, 64): torch warns and drops single elements."""
    x = tk.ones(200, 64)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d") as ours:
        y = nn.Dropout2d(0.5)(x)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d") as theirs:
        th.nn.Dropout2d(0.5)(th.ones(200, 64))
    assert str(ours[0].message) == str(theirs[0].message)
    kept = y.numpy() != 0
    assert 0.4 < kept.mean() < 0.6 and not (kept == kept[:, :1]).all()  # not whole rows
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(tk.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)


_ARITH = [("add", {}), ("add", {"alpha": 2}), ("sub", {"alpha": -0.5}), ("mul", {}), ("div", {}),
          ("div", {"rounding_mode": "trunc"}), ("div", {"rounding_mode": "floor"}), ("true_divide", {}),
          ("floor_divide", {})]


def _valid(fn, kwargs, kind) -> bool:
    if kind.startswith("int") and not float(kwargs.get("alpha", 1)).is_integer():
        return False  # a float alpha with integer tensors is an error in both libraries
    return kind != "scalar_first" or fn in ("add", "sub", "mul", "div", "true_divide")


@pytest.mark.parametrize("fn,kwargs,kind", [
    (fn, kwargs, kind) for fn, kwargs in _ARITH for kind in ("float", "int", "int_scalar", "scalar_first")
    if _valid(fn, kwargs, kind)])
def test_arithmetic_functions_match_torch(fn, kwargs, kind):
    a = np.array([[7.5, -7.5, 3.0], [-2.25, 9.0, -1.0]])
    b = np.array([2.0, -4.0, 0.5])
    if kind == "int":
        a, b = a.astype(np.int64) * 3 + 1, np.array([2, -4, 5])
    ours_args = {"float": (tk.tensor(a), tk.tensor(b)), "int": (tk.tensor(a), tk.tensor(b)),
                 "int_scalar": (tk.tensor(a), 3), "scalar_first": (3, tk.tensor(b))}[kind]
    their_args = {"float": (th.tensor(a), th.tensor(b)), "int": (th.tensor(a), th.tensor(b)),
                  "int_scalar": (th.tensor(a), 3), "scalar_first": (th.tensor(3), th.tensor(b))}[kind]
    ours, theirs = getattr(tk, fn)(*ours_args, **kwargs), getattr(th, fn)(*their_args, **kwargs)
    assert str(ours.dtype).split(".")[1] == str(theirs.dtype).split(".")[1]
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_concat_half_and_div_errors():
    a, b = tk.ones(2, 3), tk.zeros(1, 3)
    assert tk.concat([a, b]).shape == (3, 3) and tk.concatenate((a, b), dim=0).shape == (3, 3)
    assert a.half().dtype == tk.float16
    with pytest.raises(ValueError, match="rounding_mode"):
        tk.div(a, 2, rounding_mode="round")
    x = tk.tensor([1.0, 2.0], requires_grad=True)
    tk.add(x, x, alpha=3).sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]
