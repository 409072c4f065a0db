"""Config -> model: shape inference, located layer errors, GraphModule, custom layers, builders."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

import trainkit
from trainkit.config import load_config
from trainkit.assemble import (absolutize_layer_paths, build_loss, build_model, build_model_and_plan,
                               build_optimizer, build_scheduler, static_input_shape)
from trainkit.config.layers import validate_layer
from trainkit.errors import ConfigError
from trainkit.nn import GraphModule, Module, Sequential
from trainkit.registry import LAYERS as CUSTOM_LAYERS
from trainkit.registry import register_layer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

HEAD = "data: {dataset: digits}\noptimizer: {type: sgd, lr: 0.1}\n"


def write(tmp_path: Path, body: str, head: str = HEAD, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(head + textwrap.dedent(body))
    return path


def load(path, overrides=()):
    return load_config(path, overrides, validate_layer=validate_layer)


def problems(fn) -> list[str]:
    with pytest.raises(ConfigError) as info:
        fn()
    return [str(p) for p in info.value.problems]


def build_file(tmp_path, body, head=HEAD, shape=None, num_classes=None):
    cfg = load(write(tmp_path, body, head))
    return build_model(cfg, shape or static_input_shape(cfg), num_classes)


# ----------------------------------------------------------------------------- LeNet
def test_cifar_cnn_is_lenet_with_pytorch_keys():
    cfg = load(CONFIGS / "cifar_cnn.yaml")
    model = build_model(cfg, (3, 32, 32), num_classes=10)
    assert isinstance(model, Sequential)
    assert sum(p.numel() for p in model.parameters()) == 62_006
    assert list(model.state_dict()) == [
        "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
        "9.weight", "9.bias", "11.weight", "11.bias"]
    assert model[0].weight.shape == (6, 3, 5, 5) and model[7].weight.shape == (120, 400)
    out = model(trainkit.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_cifar_cnn_state_dict_loads_into_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    cfg = load(CONFIGS / "cifar_cnn.yaml")
    model = build_model(cfg, (3, 32, 32))
    ref = tnn.Sequential(tnn.Conv2d(3, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                         tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                         tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    assert sum(p.numel() for p in ref.parameters()) == 62_006
    ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(trainkit.tensor(x)).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_graph_resnet_keys_by_node_name_and_torch_equivalent():
    cfg = load(CONFIGS / "cifar_resnet.yaml")
    model = build_model(cfg, (3, 32, 32), num_classes=10)
    assert isinstance(model, GraphModule)
    keys = list(model.state_dict())
    assert keys[:2] == ["stem.weight", "stem_bn.weight"]
    assert "b2_short.weight" in keys and "fc.bias" in keys and "b1_bn1.running_mean" in keys
    assert model.get_submodule("b2_conv1").in_channels == 16
    assert model.get_submodule("fc").in_features == 32
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.eval()
    out = model(trainkit.tensor(x)).detach().numpy()
    assert out.shape == (2, 10)
    torch = pytest.importorskip("torch")
    # The same computation by hand in torch, from the same weights.
    sd = {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    F = torch.nn.functional

    def conv(name, t, stride=1, padding=1):
        return F.conv2d(t, sd[f"{name}.weight"], None, stride, padding)

    def bn(name, t):
        return F.batch_norm(t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                            sd[f"{name}.weight"], sd[f"{name}.bias"], False, 0.1, 1e-5)

    t = torch.from_numpy(x)
    s = F.max_pool2d(F.relu(bn("stem_bn", conv("stem", t))), 2)
    b1 = F.relu(bn("b1_bn2", conv("b1_conv2", F.relu(bn("b1_bn1", conv("b1_conv1", s))))) + s)
    main = bn("b2_bn2", conv("b2_conv2", F.relu(bn("b2_bn1", conv("b2_conv1", b1, stride=2)))))
    short = bn("b2_short_bn", conv("b2_short", b1, stride=2, padding=0))
    pooled = F.relu(main + short).mean(dim=(2, 3))
    ref = F.linear(pooled, sd["fc.weight"], sd["fc.bias"]).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- shapes
def test_inferred_shapes_match_the_layers_forward(tmp_path):
    """Each formula gives the shape the layer really produces (layers form, stepwise)."""
    body = """
    model:
      layers:
        - conv2d: {out_channels: 4, kernel_size: [3, 2], stride: 2, padding: [1, 0]}
        - batchnorm2d
        - leaky_relu: {negative_slope: 0.2}
        - conv2d: {out_channels: 5, kernel_size: 3, padding: same}
        - maxpool2d: {kernel_size: 3, stride: 2, padding: 1}
        - avgpool2d: {kernel_size: 2, stride: 1}
        - adaptive_avgpool2d: {output_size: [2, 3]}
        - flatten: {start_dim: 2}
        - batchnorm1d
        - linear: {out_features: 7}
        - gelu
        - flatten
        - dropout: {p: 0.2}
        - linear: {out_features: 6}
        - log_softmax
    """
    cfg = load(write(tmp_path, body, "data: {dataset: cifar10}\noptimizer: {type: sgd}\n"))
    model, plan = build_model_and_plan(cfg, (3, 17, 13))
    model.eval()
    x = trainkit.randn(2, 3, 17, 13)
    for module, node in zip(model, plan.nodes):
        x = module(x)
        assert tuple(x.shape[1:]) == node.out_shape, node.type
    assert plan.output_shape == (6,)
    conv0 = plan.nodes[0]
    assert conv0.kwargs["in_channels"] == 3 and conv0.out_shape == (4, 9, 6)
    assert conv0.macs == 4 * 9 * 6 * 3 * 3 * 2
    assert plan.nodes[8].kwargs["num_features"] == 5  # batchnorm1d over (5, 6) per sample
    assert plan.nodes[9].kwargs["in_features"] == 6 and plan.nodes[9].out_shape == (5, 7)
    assert plan.nodes[9].macs == 5 * 6 * 7


def test_graph_concat_mul_and_default_inputs(tmp_path):
    body = """
    model:
      graph:
        - {name: a, type: conv2d, out_channels: 3, kernel_size: 3, padding: 1}
        - {name: b, type: conv2d, inputs: input, out_channels: 5, kernel_size: 1}
        - {name: cat, type: concat, inputs: [a, b]}
        - {name: gate, type: sigmoid}
        - {name: prod, type: mul, inputs: [cat, gate]}
        - {name: pool, type: global_avgpool}
        - {name: head, type: linear, out_features: 10}
    """
    model, plan = build_model_and_plan(load(write(tmp_path, body)), (1, 8, 8))
    assert plan.node("cat").out_shape == (8, 8, 8)
    assert plan.node("head").kwargs["in_features"] == 8
    assert plan.output == "head"
    assert model(trainkit.randn(3, 1, 8, 8)).shape == (3, 10)


# ----------------------------------------------------------------------------- errors
def test_kernel_larger_than_input_is_located(tmp_path):
    body = """
    model:
      layers:
        - conv2d: {out_channels: 4, kernel_size: 3}
        - maxpool2d: {kernel_size: 2}
        - relu
        - conv2d: {out_channels: 4, kernel_size: 5}
    """
    path = write(tmp_path, body)
    cfg = load(path)
    got = problems(lambda: build_model(cfg, (1, 8, 8)))
    assert got == [f"{path}:9:33: model.layers.3.conv2d.kernel_size: kernel 5x5 is larger than its 3x3 input"]


def test_all_layer_argument_problems_at_once(tmp_path):
    body = """
    model:
      layers:
        - conv2: {out_channels: 8}
        - linear: {out_feature: 10}
        - dropout: {p: 1.0}
        - conv2d: {out_channels: 0, kernel_size: 3, padding: sam}
        - linear
    """
    path = write(tmp_path, body)
    got = problems(lambda: load(path))
    assert got[0].startswith(f"{path}:6:7: model.layers.0.conv2: unknown layer type 'conv2'; "
                             "did you mean 'conv2d'? (known: linear, conv2d,")
    assert got[1] == (f"{path}:7:16: model.layers.1.linear.out_feature: unknown argument 'out_feature' "
                      "for linear; did you mean 'out_features'? (arguments: in_features, out_features, bias)")
    assert got[2] == f"{path}:8:17: model.layers.2.dropout.p: must be in [0, 1), found 1.0"
    assert got[3] == f"{path}:9:16: model.layers.3.conv2d.out_channels: must be >= 1, found 0"
    assert got[4].startswith(f"{path}:9:49: model.layers.3.conv2d.padding: unknown padding 'sam'; "
                             "did you mean 'same'?")
    assert got[5] == f"{path}:10:7: model.layers.4: linear is missing required argument 'out_features'"
    assert len(got) == 6


def test_shape_problems_reported_together(tmp_path):
    body = """
    model:
      graph:
        - {name: a, type: conv2d, out_channels: 8, kernel_size: 3}
        - {name: b, type: conv2d, inputs: input, out_channels: 8, kernel_size: 3, padding: 1}
        - {name: s, type: add, inputs: [a, b]}
        - {name: c, type: concat, inputs: [a, b]}
        - {name: l, type: linear, inputs: input, out_features: 4}
        - {name: f, type: flatten, inputs: input}
        - {name: d, type: linear, inputs: f, in_features: 7, out_features: 4}
        - {name: g, type: flatten, inputs: [s, c, l, d]}
    """
    path = write(tmp_path, body)
    got = problems(lambda: build_model(load(path), (1, 8, 8)))
    assert got[0] == f"{path}:8:28: model.graph.2.inputs: add needs inputs of equal shape, found 8x6x6, 8x8x8"
    assert got[1] == (f"{path}:9:31: model.graph.3.inputs: concat along dim 1 needs the other dimensions "
                      "equal, found 8x6x6, 8x8x8")
    assert got[2].startswith(f"{path}:10:7: model.graph.4: linear acts on the last dimension only, and its "
                             "input is 1x8x8 per sample (an image); add 'flatten' or 'global_avgpool'")
    assert got[3].startswith(f"{path}:12:42: model.graph.6.in_features: in_features is 7 but the input gives 64")
    assert got[4] == (f"{path}:13:32: model.graph.7.inputs: flatten takes one input, found 4; combine them "
                      "first with an add, mul or concat node")


def test_wrong_rank_and_class_count(tmp_path):
    body = """
    model:
      layers:
        - flatten
        - conv2d: {out_channels: 2, kernel_size: 1}
    """
    got = problems(lambda: build_file(tmp_path, body))
    assert "conv2d needs (channels, height, width) input per sample, found 64" in got[0]
    body = """
    model:
      layers:
        - flatten
        - linear: {out_features: 9}
    """
    got = problems(lambda: build_file(tmp_path, body, num_classes=10))
    assert got == [f"{tmp_path / 'cfg.yaml'}:7:16: model.layers.1.linear.out_features: the model outputs 9 "
                   "per sample but the dataset has 10 classes; the last layer ('1') should output 10"]


def test_merge_needs_graph_and_names_are_checked(tmp_path):
    got = problems(lambda: build_file(tmp_path, "model:\n  layers: [relu, add]\n"))
    assert "add merges two or more inputs, found 1; merge nodes belong to the graph form" in got[0]
    body = """
    model:
      graph:
        - {name: train, type: relu}
    """
    got = problems(lambda: build_file(tmp_path, body))
    assert got[0].endswith("model.graph.0.name: node name 'train' is taken by a Module attribute; choose another")


def test_every_registry_argument_has_a_value_spec():
    """A constructor argument added to an nn layer must get a range check too (declaring it enforces it)."""
    import inspect

    for name, decl in CUSTOM_LAYERS.items():
        if not decl.checked:
            continue
        params = [p for p in inspect.signature(decl.cls).parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("dtype", "device")]
        # PyTorch's deprecated spellings (Hardtanh's min_value/max_value) are Python-only on purpose, and so are
        # arguments a declaration excludes by name (values trainkit refuses, such as LSTM's proj_size)
        missing = [p.name for p in params if p.name not in decl.arguments and p.name not in DEPRECATED_ALIASES
                   and p.name not in decl.excluded]
        assert not missing, (name, missing)


DEPRECATED_ALIASES = {"min_value", "max_value"}


# ----------------------------------------------------------------------------- custom layers
LAYER_FILE = '''
import trainkit.nn as nn

class Residual(nn.Module):
    def __init__(self, in_channels, hidden=4):
        super().__init__()
        self.a = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.b = nn.Conv2d(hidden, in_channels, 3, padding=1)

    def forward(self, x):
        return x + self.b(self.a(x).relu())

class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")
'''


def test_custom_layer_from_file_relative_to_config(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "my_layers.py").write_text(LAYER_FILE)
    body = """
    model:
      layers:
        - conv2d: {out_channels: 3, kernel_size: 1}
        - ./my_layers.py:Residual: {hidden: 5}
        - global_avgpool
        - linear: {out_features: 10}
    """
    path = write(tmp_path / "sub", body)
    monkeypatch.chdir(tmp_path)  # the file is found relative to the config, not the cwd
    cfg = load(path)
    model, plan = build_model_and_plan(cfg, (1, 8, 8))
    assert plan.nodes[1].kind == "custom" and plan.nodes[1].kwargs == {"hidden": 5, "in_channels": 3}
    assert plan.nodes[1].out_shape == (3, 8, 8) and plan.nodes[1].macs is None
    assert "1.a.weight" in model.state_dict()
    assert model(trainkit.randn(2, 1, 8, 8)).shape == (2, 10)
    data = absolutize_layer_paths(cfg)
    key = next(iter(data["model"]["layers"][1]))
    assert Path(key.split(":")[0]).is_absolute() and key.endswith("my_layers.py:Residual")


def test_custom_layer_errors_are_located(tmp_path):
    (tmp_path / "my_layers.py").write_text(LAYER_FILE)
    body = """
    model:
      graph:
        - {name: a, type: ./my_layers.py:Broken}
        - {name: b, type: ./my_layers.py:Nope, inputs: a}
        - {name: c, type: ./missing.py:X, inputs: b}
        - {name: d, type: no_such_pkg.mod:X, inputs: c}
        - {name: e, type: ./my_layers.py:Residual, inputs: d, hiden: 3}
    """
    path = write(tmp_path, body)
    got = problems(lambda: build_model(load(path), (1, 8, 8)))
    assert got[0] == (f"{path}:6:7: model.graph.0: ./my_layers.py:Broken failed on input 1x8x8: "
                      "RuntimeError: boom")
    assert got[1] == (f"{path}:7:17: model.graph.1.type: './my_layers.py' has no class 'Nope' "
                      "(its nn.Module classes: Broken, Residual)")
    assert got[2].startswith(f"{path}:8:17: model.graph.2.type: layer file './missing.py' not found")
    assert got[3].startswith(f"{path}:9:17: model.graph.3.type: cannot import module 'no_such_pkg.mod'")
    assert got[4].startswith(f"{path}:10:59: model.graph.4.hiden: unknown argument 'hiden' for "
                             "./my_layers.py:Residual; did you mean 'hidden'?")


def test_register_layer_decorator(tmp_path):
    @register_layer("scale_test", input_arg="features", input_dim=-1)
    class Scale(Module):
        def __init__(self, features, factor=2.0):
            super().__init__()
            self.features = features
            self.weight = trainkit.nn.Parameter(trainkit.ones(features))
            self.factor = factor

        def forward(self, x):
            return x * self.weight * self.factor

    try:
        body = """
        model:
          layers:
            - flatten
            - scale_test: {factor: 3.0}
            - linear: {out_features: 10}
        """
        model, plan = build_model_and_plan(load(write(tmp_path, body)), (1, 8, 8))
        assert model[1].features == 64 and model[1].factor == 3.0
        assert model(trainkit.ones(2, 1, 8, 8)).shape == (2, 10)
        got = problems(lambda: load(write(tmp_path, "model:\n  layers: [scale_tset]\n")))
        assert "did you mean 'scale_test'?" in got[0]
        with pytest.raises(ValueError, match="built-in"):
            register_layer("conv2d")
    finally:
        CUSTOM_LAYERS.pop("scale_test", None)


# ----------------------------------------------------------------------------- builders
def test_loss_optimizer_and_schedulers(tmp_path):
    body = """
    loss: {type: cross_entropy, label_smoothing: 0.1}
    model:
      layers: [flatten, {linear: {out_features: 10}}]
    train: {epochs: 3}
    scheduler: {type: cosine, interval: step}
    """
    head = "data: {dataset: digits}\noptimizer: {type: adam, lr: 0.01, betas: [0.8, 0.9]}\n"
    cfg = load(write(tmp_path, body, head))
    model = build_model(cfg, (1, 8, 8))
    assert build_loss(cfg).label_smoothing == 0.1
    opt = build_optimizer(cfg, model)
    assert type(opt).__name__ == "Adam" and opt.param_groups[0]["betas"] == (0.8, 0.9)
    sched = build_scheduler(cfg, opt, steps_per_epoch=5)
    assert sched.interval == "step" and sched.scheduler.T_max == 15
    lrs = []
    for _ in range(15):
        sched.after_step()
        sched.after_epoch({"train_loss": 1.0})  # no effect with interval step
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.005 * (1 + math.cos(math.pi * k / 15)) for k in range(1, 16)])

    cfg = load(write(tmp_path, body.replace("{type: cosine, interval: step}", "{type: plateau, patience: 0}"),
                     head))
    sched = build_scheduler(cfg, build_optimizer(cfg, model), steps_per_epoch=5)
    assert sched.interval == "epoch" and sched.metric == "val_loss"
    sched.after_epoch({"train_loss": 1.0})          # no val split: watches train_loss
    sched.after_epoch({"train_loss": 2.0})
    assert sched.scheduler.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_onecycle_defaults_to_every_step_of_the_run(tmp_path):
    body = """
    model: {layers: [flatten, {linear: {out_features: 10}}]}
    train: {epochs: 2}
    scheduler: {type: onecycle, max_lr: 0.1}
    """
    cfg = load(write(tmp_path, body))
    sched = build_scheduler(cfg, build_optimizer(cfg, build_model(cfg, (1, 8, 8))), steps_per_epoch=7)
    assert sched.interval == "step" and sched.scheduler.total_steps == 14


def test_graph_forward_overhead_is_small():
    """GraphModule adds only dict lookups per node over calling the modules by hand: counted as Python and C
    calls (deterministic, unlike a timing), it makes a few calls in all, not one more per node."""
    import sys

    cfg = load(CONFIGS / "cifar_resnet.yaml")
    model = build_model(cfg, (3, 8, 8))
    x = trainkit.randn(1, 3, 8, 8)
    order = model._order
    assert len(order) > 10

    def by_hand():
        values = {"input": x}
        for name, ins in order:
            values[name] = model._modules[name](*[values[i] for i in ins])
        return values["fc"]

    def calls(fn):
        n = [0]

        def count(frame, event, arg):
            n[0] += event in ("call", "c_call")
        fn()  # first call's lazy set-up out of the count
        sys.setprofile(count)
        try:
            out = fn()
        finally:
            sys.setprofile(None)
        return n[0], out

    with trainkit.no_grad():
        (graph, y), (hand, y_hand) = calls(lambda: model(x)), calls(by_hand)
    np.testing.assert_array_equal(y.numpy(), y_hand.numpy())
    assert hand <= graph <= hand + 8, (graph, hand, len(order))


# ----------------------------------------------------------------------------- property test
def _layer_strategy():
    from hypothesis import strategies as st

    size = st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2, max_size=2))
    pad = st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2), min_size=2, max_size=2))
    return st.one_of(
        st.fixed_dictionaries({"conv2d": st.fixed_dictionaries(
            {"out_channels": st.integers(1, 3), "kernel_size": size},
            optional={"stride": size, "padding": st.one_of(pad, st.just("valid")), "bias": st.booleans()})}),
        st.fixed_dictionaries({"maxpool2d": st.fixed_dictionaries(
            {"kernel_size": size}, optional={"stride": size, "padding": st.integers(0, 1)})}),
        st.fixed_dictionaries({"avgpool2d": st.fixed_dictionaries(
            {"kernel_size": size}, optional={"stride": size, "count_include_pad": st.booleans()})}),
        st.fixed_dictionaries({"adaptive_avgpool2d": st.fixed_dictionaries({"output_size": size})}),
        st.sampled_from(["relu", "tanh", "batchnorm2d", "identity", "gelu", "flatten", "global_avgpool",
                         "softmax", "batchnorm1d"]),
        st.fixed_dictionaries({"linear": st.fixed_dictionaries({"out_features": st.integers(1, 5)})}),
        st.fixed_dictionaries({"flatten": st.fixed_dictionaries({"start_dim": st.integers(-3, 3)})}),
    )


def test_random_layer_stacks_either_build_with_true_shapes_or_fail_cleanly():
    """Any stack of valid-typed layers: a located ConfigError, or a model whose every
    layer produces exactly the inferred shape."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from trainkit.config import loads_config
    from trainkit.config.yamlsafe import dump_yaml

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_layer_strategy(), min_size=1, max_size=5),
           st.sampled_from([(2, 7, 6), (1, 5, 5), (3, 4, 9)]))
    def run(layers, shape):
        text = HEAD + dump_yaml({"model": {"layers": layers}})
        try:
            cfg = loads_config(text, validate_layer=validate_layer)
            model, plan = build_model_and_plan(cfg, shape)
        except ConfigError as e:
            assert all(p.path.startswith("model") for p in e.problems), e
            return
        model.eval()
        x = trainkit.randn(2, *shape)
        for module, node in zip(model, plan.nodes):
            x = module(x)
            assert tuple(x.shape[1:]) == node.out_shape, (node.type, node.kwargs, node.in_shapes)

    run()


def test_load_hook_reports_graph_types_with_schema_problems(tmp_path):
    body = """
    model:
      graph:
        - {name: a, type: conv, out_channels: 3, kernel_size: 3}
        - {name: b, type: linear, out_features: 2, inputs: a}
    train: {epochs: 0}
    """
    path = write(tmp_path, body)
    got = problems(lambda: load(path))
    assert got[0].startswith(f"{path}:6:17: model.graph.0.type: unknown layer type 'conv'; "
                             "did you mean 'conv2d'?")
    assert got[1] == f"{path}:8:9: train.epochs: must be >= 1, found 0"
