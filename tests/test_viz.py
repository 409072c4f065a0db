"""``trainkit.viz.make_dot`` and ``trainkit graph``: the DOT's nodes, edges, labels and clusters, parsed.

Checks run with and without Graphviz's ``dot`` (PATH emptied with monkeypatch, or a subprocess
with a PATH that holds no ``dot``); rendering itself is checked where Graphviz is installed.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import trainkit as tk
import trainkit.nn as nn
from trainkit.viz import Dot, GraphvizNotFound, ModuleTrace, make_dot

sys.path.insert(0, str(Path(__file__).parent))
from clitools import tk as trainkit_cli  # noqa: E402
from dotparse import parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def lenet():
    return nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def lenet_step(trace: bool = True, **kw):
    tk.manual_seed(0)
    model, loss_fn = lenet(), nn.CrossEntropyLoss()
    x = tk.randn(2, 3, 32, 32)
    with ModuleTrace(model, names={"loss": loss_fn}) as tr:
        loss = loss_fn(model(x), tk.tensor([1, 7]))
    params = dict(model.named_parameters())
    dot = make_dot(loss, params={**params, "input": x}, trace=tr if trace else None, **kw)
    return model, loss, parse(dot.source)


# forward op, its layer, output shape: what LeNet records for a batch of 2
LENET_OPS = [
    ("ConvolutionBackward0", "0 · Conv2d", "(2, 6, 28, 28) float32"),
    ("ReluBackward0", "1 · ReLU", "(2, 6, 28, 28) float32"),
    ("MaxPool2DWithIndicesBackward0", "2 · MaxPool2d", "(2, 6, 14, 14) float32"),
    ("ConvolutionBackward0", "3 · Conv2d", "(2, 16, 10, 10) float32"),
    ("ReluBackward0", "4 · ReLU", "(2, 16, 10, 10) float32"),
    ("MaxPool2DWithIndicesBackward0", "5 · MaxPool2d", "(2, 16, 5, 5) float32"),
    ("ViewBackward0", "6 · Flatten", "(2, 400) float32"),
    ("LinearBackward0", "7 · Linear", "(2, 120) float32"),
    ("ReluBackward0", "8 · ReLU", "(2, 120) float32"),
    ("LinearBackward0", "9 · Linear", "(2, 84) float32"),
    ("ReluBackward0", "10 · ReLU", "(2, 84) float32"),
    ("LinearBackward0", "11 · Linear", "(2, 10) float32"),
    ("CrossEntropyBackward0", "loss · CrossEntropyLoss", "() float32"),
]


def _chain(g):
    """The op nodes from the input to the output, following the single op-to-op edge out of each."""
    ops = {k for k, n in g.nodes.items() if n["fillcolor"] == "lightgrey"}
    start = [k for k in ops if not any(s in ops for s in g.into(k))]
    assert len(start) == 1
    chain = start
    while True:
        nxt = [d for d in g.out(chain[-1]) if d in ops]
        if not nxt:
            return chain
        assert len(nxt) == 1
        chain += nxt


def test_lenet_step_names_every_parameter_and_op_with_shapes():
    model, _, g = lenet_step()
    chain = _chain(g)
    assert [tuple(g.nodes[k]["lines"][:3]) for k in chain] == LENET_OPS
    # every parameter is one light-blue node, named and shaped, feeding the op of its layer
    params = {k: n for k, n in g.nodes.items() if n["fillcolor"] == "lightblue"}
    assert len(params) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        shape = "(" + ", ".join(map(str, p.shape)) + ("," if p.ndim == 1 else "") + ")"
        (key,) = [k for k, n in params.items() if n["lines"] == [name, f"{shape} float32"]]
        (consumer,) = g.out(key)
        assert g.nodes[consumer]["lines"][1].startswith(name.split(".")[0] + " · ")
    # the input needs no gradient: dashed node and edge
    (inp,) = [k for k, n in g.nodes.items() if n["lines"][0] == "input"]
    assert g.nodes[inp]["lines"][1:] == ["(2, 3, 32, 32) float32", "no grad"]
    assert [e[2].get("style") for e in g.edges if e[0] == inp] == ["dashed"]
    assert all(e[2].get("style") != "dashed" for e in g.edges if e[0] != inp)
    (out,) = [k for k, n in g.nodes.items() if n["fillcolor"] == "darkolivegreen1"]
    assert g.into(out) == [chain[-1]]
    # saved memory: the first convolution keeps its columns (2 x 75 x 784 float32 at least)
    saved = g.nodes[chain[0]]["lines"][3]
    assert saved.startswith("saved ") and float(saved.split()[1]) >= 459 and saved.endswith("KiB")
    assert len(g.nodes) == len(LENET_OPS) + len(params) + 2 and len(g.edges) == len(LENET_OPS) - 1 + len(params) + 2


def test_make_dot_without_trace_matches_torchviz_contents():
    _, _, g = lenet_step(trace=False)
    assert [g.nodes[k]["lines"][0] for k in _chain(g)] == [t for t, _, _ in LENET_OPS]
    assert [g.nodes[k]["lines"][1] for k in _chain(g)] == [s for _, _, s in LENET_OPS]
    assert not g.clusters


def test_shared_parameter_and_fan_out_are_single_nodes():
    lin = nn.Linear(4, 4)
    x = tk.randn(3, 4, requires_grad=True)
    h = lin(x)
    y = lin(h.tanh()) + h  # the layer is used twice, h feeds two consumers
    g = parse(make_dot(y.sum(), params={"lin.weight": lin.weight, "lin.bias": lin.bias, "x": x}).source)
    (w,) = g.titled("lin.weight")
    assert sorted(g.nodes[d]["lines"][0] for d in g.out(w)) == ["LinearBackward0", "LinearBackward0"]
    (xk,) = g.titled("x")
    assert g.nodes[xk]["fillcolor"] == "lightblue"  # requires grad: gets a .grad
    (first,) = g.out(xk)
    consumers = sorted(g.nodes[d]["lines"][0] for d in g.out(first))
    assert consumers == ["AddBackward0", "TanhBackward0"]


class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(w, 2 * w), nn.GELU(), nn.Linear(2 * w, w)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))


class Tower(nn.Module):
    def __init__(self, blocks=12, w=8):
        super().__init__()
        self.emb = nn.Linear(4, w)
        self.h = nn.Sequential(*[Block(w) for _ in range(blocks)])
        self.head = nn.Linear(w, 3)

    def forward(self, x):
        return self.head(self.h(self.emb(x)))


def tower_graph(**kw):
    tk.manual_seed(0)
    m = Tower()
    with ModuleTrace(m) as tr:
        out = m(tk.randn(2, 4)).sum()
    return m, parse(make_dot(out, params=dict(m.named_parameters()), trace=tr, **kw).source)


def test_twelve_identical_blocks_collapse_into_one_cluster_with_a_count():
    m, g = tower_graph()
    (run,) = [c for c, label in g.clusters.items() if "×" in label]
    assert g.clusters[run] == "h.0 … h.11 · Block ×12"
    inside = [k for k, n in g.nodes.items() if n["cluster"] == run]
    titles = sorted(g.nodes[k]["lines"][0] for k in inside)
    assert titles == sorted(["LinearBackward0", "GeluBackward0", "LinearBackward0", "AddBackward0",
                             "h.{0..11}.fc1.weight", "h.{0..11}.fc1.bias", "h.{0..11}.fc2.weight",
                             "h.{0..11}.fc2.bias"])
    (add,) = [k for k in inside if g.nodes[k]["lines"][0] == "AddBackward0"]
    (head,) = [k for k, n in g.nodes.items() if n["lines"][1:2] == ["head · Linear"]]
    assert add in g.into(head)  # the run's output feeds the head
    full = tower_graph(collapse=False)[1]

    def ops(graph):
        return [k for k, n in graph.nodes.items() if n["fillcolor"] == "lightgrey"]

    assert len(ops(full)) == 12 * 4 + 3 and len(ops(g)) == 4 + 3


def test_depth_boxes_hold_their_ops_and_parameters():
    m, g = tower_graph(depth=1)
    boxes = {n["lines"][0]: n for n in g.nodes.values() if n.get("shape") == "box3d"}
    assert sorted(boxes) == ["emb", "h", "head"]
    assert boxes["h"]["lines"][1:4] == ["Sequential", "(2, 8) float32", "48 ops"]
    counted = sum(int(n["lines"][4].split()[0].replace(",", "")) for n in boxes.values())
    assert counted == sum(p.numel() for p in m.parameters())
    assert not [n for n in g.nodes.values() if n["fillcolor"] == "lightblue"]  # all parameters inside boxes


def test_backward_graph_mirrors_the_forward_one():
    model, loss, g = lenet_step(backward=True)
    assert {g.cluster_parent[c] for c in g.clusters} <= {None, "cluster_forward"}
    back = {k: n for k, n in g.nodes.items() if n["cluster"] == "cluster_backward"}
    acc = [n for n in back.values() if n["lines"][0] == "AccumulateGrad"]
    assert sorted(n["lines"][1].split()[0] for n in acc) == sorted(f"{name}.grad" for name, _ in
                                                                   model.named_parameters())
    steps = sorted(int(n["lines"][0].split()[0][1:]) for n in back.values() if n["lines"][0].startswith("#"))
    assert steps == list(range(1, len(LENET_OPS) + 1))  # every op runs once, numbered in execution order
    (seed,) = [k for k, n in back.items() if n["lines"][0] == "backward()"]
    (first,) = g.out(seed)
    assert back[first]["lines"][0] == "#1 CrossEntropyBackward0"
    # forward nodes are titled with the forward operation; each solid op->op edge is mirrored
    fwd = {k: n for k, n in g.nodes.items() if n["cluster"] == "cluster_forward" and n["fillcolor"] == "lightgrey"}
    assert sorted({n["lines"][0] for n in fwd.values()}) == ["Convolution", "CrossEntropy", "Linear",
                                                            "MaxPool2DWithIndices", "Relu", "View"]
    for s, d, _ in g.edges:
        if s in fwd and d in fwd:
            assert f"b_{s}" in g.out(f"b_{d}")


def test_show_saved_and_show_attrs():
    _, _, g = lenet_step(show_saved=True, show_attrs=True)
    saved = [k for k, n in g.nodes.items() if n["fillcolor"] == "orange"]
    assert saved and all(e[2].get("style") == "dotted" for e in g.edges if e[0] in saved)
    conv = g.nodes[_chain(g)[0]]
    assert "stride: (1, 1)" in conv["lines"] and "padding: (0, 0)" in conv["lines"]


def test_backward_hook_nodes_are_not_drawn_and_freed_graph_is_an_error():
    lin = nn.Linear(3, 2)
    lin.register_full_backward_hook(lambda m, gi, go: None)
    x = tk.randn(4, 3, requires_grad=True)
    loss = lin(x).sum()
    g = parse(make_dot(loss).source)
    assert sorted(n["lines"][0] for n in g.nodes.values() if n["fillcolor"] == "lightgrey") == [
        "LinearBackward0", "SumBackward0"]
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        make_dot(loss)
    with pytest.raises(ValueError, match="depth needs a trace"):
        make_dot(lin(x), depth=1)


def test_render_without_graphviz_keeps_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    dot = make_dot(nn.Linear(2, 1)(tk.ones(1, 2)).sum())
    with pytest.raises(GraphvizNotFound, match="apt install graphviz"):
        dot.render(tmp_path / "g", format="svg")
    assert parse((tmp_path / "g").read_text()).nodes
    assert not (tmp_path / "g.svg").exists()


@needs_dot
def test_render_svg_and_png(tmp_path):
    _, loss, _ = lenet_step()
    dot = make_dot(loss)
    svg = dot.render("step", directory=tmp_path, format="svg")
    assert Path(svg) == tmp_path / "step.svg" and "<svg" in Path(svg).read_text()
    png = dot.render(tmp_path / "step2.dot", outfile=tmp_path / "p.png", cleanup=True)
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "step2.dot").exists()
    assert isinstance(dot, Dot) and dot.pipe("svg").startswith(b"<?xml")


# ----------------------------------------------------------------------------- the CLI
def _cli(tmp: Path, *args, path: str | None = None):
    return trainkit_cli(tmp, "graph", *args, env=None if path is None else {"PATH": path}, timeout=300)


def test_cli_graph_of_the_resnet_shows_the_residual_fan_out(tmp_path):
    r = _cli(tmp_path, ROOT / "configs" / "cifar_resnet.yaml", "-o", "g.dot")
    assert r.returncode == 0, r.stderr
    g = parse((tmp_path / "g.dot").read_text())
    adds = g.titled("AddBackward0")
    assert len(adds) == 2
    for add in adds:
        # the block's input: one node whose two consumers (the block's convolutions, the shortcut) reconverge here
        fan = [k for k in g.nodes if len(g.out(k)) == 2 and all(d == add or add in g.descendants(d) for d in g.out(k))
               and g.nodes[k]["fillcolor"] == "lightgrey"]
        assert fan, f"no fan-out into {g.nodes[add]['lines']}"
    (b1,) = [k for k in adds if g.nodes[k]["lines"][1] == "b1_add · Add"]
    sources = sorted(g.nodes[s]["lines"][1] for s in g.into(b1))
    assert sources == ["b1_bn2 · BatchNorm2d", "stem_pool · MaxPool2d"]
    assert g.nodes[b1]["lines"][2] == "(2, 16, 16, 16) float32"


def test_cli_graph_without_graphviz_writes_dot_and_exits_2(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    r = _cli(tmp_path, ROOT / "configs" / "digits_cnn.yaml", "--svg", "out/g.svg", path=str(empty))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "apt install graphviz" in r.stderr and "out/g.dot" in r.stderr
    assert parse((tmp_path / "out" / "g.dot").read_text()).titled("ConvolutionBackward0")
    assert not (tmp_path / "out" / "g.svg").exists()


def test_cli_graph_stdout_depth_backward_and_bad_config(tmp_path):
    r = _cli(tmp_path, ROOT / "configs" / "cifar_resnet.yaml", "--depth", "1", "--backward")
    assert r.returncode == 0, r.stderr
    g = parse(r.stdout)
    boxes = [n["lines"][0] for n in g.nodes.values() if n.get("shape") == "box3d"]
    assert len(boxes) == 22 and not g.titled("AccumulateGrad")  # every layer a box, its parameters inside
    back = [n["lines"][0] for n in g.nodes.values() if n["cluster"] == "cluster_backward"]
    assert sorted(t.split(" ", 1)[1] for t in back if t.endswith(" backward")) == sorted(f"{b} backward"
                                                                                        for b in boxes)
    (bad := tmp_path / "bad.yaml").write_text("model: {layers: [{linear: {out_featurs: 3}}]}\n")
    r = _cli(tmp_path, bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bad.yaml" in r.stderr
    r = _cli(tmp_path, ROOT / "configs" / "iris_mlp.yaml", "--depth", "-1")
    assert r.returncode == 2 and "--depth must be 0 or more" in r.stderr


@needs_dot
def test_cli_graph_renders_svg_and_png(tmp_path):
    r = _cli(tmp_path, ROOT / "configs" / "cifar_resnet.yaml", "--svg", "g.svg", "--png", "g.png", "-o", "x.dot")
    assert r.returncode == 0, r.stderr
    assert "<svg" in (tmp_path / "g.svg").read_text() and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert parse((tmp_path / "x.dot").read_text()).titled("AddBackward0")


# ----------------------------------------------------------------------------- random graphs
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_hooks import _apply, programs  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(program=programs(), seed=st.integers(0, 100))
def test_dot_has_one_node_per_graph_node_and_one_edge_per_input(program, seed):
    """On random graphs (fan-out, reused leaves), the DOT agrees with ``next_functions``."""
    n_leaves, steps, extra = program
    rng = np.random.default_rng(seed)
    values = [tk.tensor(rng.uniform(-1, 1, (3, 3)), requires_grad=True) for _ in range(n_leaves)]
    for op, i, j in steps:
        values.append(_apply(tk, op, values[i], values[j]))
    out = values[-1].sum()
    for k in extra:
        out = out + (values[k] * values[k]).sum()
    names = {f"x{i}": v for i, v in enumerate(values[:n_leaves])}
    g = parse(make_dot(out, params=names).source)

    expected, stack, seen = [], [out.grad_fn], set()
    while stack:  # the graph as torch shows it: node name and its sources' names (leaves by param name)
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        sources = set()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            if hasattr(nxt, "variable"):
                sources.add(next(n for n, v in names.items() if v is nxt.variable))
            else:
                sources.add(nxt.name())
                stack.append(nxt)
        expected.append((node.name(), tuple(sorted(sources))))
    drawn = [(n["lines"][0], tuple(sorted({g.nodes[s]["lines"][0] for s in g.into(k)})))
             for k, n in g.nodes.items() if n["fillcolor"] == "lightgrey"]
    assert sorted(drawn) == sorted(expected)
    used = {s for _, srcs in expected for s in srcs if s in names}
    assert sorted(n["lines"][0] for n in g.nodes.values() if n["fillcolor"] == "lightblue") == sorted(used)
