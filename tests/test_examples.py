"""The seed programs: PyTorch's classic examples with only the imports changed, run and checked."""
import importlib.util
import re
import runpy
import shutil
import tarfile
from pathlib import Path

import numpy as np

import trainkit
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


def test_cifar10_tutorial_runs_as_written_on_a_tiny_archive(tmp_path, monkeypatch, capsys):
    """beginner_source/blitz/cifar10_tutorial.py with its imports swapped, on a generated
    cifar-10-python.tar.gz in ./data (read in place, as the download would leave it)."""
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path / "gen", per_batch=200, test=40)
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "gen" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(tmp_path / "gen")
    trainkit.manual_seed(0)  # the tutorial does not seed; the test wants one outcome
    g = runpy.run_path(str(EXAMPLES / "cifar_cnn.py"), run_name="__main__")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines[0].split()) == 4 and all(w in g["classes"] for w in lines[0].split())  # a batch's labels
    assert "Finished Training" in out and lines[-1] == "cpu"
    assert re.search(r"GroundTruth:  plane car   bird  cat  $", out, re.M)  # the test set's first four labels
    acc = int(re.search(r"Accuracy of the network on the 10000 test images: (\d+) %", out).group(1))
    per_class = [float(v) for v in re.findall(r"Accuracy for class: \w+\s* is ([\d.]+) %", out)]
    assert len(per_class) == 10 and np.mean(per_class) == np.float64(100 * g["correct"] / g["total"])
    assert g["total"] == 40 and acc == 100 * g["correct"] // 40 and acc > 10  # learns beyond chance
    state = trainkit.load(tmp_path / "cifar_net.pth")
    assert list(state) == list(g["net"].state_dict()) and state["fc1.weight"].shape == (120, 400)
