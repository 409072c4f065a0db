"""Every shipped config trains for one short epoch, reports, evaluates and reloads into torch (issue 12).

``configs/cifar_resnet.yaml`` once trained 10 epochs and then failed to load its own best checkpoint for
the report (a 0-d batch-norm buffer saved as shape (1,)); nothing ran a shipped config to its end. Here
each one runs for one epoch on the first 100 samples of each part, a few hundred in all (``data.limit``,
the documented key for smoke runs), CIFAR-10 and MNIST on tiny files written in their real formats (no
network, no ../shared).
The test checks status ``completed``, the report and plots, ``trainkit eval`` agreeing with the report,
and that the best checkpoint loads with ``safetensors.torch`` + ``load_state_dict(strict=True)`` into the
equivalent ``torch.nn`` model, which then computes the same outputs as trainkit's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clitools import env_for
from fakedata import write_cifar10, write_mnist
from imagedata import write_shapes
from fork_runner import ForkRunner

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A fork server and a data folder with tiny CIFAR-10 and MNIST files and a two-class image folder."""
    tmp = tmp_path_factory.mktemp("smoke")
    root = tmp / "data"
    write_cifar10(root, per_batch=40, test=40)
    write_mnist(root, n_train=200, n_test=40)
    write_shapes(root / "photos", per_class=30, classes=("circle", "square"))
    runner = ForkRunner(env_for(tmp))
    yield runner, tmp, root
    runner.close()


def _dataset(cfg: Path) -> str:
    from trainkit.config import load_config
    return load_config(cfg).resolved.data.dataset


# Layers whose torch.nn class takes the same arguments and returns one tensor: a config built only from these
# reloads into plain torch.nn. Sequence models (token-id inputs, tuple outputs, trainkit's own embedding and
# patch layers) are checked against their torch twins in their own tests (test_nn_rnn, test_embedding_position...).
SEQUENCE_LAYERS = {"RNN", "LSTM", "GRU", "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
                   "TransformerEncoderStack", "TransformerDecoderStack", "Embedding"}
RELOADED = []  # configs whose best checkpoint was loaded into torch


def has_torch_twin(config, input_shape) -> bool:
    import torch
    from trainkit.assemble import plan_model

    return all(n.kind == "merge" or n.cls.__name__ == "GlobalAvgPool2d"
               or (hasattr(torch.nn, n.cls.__name__) and n.cls.__name__ not in SEQUENCE_LAYERS)
               for n in plan_model(config, input_shape).nodes)


def torch_model(config, input_shape):
    """The torch.nn model equivalent to a trainkit config: same classes, arguments and state_dict keys."""
    import torch
    from trainkit.assemble import plan_model

    plan = plan_model(config, input_shape)

    def module_of(node):
        name = node.cls.__name__
        if name == "GlobalAvgPool2d":  # trainkit's global_avgpool = AdaptiveAvgPool2d(1) + flatten
            return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        if node.kind == "merge":
            return None
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in node.kwargs.items()}
        return getattr(torch.nn, name)(**kwargs)

    if plan.sequential:
        return torch.nn.Sequential(*[module_of(n) for n in plan.nodes])

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.order = [(n.name, n.inputs, n.cls.__name__) for n in plan.nodes]
            for n in plan.nodes:
                m = module_of(n)
                if m is not None:
                    setattr(self, n.name, m)
            self.output = plan.output

        def forward(self, x):
            values = {"input": x}
            for name, inputs, cls in self.order:
                args = [values[i] for i in inputs]
                if cls == "Add":
                    values[name] = sum(args[1:], args[0])
                else:
                    values[name] = getattr(self, name)(*args)
            return values[self.output]

    return Graph()


