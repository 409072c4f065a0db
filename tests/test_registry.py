"""Declarations: what a declaration must hold, the shape rules' truth, and new components in one new module."""
from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from rich.console import Console

import trainkit
import trainkit.nn as nn
from trainkit.config import ConfigError, load_config
from trainkit.registry import (DATASETS, LAYERS, LOSSES, OPTIMIZERS, REGISTRIES, SCHEDULERS, TRANSFORMS,
                               DeclarationError, Example, Float, Inferred, Int, ShapeProblem, layer, scheduler)
from trainkit.testing.layer_cases import example_arrays, example_inputs, example_module


# ----------------------------------------------------------------------------- what a declaration must hold
def test_a_layer_without_a_shape_rule_cannot_be_declared():
    with pytest.raises(DeclarationError, match="has no shape rule"):
        @layer("no_rule_here")
        class NoRule(nn.Module):
            def forward(self, x):
                return x
    assert "no_rule_here" not in LAYERS


def test_every_argument_needs_a_spec_and_defaults_must_pass_it():
    with pytest.raises(DeclarationError, match="argument 'width' has no value spec"):
        @layer("untyped_arg")
        class Untyped(nn.Module):
            def __init__(self, width=3):
                super().__init__()

            infer_shape = staticmethod(lambda args, x: Inferred(x))
    with pytest.raises(DeclarationError, match="the default of 'p' .* fails its own spec"):
        @layer("bad_default", args={"p": Float(0, 1)})
        class BadDefault(nn.Module):
            def __init__(self, p: float = 2.0):
                super().__init__()

            infer_shape = staticmethod(lambda args, x: Inferred(x))
    with pytest.raises(DeclarationError, match="args/defaults name 'nope'"):
        @layer("stray_arg", args={"nope": Int()})
        class Stray(nn.Module):
            infer_shape = staticmethod(lambda args, x: Inferred(x))
    with pytest.raises(DeclarationError, match="give example="):
        @layer("needs_example")
        class NeedsExample(nn.Module):
            def __init__(self, size: int):
                super().__init__()

            infer_shape = staticmethod(lambda args, x: Inferred(x))
    with pytest.raises(DeclarationError, match="input_arg 'in_size' is not one of its arguments"):
        @layer("bad_input_arg", input_arg="in_size")
        class BadInput(nn.Module):
            infer_shape = staticmethod(lambda args, x: Inferred(x))
    with pytest.raises(DeclarationError, match="run_length names 'T'"):
        @scheduler("bad_run_length", run_length="T")
        class BadSched(trainkit.optim.lr_scheduler.StepLR):
            pass
    for name in ("untyped_arg", "bad_default", "stray_arg", "needs_example", "bad_input_arg"):
        assert name not in LAYERS
    assert "bad_run_length" not in SCHEDULERS


def test_a_name_taken_by_another_class_is_refused():
    with pytest.raises(DeclarationError, match="'relu' is already declared by trainkit.nn.activation.ReLU"):
        @layer("relu")
        class OtherReLU(nn.Module):
            infer_shape = staticmethod(lambda args, x: Inferred(x))
    assert LAYERS["relu"].cls is nn.ReLU
    with pytest.raises(ValueError, match="built-in"):
        trainkit.register_layer("relu")


def test_declarations_read_the_signature_and_the_docstring():
    linear = LAYERS["linear"]
    assert list(linear.arguments) == ["in_features", "out_features", "bias"]
    assert linear.arguments["bias"].default is True and linear.input_arg == "in_features"
    assert "last dimension" in linear.arguments["in_features"].doc
    sgd = OPTIMIZERS["sgd"]
    assert list(sgd.arguments) == ["lr", "momentum", "dampening", "weight_decay", "nesterov"]  # no maximize
    assert sgd.arguments["momentum"].default == 0.0 and isinstance(sgd.arguments["momentum"].default, float)
    assert OPTIMIZERS["adam"].arguments["betas"].default == [0.9, 0.999]
    assert SCHEDULERS["cosine"].run_length == "T_max" and SCHEDULERS["onecycle"].interval == "step"
    assert "epochs" not in SCHEDULERS["onecycle"].arguments and SCHEDULERS["plateau"].watches_metric
    assert LOSSES["cross_entropy"].target == "classes" and "weight" not in LOSSES["cross_entropy"].arguments
    assert DATASETS["digits"].static_shape({"test_split": 0.2}) == (1, 8, 8)
    assert TRANSFORMS["random_crop"].image_only and TRANSFORMS["random_crop"].random
    assert set(REGISTRIES) == {"layer", "loss", "optimizer", "scheduler", "dataset", "transform"}


