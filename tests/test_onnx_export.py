"""ONNX export (issue 16): every layer rule against trainkit's own forward in onnxruntime, on randomized
layers (hypothesis), plain nn.Module programs through trainkit.onnx.export, and `trainkit export` refusals.

The shipped configs are exported after their smoke training in tests/test_smoke_configs.py.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install 'trainkit[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'trainkit[onnx]')")

import trainkit as tk  # noqa: E402
import trainkit.nn as nn  # noqa: E402
import trainkit.nn.functional as F  # noqa: E402
import trainkit.onnx  # noqa: E402
from trainkit.onnx import OnnxExportError  # noqa: E402
from trainkit.registry import LAYERS  # noqa: E402
from trainkit.testing.layer_cases import example_arrays, example_module  # noqa: E402

from clitools import tk as trainkit_cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_onnx(model, args, feeds=None, dynamic=None, **kw):
    """Export ``model`` on ``args``; return (onnxruntime session, checked proto)."""
    buf = io.BytesIO()
    proto = trainkit.onnx.export(model, args, buf, dynamic_axes=dynamic, **kw)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()), full_check=True)
    return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"]), proto


def ours(model, *xs):
    with tk.no_grad():
        out = model(*[tk.tensor(x) for x in xs])
    return out


def close(got, want, tol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def check_layer(model, *xs, batches=()):
    """The layer's ONNX graph gives trainkit's outputs, also at other batch sizes (dynamic axis 0)."""
    model.eval()
    names = [f"input_{i}" for i in range(len(xs))] if len(xs) > 1 else ["input"]
    dyn = {n: {0: "batch"} for n in names}
    sess, _ = run_onnx(model, tuple(tk.tensor(x) for x in xs), dynamic={**dyn, "output": {0: "batch"}},
                       input_names=names, output_names=["output"])
    for n in (None, *batches):
        feed = [x if n is None else np.concatenate([x] * n)[:n] for x in xs]
        want = ours(model, *feed)
        want = want[0] if isinstance(want, tuple) else want
        close(sess.run(["output"], dict(zip(names, feed)))[0], want.numpy())


# ----------------------------------------------------------------------------- every declared rule
RULED = sorted(n for n, d in LAYERS.items() if d.onnx is not None and d.example is not None)


@pytest.mark.parametrize("name", RULED)
def test_every_declared_layer_rule_matches_its_forward_on_its_example(name):
    decl = LAYERS[name]
    rng = np.random.default_rng(0)
    model = example_module(decl)
    for b in model.buffers():  # batch norm: statistics that are not the identity
        if b.dtype.kind == "f" and b.ndim == 1:
            b._array[...] = rng.uniform(0.5, 1.5, b.shape).astype(b.dtype)
    xs = example_arrays(decl.example, rng)
    check_layer(model, *xs, batches=(1, 5))


def test_the_built_in_layers_all_declare_an_export_rule():
    missing = sorted(n for n, d in LAYERS.items() if d.onnx is None and d.checked)
    assert missing == [], f"layers without an ONNX export rule: {missing}"


# ----------------------------------------------------------------------------- randomized rules
@FAST
@given(c=st.integers(1, 4), o=st.integers(1, 5), k=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 1),
       d=st.integers(1, 2), groups=st.sampled_from([1, "c"]), bias=st.booleans(),
       mode=st.sampled_from(["zeros", "reflect", "replicate"]), same=st.booleans(), hw=st.integers(5, 9))
def test_conv2d_rule_randomized(c, o, k, s, p, d, groups, bias, mode, same, hw):
    g = c if groups == "c" else 1
    o = o * g if groups == "c" else o
    padding = "same" if same and s == 1 else p
    m = nn.Conv2d(c, o, k, stride=s, padding=padding, dilation=d, groups=g, bias=bias, padding_mode=mode)
    x = np.random.default_rng(k).standard_normal((2, c, hw, hw + 1)).astype(np.float32)
    check_layer(m, x, batches=(1,))


@FAST
@given(kind=st.sampled_from(["max", "avg"]), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1),
       hw=st.integers(4, 9), include=st.booleans())
def test_pool_rules_randomized(kind, k, s, p, hw, include):
    p = min(p, k // 2)
    m = nn.MaxPool2d(k, s, p) if kind == "max" else nn.AvgPool2d(k, s, p, count_include_pad=include)
    x = np.random.default_rng(hw).standard_normal((3, 2, hw, hw)).astype(np.float32)
    check_layer(m, x, batches=(1,))


@FAST
@given(rank=st.integers(2, 4), start=st.integers(0, 3), end=st.integers(-1, 3))
def test_flatten_rule_randomized(rank, start, end):
    start = start % rank
    end = end % rank
    if end < start:
        start, end = end, start
    start = max(start, 1)  # the batch axis stays its own
    end = max(end, start)
    x = np.random.default_rng(rank).standard_normal((2, 3, 2, 2)[:rank]).astype(np.float32)
    check_layer(nn.Flatten(start, end), x, batches=(1, 4))


@FAST
@given(features=st.integers(1, 6), affine=st.booleans(), two_d=st.booleans(), seed=st.integers(0, 99))
def test_batchnorm_rule_with_random_running_statistics(features, affine, two_d, seed):
    rng = np.random.default_rng(seed)
    m = nn.BatchNorm2d(features, affine=affine) if two_d else nn.BatchNorm1d(features, affine=affine)
    m.running_mean._array[...] = rng.standard_normal(features)
    m.running_var._array[...] = rng.uniform(0.1, 3, features)
    if affine:
        m.weight._array[...] = rng.standard_normal(features)
        m.bias._array[...] = rng.standard_normal(features)
    shape = (3, features, 4, 4) if two_d else (3, features)
    check_layer(m, rng.standard_normal(shape).astype(np.float32), batches=(1,))


@FAST
@given(mode=st.sampled_from(["LSTM", "GRU", "RNN"]), layers=st.integers(1, 2), bidir=st.booleans(),
       batch_first=st.booleans(), hx=st.booleans(), bias=st.booleans(), seed=st.integers(0, 99))
def test_recurrent_rules_randomized(mode, layers, bidir, batch_first, hx, bias, seed):
    rng = np.random.default_rng(seed)
    m = getattr(nn, mode)(3, 4, layers, bias=bias, batch_first=batch_first, bidirectional=bidir)
    m.eval()
    n, t = 2, 5
    x = rng.standard_normal((n, t, 3) if batch_first else (t, n, 3)).astype(np.float32)
    args = [tk.tensor(x)]
    if hx:
        h = tk.tensor(rng.standard_normal((layers * (2 if bidir else 1), n, 4)).astype(np.float32))
        args.append((h, tk.tensor(rng.standard_normal(h.shape).astype(np.float32))) if mode == "LSTM" else h)
    sess, _ = run_onnx(m, tuple(args))
    with tk.no_grad():
        out = m(*args)
    flat = [out[0]] + (list(out[1]) if mode == "LSTM" else [out[1]])
    feeds = {i.name: v for i, v in zip(sess.get_inputs(), [x] + [a.numpy() for a in _flat(args[1:])])}
    for got, w in zip(sess.run(None, feeds), flat):
        close(got, w.numpy())


def _flat(v):
    out = []
    for a in v:
        out += _flat(a) if isinstance(a, tuple) else [a]
    return out


@FAST
@given(name=st.sampled_from(["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "silu",
                             "elu", "selu", "softplus", "mish", "hardswish", "hardtanh"]),
       scale=st.floats(0.1, 30), seed=st.integers(0, 99))
def test_activation_rules_on_wide_ranges(name, scale, seed):
    from trainkit.testing.layer_cases import example_module as build
    m = build(LAYERS[name])
    x = (np.random.default_rng(seed).standard_normal((4, 6)) * scale).astype(np.float32)
    check_layer(m, x, batches=(1,))


@FAST
@given(batch_first=st.booleans(), causal=st.booleans(), norm_first=st.booleans(), heads=st.sampled_from([1, 2, 4]),
       mask=st.sampled_from([None, "bool", "float"]), seed=st.integers(0, 99))
def test_transformer_rules_randomized(batch_first, causal, norm_first, heads, mask, seed):
    rng = np.random.default_rng(seed)
    layer = nn.TransformerEncoderLayer(8, heads, 16, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
                                       activation=["relu", "gelu"][seed % 2])
    layer.eval()
    n, t = 2, 5
    x = rng.standard_normal((n, t, 8) if batch_first else (t, n, 8)).astype(np.float32)
    kw = {}
    if mask == "bool":
        kw["src_mask"] = tk.tensor((rng.random((t, t)) < 0.3) & ~np.eye(t, dtype=bool))
    elif mask == "float":
        kw["src_mask"] = tk.tensor(rng.standard_normal((t, t)).astype(np.float32))
    if causal and mask is None:
        kw["is_causal"] = True
        kw["src_mask"] = nn.Transformer.generate_square_subsequent_mask(t)
    sess, _ = run_onnx(layer, (tk.tensor(x), kw))
    with tk.no_grad():
        want = layer(tk.tensor(x), **kw).numpy()
    feeds = [x] + ([kw["src_mask"].numpy()] if "src_mask" in kw else [])  # a mask argument is a graph input
    close(sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), feeds)})[0], want)


# ----------------------------------------------------------------------------- Module programs
class Net(nn.Module):
    """A forward of its own between layers: view, slicing, +, F.relu, mean, log_softmax (engine ops)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.skip = nn.Linear(6, 6)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        y = y.view(y.size(0), -1)
        h = self.fc(y)
        h = h + 0.5 * self.skip(h)[:, :] - h.mean(dim=1, keepdim=True)
        return F.log_softmax(h, dim=1)