def smoke_train(smoke, cfg):
    """One short epoch of ``cfg`` on the first 100 samples of each part, into ``tmp/<config name>``."""
    runner, tmp, root = smoke
    run = tmp / cfg.stem
    args = ["train", cfg, "--run-dir", run, "-q", "--set", "train.epochs=1", "--set", "data.limit=100"]
    if _dataset(cfg) in ("cifar10", "mnist"):
        args += ["--set", f"data.root={root}", "--set", "data.download=false"]
    if _dataset(cfg) == "image_folder":  # the example's layout, with two classes as its head expects
        args += ["--set", f"data.root={root / 'photos'}"]
    env = {k: v for k, v in env_for(tmp).items() if k.startswith("TRAINKIT")}
    return runner.run(args, tmp, env=env)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_trains_reports_evaluates_and_reloads_into_torch(smoke, cfg):
    import safetensors.torch
    import torch
    from trainkit import Tensor, no_grad
    from trainkit.assemble import build_model
    from trainkit.config import load_config
    from trainkit.train.checkpoint import load_checkpoint

    runner, tmp, root = smoke
    run = tmp / cfg.stem
    env = {k: v for k, v in env_for(tmp).items() if k.startswith("TRAINKIT")}
    r = smoke_train(smoke, cfg)
    assert r["rc"] == 0, r["stdout"][-3000:] + r["stderr"][-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 1
    per_sample = info["data"]["input_shape"][0] if info["data"].get("units") == "tokens" else 1
    assert max(info["data"]["train"], info["data"]["val"], info["data"]["test"]) <= 100 * per_sample + 1
    report = json.loads((run / "report.json").read_text())
    assert (run / "report.md").read_text().startswith("# Report")
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    if report["task"] == "classification":
        assert (run / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    r = runner.run(["eval", run, "--json"], tmp, env=env)
    assert r["rc"] == 0, r["stderr"]
    evaluated = json.loads(r["stdout"])
    assert evaluated[evaluated["split"]] == report[report["split"]]

    # The best checkpoint in torch: strict load, then the same outputs as trainkit's model.
    config = load_config(run / "config.yaml")
    shape = tuple(info["data"]["input_shape"])
    if not has_torch_twin(config, shape):
        assert report["task"] == "language_model" or cfg.stem == "cifar_vit", cfg.stem
        return
    RELOADED.append(cfg.stem)
    weights = safetensors.torch.load_file(str(run / "checkpoints" / "best" / "model.safetensors"))
    net = torch_model(config, shape)
    net.load_state_dict(weights, strict=True)
    net.eval()
    ours = build_model(config, shape, num_classes=info["data"]["num_classes"])
    ours.load_state_dict(load_checkpoint(run / "checkpoints" / "best")[0])
    ours.eval()
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    with no_grad():
        got = ours(Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_the_plain_configs_were_reloaded_into_torch():
    """Runs after the smoke runs: every conv/MLP config took the torch path above (none skipped by mistake)."""
    plain = [c.stem for c in CONFIGS if c.stem not in ("shakespeare_char_gpt", "shakespeare_char_lstm", "cifar_vit")]
    if len(RELOADED) != len(plain):
        pytest.skip("run together with the smoke runs")  # -k selections
    assert sorted(RELOADED) == sorted(plain)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_exports_to_onnx_matching_eval(smoke, cfg):
    """Issue 16: `trainkit export` of each smoke-trained run; onnxruntime on the whole eval split gives
    `trainkit eval`'s logits within 1e-4 and the same accuracy, at batch 1, the loader's batches and one
    large batch; the file passes onnx.checker.check_model(full_check=True)."""
    onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install 'trainkit[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'trainkit[onnx]')")
    from trainkit import no_grad
    from trainkit.assemble.prepare import prepare
    from trainkit.train.evaluate import with_tta
    from trainkit.train.session import _load_weights

    runner, tmp, root = smoke
    run = tmp / cfg.stem
    if not (run / "report.json").exists():  # run alone or shuffled: train it here (the same short run)
        r = smoke_train(smoke, cfg)
        assert r["rc"] == 0, r["stdout"][-3000:] + r["stderr"][-3000:]
    env = {k: v for k, v in env_for(tmp).items() if k.startswith("TRAINKIT")}
    r = runner.run(["export", run, "-o", run / "exported.onnx"], tmp, env=env)
    assert r["rc"] == 0, r["stdout"][-3000:] + r["stderr"][-3000:]
    proto = onnx.load(str(run / "exported.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    sess = ort.InferenceSession(str(run / "exported.onnx"), providers=["CPUExecutionProvider"])

    r = runner.run(["eval", run, "--json"], tmp, env=env)
    evaluated = json.loads(r["stdout"])
    split = evaluated["split"]
    prep = prepare(run / "config.yaml", with_optimizer=False)
    _load_weights(run, prep, "best")
    prep.model.eval()
    xs, ys, want, got = [], [], [], []
    for x, y in prep.bundle.eval_loader(split):
        with no_grad():  # a data.tta run's graph averages the views as trainkit eval does
            want.append(with_tta(prep.model, prep.bundle.tta)(x).numpy() if hasattr(prep.bundle, "tta")
                        else prep.model(x).numpy())
        got.append(sess.run(None, {"input": x.numpy()})[0])
        xs.append(x.numpy())
        ys.append(y.numpy())
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=1e-4, atol=1e-4)
    # one large batch of every eval sample shaped like the first (a stream's last window is shorter)
    same = [k for k, a in enumerate(xs) if a.shape[1:] == xs[0].shape[1:]]
    everything = np.concatenate([xs[k] for k in same])
    first = np.concatenate([want[k] for k in same])
    big = np.concatenate([everything] * max(1, -(-256 // len(everything))))[:max(256, len(everything))]
    np.testing.assert_allclose(sess.run(None, {"input": big})[0][:len(first)], first, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sess.run(None, {"input": everything[:1]})[0], first[:1], rtol=1e-4, atol=1e-4)
    want = np.concatenate([w.reshape(-1, w.shape[-1]) if w.ndim > 2 else w for w in want])
    got = np.concatenate([w.reshape(-1, w.shape[-1]) if w.ndim > 2 else w for w in got])
    ys = [y.reshape(-1) for y in ys]
    if prep.bundle.task in ("classification", "language_model"):
        target = np.concatenate(ys).reshape(-1)
        acc = lambda logits: float(np.mean(logits.reshape(len(target), -1).argmax(-1) == target))  # noqa: E731
        assert acc(got) == acc(want)
        reported = evaluated[split].get("accuracy")
        if reported is not None:
            assert acc(got) == pytest.approx(reported, abs=1e-9)
