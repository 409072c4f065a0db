"""Programs written as PyTorch's official examples are (tests/examples/, see its README) run on trainkit.

Each runs as a script (``runpy`` with ``__name__ == '__main__'`` and its own ``sys.argv``) in a working
directory whose ``../data`` (or ``./data``) holds tiny generated MNIST files, with its ``--dry-run`` or
smallest settings; the test checks what it prints and what it saves. The programs for the sequence
layers skip only while ``trainkit.nn`` lacks the classes they use (an AttributeError naming them).
"""
from __future__ import annotations

import ast
import math
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainkit
import trainkit.nn as nn
from fakedata import write_mnist

EXAMPLES = Path(__file__).resolve().parent / "examples"
PROGRAMS = sorted(p for p in EXAMPLES.rglob("*.py"))
N_TRAIN, N_TEST = 64, 40


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """``tmp/work`` as the current directory, MNIST in ``tmp/data`` (the examples' ``../data``) and ``./data``."""
    write_mnist(tmp_path / "data", N_TRAIN, N_TEST, seed=3)
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(tmp_path / "data", target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    return work


def run_program(path: Path, *argv: str, monkeypatch) -> dict:
    """Run ``path`` as ``python path argv...`` would, in this process; return its globals."""
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    monkeypatch.syspath_prepend(str(path.parent))
    return runpy.run_path(str(path), run_name="__main__")


def run_or_skip_missing(run, *classes: str):
    """``run()``, skipped only when it fails on ``trainkit.nn`` lacking one of ``classes``."""
    try:
        return run()
    except AttributeError as err:
        missing = [c for c in classes if not hasattr(nn, c)]
        if any(re.search(rf"module 'trainkit\.nn' has no attribute '{c}'", str(err)) for c in missing):
            pytest.skip(f"trainkit.nn has no {', '.join(missing)} yet (the sequence-layers branch adds them)")
        raise


def test_programs_name_trainkit_only_in_their_imports():
    """'Unchanged except for the imports': no statement but an import mentions trainkit."""
    assert len(PROGRAMS) >= 9
    for path in PROGRAMS:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Name) and node.id == "trainkit":
                pytest.fail(f"{path.name}:{node.lineno} uses the name trainkit outside an import")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "trainkit" in node.value \
                    and not _is_docstring(tree, node):
                pytest.fail(f"{path.name}:{node.lineno} has 'trainkit' in a string")


def _is_docstring(tree, node) -> bool:
    return any(isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None
               and n.body and getattr(n.body[0], "value", None) is node for n in ast.walk(tree))


def _test_lines(out: str) -> list[tuple[float, int, int]]:
    return [(float(a), int(b), int(c)) for a, b, c in
            re.findall(r"Test set: Average loss: ([\d.]+), Accuracy: (\d+)/(\d+)", out)]


