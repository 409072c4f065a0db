"""The two seed programs (PyTorch's classic examples with only the imports changed) run and learn."""
import importlib.util
from pathlib import Path


from fakedata import write_cifar10

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_linear_regression_converges():
    losses = _load("linear_regression").main(epochs=1000)
    assert losses[-1] < 0.01 * losses[0]


def test_cifar_cnn_runs_and_learns_on_tiny_cifar(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    root = write_cifar10(tmp_path, per_batch=60, test=60)
    acc = _load("cifar_cnn").main(root=str(root), epochs=8, batch_size=8, lr=0.01)
    out = capsys.readouterr().out
    assert "Accuracy of the network on the 60 test images" in out
    assert acc > 0.5  # chance is 0.1; the tiny images are learnable