def test_a_module_program_exports_with_its_own_forward_and_a_dynamic_batch():
    net = Net()
    net.eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    sess, proto = run_onnx(net, (tk.tensor(x),), dynamic={"input": {0: "n"}, "output": {0: "n"}})
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "n"
    for n in (1, 3, 64):
        xx = np.random.default_rng(n).standard_normal((n, 1, 8, 8)).astype(np.float32)
        close(sess.run(None, {"input": xx})[0], ours(net, xx).numpy())


def test_export_restores_training_mode_and_writes_paths_atomically(tmp_path):
    net = Net()
    net.train()
    path = tmp_path / "net.onnx"
    trainkit.onnx.export(net, tk.randn(2, 1, 8, 8), str(path))
    assert net.training and onnx.load(str(path)).graph.node
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]


def test_tied_weights_are_one_initializer_and_ir_version_is_readable():
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    m[2].weight = m[0].weight
    _, proto = run_onnx(m, (tk.randn(2, 4),))
    assert sum(1 for i in proto.graph.initializer if tuple(i.dims) == (4, 4)) == 1
    assert proto.ir_version <= onnx.IR_VERSION and proto.opset_import[0].version == 17


class NoRule(nn.Module):
    def forward(self, x):
        return tk.cumsum(x, dim=1)