@pytest.mark.parametrize("name", [n for n, d in LAYERS.items() if d.example is not None])
def test_every_shape_rule_matches_the_layer_it_declares(name):
    """Output shape, parameter and buffer counts from the rule equal what the built layer has and does."""
    decl = LAYERS[name]
    shapes = example_inputs(decl.example)
    module = example_module(decl).eval()
    args = {**decl.overrides, **decl.example.args}
    if decl.input_arg is not None:
        args[decl.input_arg] = decl.input_value(shapes[0][1:])
    inferred = decl.infer(args, *[s[1:] for s in shapes])
    rng = np.random.default_rng(0)
    out = module(*[trainkit.tensor(a) for a in example_arrays(decl.example, rng)])
    result = out
    for key, path in (decl.outputs or {}).items():  # each named output of a multi-output layer
        value = result
        for i in path:
            value = value[i]
        assert tuple(value.shape[1:]) == inferred.outputs[key], key
        if path == next(iter(decl.outputs.values())):
            out = value
    assert tuple(out.shape[1:]) == inferred.shape
    assert inferred.params == sum(p.numel() for p in module.parameters())
    assert inferred.buffers == sum(b.numel() for b in module.buffers())


# ----------------------------------------------------------------------------- a new module, nothing else edited
EXTENSION = '''
"""Four new components, each declared beside its class: nothing else in trainkit is edited."""
import numpy as np

import trainkit.nn as nn
from trainkit.data.transforms import Transform
from trainkit.optim import Optimizer
from trainkit.optim.lr_scheduler import LRScheduler
from trainkit.registry import (Example, Float, Inferred, Int, ListOf, ShapeProblem, fmt, layer, optimizer,
                               scheduler, transform)


@layer("gated_linear", input_arg="in_features", input_dim=-1,
       args={"in_features": Int(lo=1), "out_features": Int(lo=1)}, example=Example((2, 5), {"out_features": 3}))
class GatedLinear(nn.Module):
    """``linear(x) * sigmoid(gate(x))``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.value = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.value(x) * self.gate(x).sigmoid()

    @staticmethod
    def infer_shape(args, x):
        if len(x) != 1:
            raise ShapeProblem(f"gated_linear needs (features,) input per sample, found {fmt(x)}")
        out = args["out_features"]
        return Inferred((out,), macs=2 * x[0] * out + out, params=2 * (x[0] * out + out))


@optimizer("sign_sgd", args={"lr": Float(lo=0, lo_open=True)})
class SignSGD(Optimizer):
    """``p -= lr * sign(grad)``.

    Args:
        lr: learning rate.
    """

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            for p, array, g in self._gradients(group):
                array -= np.float32(group["lr"]) * np.sign(g).astype(array.dtype)
        return loss


@scheduler("halving", args={"every": Int(lo=1)})
class HalvingLR(LRScheduler):
    """Halve the lr every ``every`` intervals.

    Args:
        every: intervals between halvings.
    """

    def __init__(self, optimizer, every: int = 1, last_epoch: int = -1):
        self.every = every
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.every:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] / 2 for g in self.optimizer.param_groups]


@transform("channel_scale", args={"factors": ListOf(Float(lo=0, lo_open=True), min_len=1)})
class ChannelScale(Transform):
    """Multiply each channel by its factor.

    Args:
        factors: one factor per channel.
    """

    def __init__(self, factors):
        self.factors = np.asarray(factors, dtype=np.float32)

    def apply_batch(self, x, rng=None):
        x = np.asarray(x, dtype=np.float32)
        return x * self.factors.reshape((1, -1) + (1,) * (x.ndim - 2))

    @staticmethod
    def output_shape(args, shape, data):
        if len(args["factors"]) != shape[0]:
            raise ShapeProblem(f"has {len(args['factors'])} factors; {data} have {shape[0]} channel(s)", "factors")
        return shape
'''

NAMES = {"layer": "gated_linear", "optimizer": "sign_sgd", "scheduler": "halving", "transform": "channel_scale"}

