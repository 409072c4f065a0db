"""Conv1d, Conv2d with groups/dilation/padding modes, ConvTranspose2d, MaxPool1d, AvgPool1d, AdaptiveMaxPool2d,
Upsample, Dropout1d/2d, Unflatten, ParameterList and ParameterDict against PyTorch 2.13 (float64 outputs, input and
parameter gradients on hypothesis-drawn sizes, state dicts, reprs), plus their YAML shape rules."""
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
small = st.integers(1, 3)


def _pair_of(name, *args, **kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs).double(), getattr(tnn, name)(*args, **kwargs).double()
    assert repr(ours) == repr(theirs)
    return ours, theirs


@SETTINGS
@given(data=st.data())
def test_conv2d_with_groups_dilation_and_padding_modes_matches_torch(data):
    groups = data.draw(small, label="groups")
    cin, cout = groups * data.draw(small, label="cin/g"), groups * data.draw(small, label="cout/g")
    k = (data.draw(small, label="kh"), data.draw(small, label="kw"))
    dil = (data.draw(small, label="dh"), data.draw(small, label="dw"))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), label="padding_mode")
    same = data.draw(st.booleans(), label="same")
    stride = (1, 1) if same else (data.draw(small, label="sh"), data.draw(small, label="sw"))
    pad = "same" if same else (data.draw(st.integers(0, 2), label="ph"), data.draw(st.integers(0, 2), label="pw"))
    h = max(d * (kk - 1) + 1 for d, kk in zip(dil, k)) + data.draw(st.integers(0, 4), label="extra")
    if mode != "zeros":
        limit = 1 if pad == "same" else max(pad)
        h = max(h, 2 * max(d * (kk - 1) for d, kk in zip(dil, k)) + 1, limit + 1)  # reflect needs pad < size
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, bias=data.draw(st.booleans(), label="bias"),
              padding_mode=mode)
    ours, theirs = _pair_of("Conv2d", cin, cout, k, **kw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    check_module_against_torch(ours, theirs, [rng.standard_normal((data.draw(small, label="N"), cin, h, h + 1))])


@SETTINGS
@given(data=st.data())
def test_conv1d_matches_torch(data):
    groups = data.draw(small, label="groups")
    cin, cout = groups * data.draw(small, label="cin/g"), groups * data.draw(small, label="cout/g")
    k, dil = data.draw(small, label="k"), data.draw(small, label="dilation")
    same = data.draw(st.booleans(), label="same")
    kw = dict(stride=1 if same else data.draw(small, label="stride"),
              padding="same" if same else data.draw(st.integers(0, 2), label="padding"), dilation=dil, groups=groups)
    ours, theirs = _pair_of("Conv1d", cin, cout, k, **kw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    length = dil * (k - 1) + 1 + data.draw(st.integers(0, 4), label="extra")
    batched = data.draw(st.booleans(), label="batched")
    check_module_against_torch(ours, theirs, [rng.standard_normal((2, cin, length) if batched else (cin, length))])


@SETTINGS
@given(data=st.data())
def test_conv_transpose2d_matches_torch(data):
    groups = data.draw(small, label="groups")
    cin, cout = groups * data.draw(small, label="cin/g"), groups * data.draw(small, label="cout/g")
    k = (data.draw(small, label="kh"), data.draw(small, label="kw"))
    stride, dil = (data.draw(small, label="sh"), data.draw(small, label="sw")), (data.draw(small, label="dh"), 1)
    out_pad = tuple(data.draw(st.integers(0, max(s, d) - 1), label="output_padding") for s, d in zip(stride, dil))
    pad = (data.draw(st.integers(0, 1), label="ph"), data.draw(st.integers(0, 1), label="pw"))
    ours, theirs = _pair_of("ConvTranspose2d", cin, cout, k, stride=stride, padding=pad, output_padding=out_pad,
                            groups=groups, dilation=dil, bias=data.draw(st.booleans(), label="bias"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    size = (data.draw(st.integers(2, 4), label="H"), data.draw(st.integers(2, 4), label="W"))
    out = [(size[i] - 1) * stride[i] - 2 * pad[i] + dil[i] * (k[i] - 1) + out_pad[i] + 1 for i in range(2)]
    if min(out) < 1:  # an empty output: both refuse
        x = rng.standard_normal((2, cin) + size)
        with pytest.raises(RuntimeError, match="Output size is too small"):
            theirs(torch.from_numpy(x))
        with pytest.raises(RuntimeError, match="Output size is too small"):
            ours(tk.from_numpy(x))
        return
    check_module_against_torch(ours, theirs, [rng.standard_normal((2, cin) + size)])


def test_conv_transpose2d_output_size_and_init():
    ours, theirs = _pair_of("ConvTranspose2d", 2, 3, 3, stride=2)
    rng = np.random.default_rng(0)
    check_module_against_torch(ours, theirs, [rng.standard_normal((1, 2, 4, 4))], {"output_size": [10, 10]})
    with pytest.raises(ValueError, match="requested an output size of"):
        ours(tk.randn(1, 2, 4, 4).double(), output_size=[12, 12])
    m = nn.ConvTranspose2d(16, 8, 3)
    assert tuple(m.weight.shape) == (16, 8, 3, 3)
    bound = 1 / np.sqrt(8 * 9)  # fan_in from dimension 1, as PyTorch computes it
    w = m.weight.detach().numpy()
    assert w.max() <= bound and w.max() > 0.9 * bound
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")


@SETTINGS
@given(data=st.data())
def test_pool1d_and_adaptive_max_pool_match_torch(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    k = data.draw(st.integers(1, 4), label="k")
    stride = data.draw(st.one_of(st.none(), small), label="stride")
    pad = data.draw(st.integers(0, k // 2), label="padding")
    length = k + data.draw(st.integers(0, 5), label="extra")
    x = rng.standard_normal((data.draw(small, label="N"), 2, length))
    check_module_against_torch(*_pair_of("MaxPool1d", k, stride, pad), [x])
    count = data.draw(st.booleans(), label="count_include_pad")
    check_module_against_torch(*_pair_of("AvgPool1d", k, stride, pad, count_include_pad=count), [x])
    out = (data.draw(st.integers(1, 5), label="oh"), data.draw(st.one_of(st.none(), st.integers(1, 5)), label="ow"))
    img = rng.standard_normal((2, 2, data.draw(st.integers(1, 6), label="H"), data.draw(st.integers(1, 6), label="W")))
    check_module_against_torch(*_pair_of("AdaptiveMaxPool2d", out), [img])


@pytest.mark.parametrize("kw,shape", [({"scale_factor": 2}, (2, 3, 3, 4)), ({"size": (5, 3), "mode": "bilinear"},
                                                                              (1, 2, 3, 4)),
                                      ({"scale_factor": 1.5, "mode": "bilinear", "align_corners": True}, (1, 2, 4, 3)),
                                      ({"scale_factor": 3, "mode": "linear"}, (2, 2, 4)),
                                      ({"size": 7, "mode": "nearest-exact"}, (1, 1, 3))])
def test_upsample_matches_torch(kw, shape):
    check_module_against_torch(*_pair_of("Upsample", **kw), [np.random.default_rng(0).standard_normal(shape)])


def test_dropout2d_and_1d_drop_whole_channels():
    tk.manual_seed(0)
    x = tk.ones(50, 40, 3, 3)
    y = nn.Dropout2d(0.25)(x).numpy()
    per_channel = y.reshape(50, 40, 9)
    assert ((per_channel == 0).all(axis=2) | (per_channel == per_channel[..., :1]).all(axis=2)).all()
    assert abs((per_channel[..., 0] == 0).mean() - 0.25) < 0.04
    np.testing.assert_allclose(per_channel[per_channel != 0], 1 / 0.75)
    m = nn.Dropout2d(0.25).eval()
    assert m(x) is x
    z = nn.Dropout1d(0.5)(tk.ones(30, 20, 4)).numpy()
    assert ((z == 0).all(axis=2) | (z == 2).all(axis=2)).all()
    assert repr(nn.Dropout2d(0.3)) == repr(tnn.Dropout2d(0.3))
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        nn.Dropout2d()(tk.ones(2, 3, 4))


def test_unflatten_matches_torch():
    x = np.random.default_rng(0).standard_normal((4, 6, 5))
    for dim, size in ((1, (2, 3)), (-1, [5, 1]), (1, (3, -1))):
        ours, theirs = nn.Unflatten(dim, size), tnn.Unflatten(dim, size)
        assert repr(ours) == repr(theirs)
        np.testing.assert_array_equal(ours(tk.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy())
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints"):
        nn.Unflatten(1, (2, 3.0))
    with pytest.raises(RuntimeError, match="don't multiply up"):
        nn.Unflatten(1, (4, 2))(tk.tensor(x))


def test_parameter_list_and_dict_register_and_load_into_torch():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(tk.randn(3, 2)), tk.randn(2)])
            self.named = nn.ParameterDict({"scale": tk.ones(2), "shift": nn.Parameter(tk.zeros(2))})

        def forward(self, x):
            return (x @ self.ws[0] + self.ws[1]) * self.named["scale"] + self.named["shift"]

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = tnn.ParameterList([tnn.Parameter(torch.randn(3, 2)), torch.randn(2)])
            self.named = tnn.ParameterDict({"scale": torch.ones(2), "shift": tnn.Parameter(torch.zeros(2))})

        def forward(self, x):
            return (x @ self.ws[0] + self.ws[1]) * self.named["scale"] + self.named["shift"]

    ours, theirs = Ours().double(), Theirs().double()
    assert list(ours.state_dict()) == ["ws.0", "ws.1", "named.scale", "named.shift"]
    check_module_against_torch(ours, theirs, [np.random.default_rng(0).standard_normal((4, 3))])
    pl = ours.ws
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter) and [p.shape for p in pl][0] == (3, 2)
    pl.append(tk.randn(1))
    assert [n for n, _ in ours.named_parameters()][:3] == ["ws.0", "ws.1", "ws.2"]
    # PyTorch's layout (one entry stays on the first line), with trainkit's dtype names
    assert repr(nn.ParameterList([nn.Parameter(tk.zeros(3, 4))])) == \
        "ParameterList(  (0): Parameter containing: [trainkit.float32 of size 3x4])"
    assert repr(nn.ParameterList([nn.Parameter(tk.zeros(3, 4)), tk.zeros(2).double()])) == \
        repr(tnn.ParameterList([tnn.Parameter(torch.zeros(3, 4)), torch.zeros(2).double()])).replace("torch", "trainkit")
    d = ours.named
    assert "scale" in d and list(d.keys()) == ["scale", "shift"] and d.pop("shift") is not None and len(d) == 1
    with pytest.raises(RuntimeError, match="should not be called"):
        pl(1)


# ------------------------------------------------------------------------------------------------ YAML
def test_yaml_shape_rules_of_conv_and_pooling():
    conv = LAYERS["conv2d"]
    got = conv.infer({"in_channels": 4, "out_channels": 8, "kernel_size": 3, "groups": 2, "dilation": 2}, (4, 9, 9))
    assert got.shape == (8, 5, 5) and got.params == sum(p.numel() for p in nn.Conv2d(4, 8, 3, groups=2).parameters())
    assert got.macs == 8 * 5 * 5 * 2 * 9
    with pytest.raises(ShapeProblem, match="do not split into 3 groups"):
        conv.infer({"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 3}, (4, 9, 9))
    with pytest.raises(ShapeProblem, match=r"dilated to 7x7\) is larger than its 5x5 input"):
        conv.infer({"in_channels": 1, "out_channels": 1, "kernel_size": 3, "dilation": 3}, (1, 5, 5))
    assert conv.infer({"in_channels": 1, "out_channels": 2, "kernel_size": 4, "padding": "same"}, (1, 6, 6)).shape == \
        (2, 6, 6)
    assert LAYERS["conv1d"].infer({"in_channels": 3, "out_channels": 5, "kernel_size": 3, "stride": 2},
                                  (3, 11)).shape == (5, 5)
    ct = LAYERS["conv_transpose2d"].infer({"in_channels": 4, "out_channels": 2, "kernel_size": 3, "stride": 2,
                                           "padding": 1, "output_padding": 1}, (4, 8, 8))
    assert ct.shape == (2, 16, 16)
    assert LAYERS["maxpool1d"].infer({"kernel_size": 2}, (3, 9)).shape == (3, 4)
    assert LAYERS["adaptive_maxpool2d"].infer({"output_size": 1}, (5, 7, 7)).shape == (5, 1, 1)
    up = LAYERS["upsample"]
    assert up.infer({"scale_factor": 2.0}, (3, 4, 5)).shape == (3, 8, 10)
    with pytest.raises(ShapeProblem, match="mode bilinear needs 2 spatial"):
        up.infer({"scale_factor": 2.0, "mode": "bilinear"}, (3, 4))
    assert LAYERS["unflatten"].infer({"dim": 1, "unflattened_size": [3, -1]}, (12,)).shape == (3, 4)
    with pytest.raises(ShapeProblem, match="batch dimension"):
        LAYERS["unflatten"].infer({"dim": 0, "unflattened_size": [3, 4]}, (12,))


def test_yaml_model_with_new_conv_layers_builds(tmp_path):
    from trainkit.assemble import build_model_and_plan
    from trainkit.config import ConfigError, load_config

    path = tmp_path / "m.yaml"
    path.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\nmodel:\n  layers:\n"
                    "    - conv2d: {out_channels: 4, kernel_size: 3, padding: same, groups: 2, padding_mode: reflect}\n"
                    "    - dropout2d: {p: 0.1}\n"
                    "    - conv_transpose2d: {out_channels: 2, kernel_size: 2, stride: 2}\n"
                    "    - adaptive_maxpool2d: {output_size: 2}\n"
                    "    - upsample: {scale_factor: 2, mode: bilinear}\n"
                    "    - flatten\n"
                    "    - unflatten: {dim: 1, unflattened_size: [2, -1]}\n")
    model, plan = build_model_and_plan(load_config(path), (2, 5, 5))
    assert plan.output_shape == (2, 16)
    assert tuple(model(tk.randn(3, 2, 5, 5)).shape) == (3, 2, 16)
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("padding_mode: reflect", "padding_mode: mirror"))
    with pytest.raises(ConfigError, match="padding_mode"):
        load_config(bad)
