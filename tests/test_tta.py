"""Test-time augmentation (``data.tta: hflip``): every evaluation averages the outputs for each image and its
mirror image: the val columns, the report, ``trainkit eval`` and ``trainkit predict``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainkit.autograd.function import no_grad
from trainkit.autograd.tensor import Tensor
from trainkit.cli import app
from trainkit.train.predict import load_run

CONFIG = """\
name: digits_tta
seed: 0
data:
  dataset: digits
  val_split: 0.1
  batch_size: 64
  tta: {tta}
model:
  layers:
    - conv2d: {{out_channels: 8, kernel_size: 3, padding: 1}}
    - relu
    - flatten
    - linear: {{out_features: 10}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.003}}
train:
  epochs: 2
  diagnostics: false
"""


def _train(tmp_path: Path, tta: str) -> Path:
    cfg = tmp_path / f"tta_{tta}.yaml"
    cfg.write_text(CONFIG.format(tta=tta))
    runs = tmp_path / "runs"
    r = CliRunner().invoke(app, ["train", str(cfg), "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    return max(runs.iterdir(), key=lambda p: p.stat().st_mtime)


def _manual(run_dir: Path, mirrored: bool):
    """Test accuracy and mean cross-entropy computed here from the loaded model and the test images."""
    loaded = load_run(run_dir, "best")
    from trainkit.data.build import build
    bundle = build(loaded.config.resolved.data, seed=loaded.config.resolved.seed)
    xs, ys = zip(*(bundle.eval_loader("test", batch_size=10_000)))
    x, y = xs[0].numpy(), ys[0].numpy()
    with no_grad():
        out = loaded.model(Tensor(x)).numpy().astype(np.float64)
        if mirrored:
            out = (out + loaded.model(Tensor(np.ascontiguousarray(x[..., ::-1]))).numpy()) / 2
    logp = out - out.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return float((out.argmax(1) == y).mean()), float(-logp[np.arange(len(y)), y].mean()), loaded, x


def test_hflip_report_eval_and_predict_use_the_mean_of_both_views(tmp_path):
    run = _train(tmp_path, "hflip")
    report = json.loads((run / "report.json").read_text())["test"]
    acc, loss, loaded, x = _manual(run, mirrored=True)
    plain_acc, plain_loss, _, _ = _manual(run, mirrored=False)
    assert report["accuracy"] == acc
    assert abs(report["loss"] - loss) < 1e-5
    assert abs(loss - plain_loss) > 1e-4  # the mirror view matters for this model: the test can tell them apart

    r = CliRunner().invoke(app, ["eval", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["test"]["accuracy"] == acc

    # predict: raw samples in, the averaged outputs out
    assert loaded.tta == "hflip"
    from trainkit.data.build import build
    bundle = build(loaded.config.resolved.data, seed=loaded.config.resolved.seed)
    raw = np.stack([bundle.test[i][0] for i in range(5)])
    xb = np.ascontiguousarray(loaded.transform.apply_batch(raw, None), dtype=np.float32)
    with no_grad():
        plain = loaded.model(Tensor(xb)).numpy()
        both = (plain + loaded.model(Tensor(np.ascontiguousarray(xb[..., ::-1]))).numpy()) / 2
    np.testing.assert_allclose(loaded.outputs(raw), both, rtol=1e-6, atol=1e-6)
    assert np.abs(both - plain).max() > 1e-4

    # export: the ONNX graph averages both views too (a Slice with step -1), and says so in its metadata
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'trainkit[onnx]')")
    onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install 'trainkit[onnx]')")
    r = CliRunner().invoke(app, ["export", str(run), "-o", str(run / "m.onnx")])
    assert r.exit_code == 0, r.output
    proto = onnx.load(str(run / "m.onnx"))
    assert {p.key: p.value for p in proto.metadata_props}["trainkit.tta"] == "hflip"
    got = ort.InferenceSession(str(run / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": xb})[0]
    np.testing.assert_allclose(got, both, rtol=1e-5, atol=1e-5)


def test_without_tta_the_report_is_the_plain_view(tmp_path):
    run = _train(tmp_path, "none")
    report = json.loads((run / "report.json").read_text())["test"]
    acc, loss, loaded, _ = _manual(run, mirrored=False)
    assert report["accuracy"] == acc and abs(report["loss"] - loss) < 1e-5
    assert loaded.tta == "none"


def test_hflip_on_data_that_is_not_images_is_refused_at_its_line(tmp_path):
    cfg = tmp_path / "iris_tta.yaml"
    cfg.write_text("name: x\ndata:\n  dataset: iris\n  tta: hflip\nmodel:\n  layers:\n"
                   "    - linear: {out_features: 3}\nloss: cross_entropy\noptimizer: {type: sgd, lr: 0.1}\n")
    r = CliRunner().invoke(app, ["train", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2
    assert f"{cfg}:4:" in r.output and "needs image data" in r.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    cfg.write_text(cfg.read_text().replace("tta: hflip", "tta: vflip"))
    r = CliRunner().invoke(app, ["train", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "hflip" in r.output


def test_tta_is_not_part_of_the_checkpoint_fingerprint():
    """A run trained before data.tta existed (its config.yaml has no such key) keeps its fingerprint, so its
    checkpoints still load; tta changes only evaluation, so turning it on keeps it too."""
    from trainkit.assemble.prepare import model_fingerprint
    base = {"name": "x", "data": {"dataset": "digits", "batch_size": 32}, "model": {"layers": ["flatten"]}}
    with_key = {**base, "data": {**base["data"], "tta": "none"}}
    on = {**base, "data": {**base["data"], "tta": "hflip"}}
    other = {**base, "data": {**base["data"], "batch_size": 64}}
    assert model_fingerprint(base) == model_fingerprint(with_key) == model_fingerprint(on)
    assert model_fingerprint(other) != model_fingerprint(base)