def test_an_op_without_a_rule_is_named():
    with pytest.raises(OnnxExportError, match="Cumsum"):
        trainkit.onnx.export(NoRule(), tk.randn(2, 3), io.BytesIO())


def test_a_custom_layer_declares_its_rule_with_to_onnx():
    class Scale(nn.Module):
        def forward(self, x):
            return tk.cumsum(x, dim=1) * 2.0

        def to_onnx(self, g, x):
            return g.op("Mul", g.op("CumSum", x, g.constant(np.int64(1))), g.constant(np.float32(2.0)))

    m = nn.Sequential(nn.Linear(3, 3), Scale())
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    sess, _ = run_onnx(m, (tk.tensor(x),))
    close(sess.run(None, {"input": x})[0], ours(m, x).numpy())


@pytest.mark.parametrize("bad, match", [({"opset_version": 3}, "opset 3"), ({"opset_version": 99}, "opset 99"),
                                        ({"dynamic_axes": {"nope": [0]}}, "nope"),
                                        ({"dynamic_axes": {"input": [5]}}, "out of range")])
def test_bad_export_arguments_are_clear(bad, match):
    with pytest.raises(OnnxExportError, match=match):
        trainkit.onnx.export(nn.Linear(2, 2), tk.randn(1, 2), io.BytesIO(), **bad)


