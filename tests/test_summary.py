"""Model summary table, totals, DOT output, and the shipped configs (build, summary, gradcheck)."""
from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from trainkit.config import load_config
from trainkit.assemble import build_model, static_input_shape
from trainkit.config.layers import validate_layer
from trainkit.views.summary import (human_bytes, human_count, render_dot, render_summary, summarize,
                                    to_dot, write_dot)
from trainkit.errors import TrainkitError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SHIPPED = ["cifar_cnn", "cifar_resnet", "digits_cnn", "digits_mlp", "digits_mlp_bn", "iris_mlp", "diabetes_regression",
           "linear_regression", "mnist_cnn", "image_folder_example", "shakespeare_char_gpt",
           "shakespeare_char_lstm", "cifar_vit", "digits_mlp_sweep", "cifar_fast"]


def summary_of(name: str):
    cfg = load_config(CONFIGS / f"{name}.yaml", validate_layer=validate_layer)
    shape = static_input_shape(cfg)
    model = build_model(cfg, shape)
    return summarize(cfg, model, shape)


def rendered(summary, width: int = 120) -> str:
    buf = io.StringIO()
    render_summary(summary, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_builds_and_renders(name):
    summary = summary_of(name)
    text = rendered(summary)
    assert f"Model: {name}" in text
    assert f"Parameters: {summary.params:,}" in text
    assert summary.params == sum(r.params for r in summary.rows) > 0
    for row in summary.rows:
        assert row.name in text
    json.dumps(summary.to_dict())  # JSON-able for --json and run directories


def test_shipped_config_list_is_complete():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED)


def test_lenet_rows_params_and_macs():
    s = summary_of("cifar_cnn")
    assert [r.params for r in s.rows] == [456, 0, 0, 2416, 0, 0, 0, 48120, 0, 10164, 0, 850]
    assert [r.output_shape for r in s.rows][:7] == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10),
                                                   (16, 10, 10), (16, 5, 5), (400,)]
    assert s.rows[0].macs == 6 * 28 * 28 * 3 * 25 and s.rows[3].macs == 16 * 10 * 10 * 6 * 25
    assert s.rows[7].macs == 400 * 120
    assert s.macs == 352_800 + 240_000 + 48_000 + 10_080 + 840
    assert s.params == 62_006 and s.param_bytes == 62_006 * 4 and s.buffer_bytes == 0
    text = rendered(s)
    assert "Parameters: 62,006 = 242.2 KiB" in text
    assert "Mult-adds per sample: 651,720 (651.7K)" in text
    assert "Input 3x32x32 -> output 10 per sample" in text
    assert "Inputs" not in text  # a sequential model's inputs are implied


def test_graph_summary_shows_inputs_and_buffers():
    s = summary_of("cifar_resnet")
    add = next(r for r in s.rows if r.name == "b2_add")
    assert add.inputs == ["b2_bn2", "b2_short_bn"] and add.params == 0 and add.output_shape == (32, 8, 8)
    assert s.buffer_bytes > 0 and s.output == "fc"
    text = rendered(s, width=160)
    assert "Inputs" in text and "b2_bn2, b2_short_bn" in text and "buffers" in text


def test_dot_graph_has_every_node_and_edge():
    s = summary_of("cifar_resnet")
    dot = to_dot(s)
    assert dot.startswith('digraph "cifar_resnet" {') and dot.rstrip().endswith("}")
    assert '"input" [label="input\\n3x32x32"' in dot
    assert '"b1_out" -> "b2_short" [label="16x16x16"];' in dot
    assert '"stem_pool" -> "b1_add"' in dot and '"b1_bn2" -> "b1_add"' in dot
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(edges) == sum(len(r.inputs) for r in s.rows)


def test_render_dot_without_graphviz_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(TrainkitError, match="Graphviz 'dot' program is not on PATH"):
        render_dot("digraph g {}", tmp_path / "m.svg")
    with pytest.raises(TrainkitError, match="svg or .png"):
        render_dot("digraph g {}", tmp_path / "m.pdf")
    lines = write_dot(summary_of("iris_mlp"), tmp_path / "m.dot", svg=True, png=True)
    assert lines[0] == f"wrote {tmp_path / 'm.dot'}"
    assert lines[1].startswith("SVG not rendered: the Graphviz 'dot' program is not on PATH")
    assert lines[2].endswith(f"dot -Tpng {tmp_path / 'm.dot'} -o {tmp_path / 'm.png'})")
    assert (tmp_path / "m.dot").read_text().startswith('digraph "iris_mlp"')
    assert not (tmp_path / "m.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
def test_render_dot_svg(tmp_path):
    out = render_dot(to_dot(summary_of("iris_mlp")), tmp_path / "m.svg")
    assert "<svg" in out.read_text()


def test_custom_layer_macs_unknown(tmp_path):
    (tmp_path / "lay.py").write_text(textwrap.dedent("""
        import trainkit.nn as nn
        class Twice(nn.Module):
            def forward(self, x):
                return x * 2
    """))
    (tmp_path / "c.yaml").write_text("data: {dataset: iris}\noptimizer: {type: sgd}\n"
                                     "model:\n  layers:\n    - ./lay.py:Twice\n    - linear: {out_features: 3}\n")
    cfg = load_config(tmp_path / "c.yaml", validate_layer=validate_layer)
    model = build_model(cfg, (4,))
    s = summarize(cfg, model, (4,))
    assert s.rows[0].macs is None and not s.macs_complete and s.macs == 12
    assert "(custom layers not counted)" in rendered(s)


def test_human_units():
    assert human_count(999) == "999" and human_count(62_006) == "62.0K" and human_count(2_834_592) == "2.83M"
    assert human_bytes(100) == "100 B" and human_bytes(248_024) == "242.2 KiB"


@pytest.mark.parametrize("name", ["cifar_cnn", "digits_cnn", "iris_mlp", "diabetes_regression"])
def test_config_gradcheck_passes(name):
    from trainkit.testing.run import run_case
    from trainkit.testing.config_case import config_case

    case = config_case(CONFIGS / f"{name}.yaml")
    assert case.kind == "model" and name in case.name
    out = run_case(case)
    assert out.passed, out.message


def test_config_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """Break ReLU's backward; the whole-model check must notice."""
    from trainkit.testing.run import run_case
    from trainkit.testing.config_case import config_case
    from trainkit.nn import activation

    real = activation.F.relu
    monkeypatch.setattr(activation.F, "relu", lambda x: real(x) * 1.0 + (x * 0.01).detach())
    out = run_case(config_case(CONFIGS / "iris_mlp.yaml"))
    assert not out.passed