def test_mnist_cnn_adadelta_steplr(workdir, monkeypatch, capsys):
    g = run_program(EXAMPLES / "mnist_cnn.py", "--dry-run", "--epochs", "2", "--batch-size", "16",
                    "--test-batch-size", "32", "--save-model", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert re.findall(r"Train Epoch: (\d) \[0/64 \(0%\)\]\tLoss: ([\d.]+)", out)[:2] == [
        ("1", re.search(r"Epoch: 1 \[0/64 \(0%\)\]\tLoss: ([\d.]+)", out).group(1)),
        ("2", re.search(r"Epoch: 2 \[0/64 \(0%\)\]\tLoss: ([\d.]+)", out).group(1))]
    tests = _test_lines(out)
    assert len(tests) == 2 and all(math.isfinite(loss) and total == N_TEST and 0 <= ok <= N_TEST
                                   for loss, ok, total in tests)
    net = g["Net"]()
    net.load_state_dict(trainkit.load("mnist_cnn.pt", weights_only=True))
    assert net.fc1.weight.shape == (128, 9216)


def test_polynomial_regression_converges(workdir, monkeypatch, capsys):
    trainkit.manual_seed(0)
    run_program(EXAMPLES / "regression.py", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    loss, batches = re.search(r"Loss: ([\d.]+) after (\d+) batches", out).groups()
    assert float(loss) < 1e-3 and int(batches) > 10
    coef = [[float(v) for v in re.findall(r"[+-]\d+\.\d+", line)]
            for line in re.findall(r"==> (?:Learned|Actual) function:\t(.*)", out)]
    assert len(coef) == 2 and len(coef[0]) == 5
    np.testing.assert_allclose(coef[0], coef[1], atol=0.3)


def test_vae_one_epoch_saves_images(workdir, monkeypatch, capsys):
    (workdir / "results").mkdir()
    run_program(EXAMPLES / "vae.py", "--epochs", "1", "--batch-size", "16", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "Using device: cpu" in out
    train_loss = float(re.search(r"====> Epoch: 1 Average loss: ([\d.]+)", out).group(1))
    test_loss = float(re.search(r"====> Test set loss: ([\d.]+)", out).group(1))
    assert 0 < test_loss < train_loss < 784 * math.log(2) * 1.5  # summed BCE + KL per image
    recon = Image.open("results/reconstruction_1.png")
    sample = Image.open("results/sample_1.png")
    assert recon.size == (8 * 30 + 2, 2 * 30 + 2) and sample.size == (242, 242) and sample.mode == "RGB"


def test_siamese_resnet18_dry_run(workdir, monkeypatch, capsys):
    # ResNet-18 on every test pair: a small set, but two images per class (a same-class pair needs two)
    write_mnist(workdir.parent / "data", 20, 20, seed=4)
    run_program(EXAMPLES / "siamese.py", "--dry-run", "--epochs", "1", "--batch-size", "4",
                "--test-batch-size", "10", "--save-model", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert re.search(r"Train Epoch: 1 \[0/20 \(0%\)\]\tLoss: [\d.]+", out)
    (loss, ok, total), = _test_lines(out)
    assert math.isfinite(loss) and total == 20 and 0 <= ok <= 20
    state = trainkit.load("siamese_network.pt")
    assert state["resnet.0.weight"].shape == (64, 1, 7, 7) and state["fc.0.weight"].shape == (256, 1024)
    assert "resnet.8.weight" not in state and len(state) == 122 - 2 + 4  # resnet18 less fc, plus the head


def test_forward_forward(workdir, monkeypatch, capsys):
    run_program(EXAMPLES / "forward_forward.py", "--epochs", "3", "--train_size", "64", "--test_size", "40",
                "--log-interval", "1", "--save_model", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert out.count("training layer: ") == 2 and len(re.findall(r"Loss:  [\d.]+", out)) == 6
    train_err = float(re.search(r"train error: ([\d.e-]+)", out).group(1))
    test_err = float(re.search(r"test error: ([\d.e-]+)", out).group(1))
    assert 0 <= train_err <= 1 and 0 <= test_err <= 1
    assert trainkit.load("mnist_ff.pt") == {}  # its layers are a plain list, as in PyTorch: no state


def test_mnist_rnn_dry_run(workdir, monkeypatch, capsys):
    run_or_skip_missing(lambda: run_program(
        EXAMPLES / "mnist_rnn.py", "--dry-run", "--epochs", "1", "--batch-size", "16", "--test-batch-size", "20",
        "--save-model", monkeypatch=monkeypatch), "LSTM")
    out = capsys.readouterr().out
    (loss, ok, total), = _test_lines(out)
    assert math.isfinite(loss) and total == N_TEST
    assert trainkit.load("mnist_rnn.pt")["rnn.weight_hh_l0"].shape == (4 * 64, 64)


def _write_corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    for name, lines in (("train", 60), ("valid", 20), ("test", 20)):
        text = "\n".join(" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(lines))
        (root / f"{name}.txt").write_text(text + "\n")
    return root


@pytest.mark.parametrize("model,classes", [
    ("LSTM", ("LSTM", "Embedding", "Transformer")),  # model.py defines both models
    ("Transformer", ("Transformer", "TransformerEncoder", "MultiheadAttention", "LayerNorm", "Embedding")),
])
def test_word_language_model_dry_run(model, classes, workdir, monkeypatch, capsys):
    corpus = _write_corpus(workdir)
    for name in ("data", "model"):  # the program's sibling modules, fresh for each run
        monkeypatch.delitem(sys.modules, name, raising=False)
    run_or_skip_missing(lambda: run_program(
        EXAMPLES / "word_language_model" / "main.py", "--data", str(corpus), "--model", model, "--dry-run",
        "--epochs", "1", "--emsize", "16", "--nhid", "16", "--nlayers", "2", "--bptt", "6", "--batch_size", "4",
        "--save", "lm.pt", *(["--onnx-export", "lm.onnx"] if model == "LSTM" else []), monkeypatch=monkeypatch),
        *classes)
    out = capsys.readouterr().out
    if model == "LSTM":  # the upstream option: the final model exported with torch.onnx.export, runnable
        import onnx
        import onnxruntime

        onnx.checker.check_model(onnx.load(str(workdir / "lm.onnx")), full_check=True)
        session = onnxruntime.InferenceSession(str(workdir / "lm.onnx"))
        feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],
                                  np.int64 if "int64" in i.type else np.float32) for i in session.get_inputs()}
        assert session.run(None, feeds)[0].shape == (6 * 1, 31)  # (bptt * batch, vocabulary) log-probabilities
    valid = float(re.search(r"valid loss\s+([\d.]+)", out).group(1))
    test = float(re.search(r"End of training \| test loss\s+([\d.]+)", out).group(1))
    assert 0 < valid < 2 * math.log(31) and 0 < test < 2 * math.log(31)  # near log(vocabulary) after one step