SEQUENTIAL = """\
name: ext_seq
data:
  dataset: digits
  val_split: 0.1
  transforms: [{channel_scale: {factors: [2.0]}}]
model:
  layers:
    - flatten
    - gated_linear: {out_features: 16}
    - relu
    - linear: {out_features: 10}
optimizer: {type: sign_sgd, lr: 0.002}
scheduler: {type: halving, every: 1}
train: {epochs: 3}
"""

GRAPH = """\
name: ext_graph
data: {dataset: iris}
model:
  graph:
    - {name: a, type: gated_linear, inputs: input, out_features: 8}
    - {name: b, type: gated_linear, inputs: input, out_features: 8}
    - {name: s, type: add, inputs: [a, b]}
    - {name: head, type: linear, out_features: 3}
optimizer: {type: sign_sgd}
"""


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """The new module, written to a folder on sys.path and imported; its declarations removed afterwards."""
    name = f"tk_ext_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(EXTENSION)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    try:
        yield name, module
    finally:
        for kind, decl_name in NAMES.items():
            REGISTRIES[kind].pop(decl_name)
        sys.modules.pop(name, None)


def test_new_components_in_one_new_module_work_from_yaml(tmp_path, extension):
    from trainkit.assemble import build_model_and_plan
    from trainkit.train.session import train

    name, module = extension
    for kind, decl_name in NAMES.items():
        assert REGISTRIES[kind][decl_name].cls.__module__ == name
    seq = tmp_path / "seq.yaml"
    seq.write_text(SEQUENTIAL)
    graph = tmp_path / "graph.yaml"
    graph.write_text(GRAPH)

    # sequential form, trained end to end: the optimizer, scheduler and transform all take part
    out = io.StringIO()
    assert train(seq, runs_dir=tmp_path / "runs", console=Console(file=out, width=150), command=["t"]) == 0
    run = next((tmp_path / "runs").iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.002, 0.001, 0.0005])  # the lr each epoch trained with
    assert rows[-1]["val_acc"] > 0.5
    cfg = load_config(seq)
    model, plan = build_model_and_plan(cfg, (1, 8, 8))
    gated = plan.nodes[1]
    assert isinstance(model[1], module.GatedLinear) and gated.kwargs["in_features"] == 64
    assert gated.out_shape == (16,) and gated.params == 2 * (64 * 16 + 16) == model[1].value.weight.numel() * 2 + 32

    # graph form
    model, plan = build_model_and_plan(load_config(graph), (4,))
    assert plan.node("s").out_shape == (8,) and model(trainkit.randn(5, 4)).shape == (5, 3)
    assert "a.gate.weight" in model.state_dict()

    # the transform is checked against the data set's shape in the first pass
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEQUENTIAL.replace("factors: [2.0]", "factors: [2.0, 1.0, 0.5]"))
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == (f"{bad}:5:33: data.transforms.0.channel_scale.factors: has 3 factors; digits "
                               "images have 1 channel(s)")


@pytest.mark.parametrize("wrong,right", [("gated_linaer", "gated_linear"), ("sign_sdg", "sign_sgd"),
                                         ("halvng", "halving"), ("channel_scal", "channel_scale")])
def test_new_components_get_a_did_you_mean(tmp_path, extension, wrong, right):
    path = tmp_path / "c.yaml"
    path.write_text(SEQUENTIAL.replace(right, wrong))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"did you mean '{right}'?" in str(info.value)


def _cli(tmp_path, module_name: str, *args) -> subprocess.CompletedProcess:
    """The trainkit CLI in a process that imported the extension first (as a plugin would be)."""
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import {module_name}; "
            "from trainkit.cli import app; app()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**__import__("os").environ, "COLUMNS": "160"})


def test_new_layer_in_summary_and_gradcheck(tmp_path, extension):
    name, _ = extension
    (tmp_path / "seq.yaml").write_text(SEQUENTIAL)
    r = _cli(tmp_path, name, "summary", "seq.yaml")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "gated_linear" in line)
    assert "16" in row and "2,080" in row and "2,064" in row  # shape, params, multiply-adds from its rule
    r = _cli(tmp_path, name, "gradcheck", "--op", "GatedLinear")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "GatedLinear" in r.stdout and "1 passed, 0 failed" in r.stdout
    from trainkit.testing.cases import cases
    assert "GatedLinear" in cases()