def test_word_language_model_exports_as_the_pytorch_example_calls_it(monkeypatch):
    """pytorch/examples' export_onnx: torch.onnx.export(model, (dummy_input, hidden), path)."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "examples" / "word_language_model"))
    sys.modules.pop("model", None)
    from model import RNNModel
    for kind in ("LSTM", "GRU"):
        model = RNNModel(kind, 50, 8, 8, 2, dropout=0.2, tie_weights=True)
        model.eval()
        seq_len, batch = 7, 1
        dummy = tk.zeros(seq_len * batch, dtype=tk.long).view(-1, batch)  # the example's torch.LongTensor(n).zero_()
        hidden = model.init_hidden(batch)
        buf = io.BytesIO()
        tk.onnx.export(model, (dummy, hidden), buf)
        sess = ort.InferenceSession(buf.getvalue())
        ids = np.random.default_rng(0).integers(0, 50, (seq_len, batch)).astype(np.int64)
        h = [np.random.default_rng(1).standard_normal((2, batch, 8)).astype(np.float32) for _ in range(2)]
        hid = (tk.tensor(h[0]), tk.tensor(h[1])) if kind == "LSTM" else tk.tensor(h[0])
        with tk.no_grad():
            out, new = model(tk.tensor(ids), hid)
        feeds = dict(zip([i.name for i in sess.get_inputs()], [ids] + (h if kind == "LSTM" else h[:1])))
        got = sess.run(None, feeds)
        close(got[0], out.numpy())
        close(got[1], (new[0] if kind == "LSTM" else new).numpy())
    sys.modules.pop("model", None)


# ----------------------------------------------------------------------------- trainkit export refusals
LAYERS_PY = """\
import trainkit.nn as nn


class Scale(nn.Module):
    def __init__(self, in_features):
        super().__init__()
        self.lin = nn.Linear(in_features, in_features)

    def forward(self, x):
        return self.lin(x) * 2.0
"""

RULED_PY = LAYERS_PY + """
    def to_onnx(self, g, x):
        import numpy as np
        lin = g.op("Gemm", x, g.tensor(self.lin.weight), g.tensor(self.lin.bias), transB=1)
        return g.op("Mul", lin, g.constant(np.float32(2.0)))
"""

CUSTOM = """\
name: custom
seed: 0
data: {dataset: iris, batch_size: 16}
model:
  layers:
    - ./layers.py:Scale
    - relu
    - linear: {out_features: 3}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
"""


def _cli(tmp_path, *args):
    return trainkit_cli(tmp_path, *args, timeout=300)


def test_trainkit_export_refuses_a_custom_layer_without_a_rule_and_takes_one_with_it(tmp_path):
    (tmp_path / "layers.py").write_text(LAYERS_PY)
    (tmp_path / "c.yaml").write_text(CUSTOM)
    run = tmp_path / "run"
    r = _cli(tmp_path, "train", "c.yaml", "--run-dir", run, "-q")
    assert r.returncode == 0, r.stderr
    r = _cli(tmp_path, "export", run)
    assert r.returncode == 2, r.stderr
    assert "layer '0'" in r.stderr and "Scale from " in r.stderr and "layers.py" in r.stderr and "no ONNX export rule" \
        in r.stderr and "Traceback" not in r.stderr
    assert not list(run.glob("*.onnx")) and not list(run.glob(".*tmp*"))

    (tmp_path / "layers.py").write_text(RULED_PY)  # the rule added: the same code otherwise, so trust it
    r = _cli(tmp_path, "export", run, "--trust-code", "-o", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["trainkit.class_names"]) and meta["trainkit.checkpoint"] == "best"


@pytest.mark.parametrize("args, match", [
    (["export", "nowhere"], "no such run directory"),
    (["export", "RUN", "--checkpoint", "missing.safetensors"], "no such checkpoint"),
    (["export", "RUN", "--checkpoint", " "], "--checkpoint is empty"),
    (["export", "RUN", "-o", "nofolder/m.onnx"], "does not exist"),
    (["export", "RUN", "--opset", "12"], "opset 12 is not supported"),
    (["export", "RUN", "--format", "tflite"], "--format 'tflite'"),
])
def test_trainkit_export_bad_input_exits_2(tmp_path, args, match):
    (tmp_path / "c.yaml").write_text(CUSTOM.replace("    - ./layers.py:Scale\n", ""))
    run = tmp_path / "RUN"
    if args[1] == "RUN":
        assert _cli(tmp_path, "train", "c.yaml", "--run-dir", run, "-q").returncode == 0
    r = _cli(tmp_path, *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.rglob("*.onnx"))
