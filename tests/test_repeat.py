"""``repeat:`` in model configs: N copies of a block, PyTorch's nesting of their keys, problems inside the block."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
from trainkit.assemble import build_model, build_model_and_plan
from trainkit.config import ConfigError, load_config
from trainkit.config.loader import loads_config


def _config(model: str, data: str = "data: {dataset: digits}\n"):
    return loads_config(data + textwrap.dedent(model) + "optimizer: {type: sgd, lr: 0.1}\n")


RESIDUAL = """\
model:
  graph:
    - {name: flat, type: flatten}
    - {name: stem, type: linear, out_features: 16}
    - name: blocks
      repeat: REPEAT
      graph:
        - {name: fc, type: linear, out_features: 16}
        - {name: act, type: tanh}
        - {name: res, type: add, inputs: [input, act]}
    - {name: head, type: linear, out_features: 10, inputs: blocks}
"""


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_a_repeated_block_computes_its_copies_in_turn(n, seed):
    trainkit.manual_seed(seed)
    model = build_model(_config(RESIDUAL.replace("REPEAT", str(n))), (1, 8, 8))
    keys = list(model.state_dict())
    assert keys == (["stem.weight", "stem.bias"] + [f"blocks.{k}.fc.{p}" for k in range(n) for p in ("weight", "bias")]
                    + ["head.weight", "head.bias"])
    x = trainkit.randn(3, 1, 8, 8)
    h = model.stem(model.flat(x))
    for k in range(n):
        h = h + model.blocks[k]["fc"](h).tanh()
    np.testing.assert_allclose(model(x).detach().numpy(), model.head(h).detach().numpy(), rtol=1e-6, atol=1e-6)
    weights = {id(model.blocks[k]["fc"].weight) for k in range(n)}
    assert len(weights) == n  # every copy has its own weights


def test_repeated_layer_and_nested_blocks_give_pytorchs_keys_and_load_into_torch():
    torch = pytest.importorskip("torch")
    cfg = _config("""\
        model:
          layers:
            - flatten
            - linear: {out_features: 8}
            - repeat: {times: 2, layers: [linear: {out_features: 8}, relu]}
            - repeat: {times: 3, layers: [{linear: {out_features: 8}}]}
            - linear: {out_features: 10}
        """)
    model = build_model(cfg, (1, 8, 8))
    ref = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 8),
        torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()) for _ in range(2)]),
        torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(3)]), torch.nn.Linear(8, 10)).double()
    state = {k: torch.from_numpy(v.numpy().astype(np.float64)) for k, v in model.state_dict().items()}
    assert list(state) == list(ref.state_dict())
    ref.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8))
    np.testing.assert_allclose(model.double()(trainkit.tensor(x)).detach().numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10)


def test_a_repeated_recurrent_layer_s_outputs_are_selectable_after_the_repeat():
    cfg = _config("""\
        model:
          graph:
            - {name: rnns, repeat: 3, type: gru, hidden_size: 3}
            - {name: head, type: linear, out_features: 10, inputs: rnns.h_n}
        """)
    model, plan = build_model_and_plan(cfg, (5, 4))
    assert plan.node("head").inputs == ["rnns.2.h_n"] and plan.shape_of("rnns.2.h_n") == (3,)
    assert plan.node("rnns.1").inputs == ["rnns.0"]
    x = trainkit.randn(2, 5, 4)
    h = x
    for k in range(3):
        h, last = model.rnns[k](h)
    np.testing.assert_allclose(model(x).detach().numpy(), model.head(last[-1]).detach().numpy(), rtol=1e-6)


def test_block_reading_an_outer_node_keeps_it_in_use():
    cfg = _config("""\
        model:
          graph:
            - {name: flat, type: flatten}
            - {name: ctx, type: linear, out_features: 6}
            - {name: stem, type: linear, out_features: 6, inputs: flat}
            - name: mix
              repeat: 2
              inputs: stem
              graph:
                - {name: both, type: add, inputs: [input, ctx]}
                - {name: fc, type: linear, out_features: 6}
            - {name: head, type: linear, out_features: 10}
        """)
    model, plan = build_model_and_plan(cfg, (1, 8, 8))
    assert plan.node("mix.1.both").inputs == ["mix.0.fc", "ctx"] and plan.node("mix.0.both").inputs == ["stem", "ctx"]
    x = trainkit.randn(2, 1, 8, 8)
    flat = model.flat(x)
    ctx, h = model.ctx(flat), model.stem(flat)
    for k in range(2):
        h = model.mix[k]["fc"](h + ctx)
    np.testing.assert_allclose(model(x).detach().numpy(), model.head(h).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("block,where,words", [
    # did-you-mean for a layer type inside the block, at its line
    ("- {name: fc, type: linaer, out_features: 16}\n- {name: res, type: add, inputs: [input, fc]}",
     "9:22: model.graph.2.graph.0.type", "did you mean 'linear'?"),
    ("- {name: fc, type: linear, out_fetures: 16}\n- {name: res, type: add, inputs: [input, fc]}",
     "9:36: model.graph.2.graph.0.out_fetures", "did you mean 'out_features'?"),
    ("- {name: fc, type: linear, out_features: 16}\n- {name: res, type: add, inputs: [input, fcc]}",
     "10:34: model.graph.2.graph.1.inputs", "unknown input 'fcc'; did you mean 'fc'?"),
    ("- {name: fc, type: linear, out_features: 16}\n- {name: dead, type: relu}\n"
     "- {name: res, type: add, inputs: [input, fc]}", "10:12: model.graph.2.graph.1.name", "'dead' is never used"),
    # a shape problem inside the block names the copy
    ("- {name: fc, type: linear, out_features: 8}\n- {name: res, type: add, inputs: [input, fc]}",
     "10:34: model.graph.2.graph.1.inputs", "blocks.0.res: add needs inputs of equal shape, found 16, 8"),
])
def test_problems_inside_a_repeated_block_point_inside_it(block, where, words):
    text = ("data: {dataset: digits}\nmodel:\n  graph:\n    - {name: flat, type: flatten}\n"
            "    - {name: stem, type: linear, out_features: 16}\n    - name: blocks\n      repeat: 3\n"
            "      graph:\n" + textwrap.indent(block, "        ") + "\n"
            "    - {name: head, type: linear, out_features: 10}\noptimizer: {type: sgd, lr: 0.1}\n")
    with pytest.raises(ConfigError) as e:
        build_model(loads_config(text, "c.yaml"), (1, 8, 8))
    msg = str(e.value)
    assert f"c.yaml:{where}: " in msg and words in msg, msg
    assert msg.count(words) == 1  # once, not once per copy


@pytest.mark.parametrize("node,words", [
    ("{name: r, repeat: 0, type: relu}", "model.graph.1.repeat: expected the number of copies, an integer from 1"),
    ("{name: r, repeat: 100000000, type: relu}", "an integer from 1 to 1024, found 100000000"),
    ("{name: r, repeat: 2, type: relu, graph: [{name: a, type: relu}]}", "either a block"),
    ("{name: r, repeat: 2}", "needs 'graph'"),
    ("{name: r, repeat: 2, inputs: [flat, flat], type: relu}", "a repeat node reads one input, found 2"),
    ("{name: r, repeat: 2, graph: [{name: a, type: relu}], output: b}", "model.graph.1.output: output must name a node"),
    ("{name: r, repeat: 2, graph: [{name: a, type: relu}], outptu: a}", "unknown key 'outptu'; did you mean 'output'?"),
])
def test_malformed_repeat_nodes_are_refused(node, words):
    with pytest.raises(ConfigError) as e:
        _config(f"model:\n  graph:\n    - {{name: flat, type: flatten}}\n    - {node}\n"
                "    - {name: head, type: linear, out_features: 10}\n")
    assert words in str(e.value), str(e.value)


def test_layers_form_repeat_is_checked():
    with pytest.raises(ConfigError, match=r"model.layers.1.repeat: repeat is missing required key 'layers'"):
        _config("model:\n  layers:\n    - flatten\n    - repeat: {times: 2}\n")
    with pytest.raises(ConfigError, match=r"model.layers.1.repeat.layers.0.linaer: unknown layer type"):
        _config("model:\n  layers:\n    - flatten\n    - repeat: {times: 2, layers: [linaer: {out_features: 3}]}\n")


def test_custom_layer_files_in_a_block_are_made_absolute_once(tmp_path):
    from trainkit.assemble import absolutize_layer_paths

    (tmp_path / "mine.py").write_text("import trainkit.nn as nn\nclass Twice(nn.Module):\n"
                                      "    def forward(self, x):\n        return x * 2\n")
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: digits}\nmodel:\n  layers:\n    - flatten\n"
                    "    - repeat: {times: 3, layers: [./mine.py:Twice, {linear: {out_features: 64}}]}\n"
                    "    - linear: {out_features: 10}\noptimizer: {type: sgd, lr: 0.1}\n")
    cfg = load_config(path)
    data = absolutize_layer_paths(cfg)
    assert data["model"]["layers"][1]["repeat"]["layers"][0] == f"{(tmp_path / 'mine.py').resolve()}:Twice"
    model = build_model(cfg, (1, 8, 8))
    assert [k for k in model.state_dict()][:2] == ["1.0.1.weight", "1.0.1.bias"]


def test_the_model_examples_in_docs_config_md_build():
    """The graph examples of docs/config.md for several outputs and repeat: build them, check their keys."""
    import re
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "lstm.h_n" in b or "repeat: 4" in b]
    assert len(blocks) == 2
    models = []
    for block in blocks:
        cfg = loads_config("data: {dataset: tinyshakespeare, block_size: 64}\n" + block
                           + "optimizer: {type: sgd, lr: 0.1}\n")
        models.append(build_model_and_plan(cfg, (64,)))
    (multi, multi_plan), (gpt, gpt_plan) = models
    assert multi_plan.node("summary").inputs == ["lstm.h_n"] and multi_plan.output_shape == (8,)
    assert "blocks.3.attn.in_proj_weight" in gpt.state_dict() and gpt_plan.output_shape == (64, 65)
    assert gpt(trainkit.tensor(np.zeros((2, 64), dtype=np.int64))).shape == (2, 64, 65)