def test_a_declared_class_named_by_import_path_keeps_its_declaration(tmp_path, extension):
    """``module:Class`` of a declared class uses its specs and shape rule (no trial run)."""
    from trainkit.assemble import build_model_and_plan

    name, _ = extension
    path = tmp_path / "c.yaml"
    path.write_text(SEQUENTIAL.replace("gated_linear:", f"{name}:GatedLinear:"))
    model, plan = build_model_and_plan(load_config(path), (1, 8, 8))
    assert plan.nodes[1].macs == 2 * 64 * 16 + 16 and plan.nodes[1].module is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(SEQUENTIAL.replace("gated_linear: {out_features: 16}",
                                                      f"{name}:GatedLinear: {{out_features: 0}}")))
    with pytest.raises(ConfigError, match="out_features: must be >= 1, found 0"):
        build_model_and_plan(load_config(bad), (1, 8, 8))


def _plugin_dir(tmp_path, module_name: str, source: str):
    """A folder that makes ``module_name`` look like an installed package with a trainkit.plugins entry point."""
    root = tmp_path / "site"
    (root / f"{module_name}-0.1.dist-info").mkdir(parents=True)
    (root / f"{module_name}.py").write_text(source)
    (root / f"{module_name}-0.1.dist-info" / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module_name}\n"
                                                                    "Version: 0.1\n")
    (root / f"{module_name}-0.1.dist-info" / "entry_points.txt").write_text(
        f"[trainkit.plugins]\ncomponents = {module_name}\n")
    return root


def test_an_installed_plugin_adds_its_components_to_the_command_line(tmp_path):
    import os

    name = f"tk_plugin_{uuid.uuid4().hex[:8]}"
    site = _plugin_dir(tmp_path, name, EXTENSION)
    (tmp_path / "seq.yaml").write_text(SEQUENTIAL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "160"}
    r = subprocess.run([sys.executable, "-m", "trainkit", "summary", "seq.yaml"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "gated_linear" in r.stdout and "2,080" in r.stdout
    (site / f"{name}.py").write_text("raise RuntimeError('broken plugin')\n")
    r = subprocess.run([sys.executable, "-m", "trainkit", "summary", "seq.yaml"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"plugin 'components' ({name}) failed to load: RuntimeError: broken plugin" in r.stderr


def test_a_layer_with_several_outputs_is_read_one_output_at_a_time(tmp_path):
    """outputs= names a multi-output layer's results; the graph form selects one with 'node.output'."""
    from trainkit.assemble import build_model_and_plan

    @layer("split_halves", outputs={"first": (0,), "second": (1,)}, example=Example((2, 4)))
    class SplitHalves(nn.Module):
        """Split the features into two halves (returns both)."""

        def forward(self, x):
            half = x.shape[1] // 2
            return x[:, :half], x[:, half:]

        @staticmethod
        def infer_shape(args, x):
            if x[0] % 2:
                raise ShapeProblem(f"split_halves needs an even feature count, found {x[0]}")
            half = (x[0] // 2,)
            return Inferred(half, outputs={"first": half, "second": half})

    try:
        path = tmp_path / "g.yaml"
        path.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\nmodel:\n  graph:\n"
                        "    - {name: s, type: split_halves}\n"
                        "    - {name: a, type: linear, inputs: s.second, out_features: 3}\n"
                        "    - {name: b, type: linear, inputs: s, out_features: 3}\n"
                        "    - {name: c, type: add, inputs: [a, b]}\n")
        model, plan = build_model_and_plan(load_config(path), (4,))
        assert plan.node("a").in_shapes == [(2,)] and plan.shape_of("s.first") == (2,)
        x = trainkit.randn(3, 4)
        a, b = model.get_submodule("a"), model.get_submodule("b")
        expected = a(x[:, 2:]) + b(x[:, :2])
        np.testing.assert_allclose(model(x).detach().numpy(), expected.detach().numpy(), rtol=1e-6)
        # the sequential form passes the first output on
        seq = tmp_path / "s.yaml"
        seq.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\n"
                       "model: {layers: [split_halves, {linear: {out_features: 3}}]}\n")
        model, plan = build_model_and_plan(load_config(seq), (4,))
        assert plan.nodes[1].kwargs["in_features"] == 2 and model(x).shape == (3, 3)
        bad = tmp_path / "bad.yaml"
        bad.write_text(path.read_text().replace("s.second", "s.third"))
        with pytest.raises(ConfigError) as info:
            build_model_and_plan(load_config(bad), (4,))
        assert str(info.value) == (f"{bad}:6:31: model.graph.1.inputs: 's.third': split_halves has no output "
                                   "'third' (outputs: first, second)")
    finally:
        LAYERS.pop("split_halves")
