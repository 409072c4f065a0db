"""Your own images in, predictions out: train on an image folder through the CLI, then `trainkit predict`.

The image folder is a few hundred PNG and JPEG files of three shapes drawn with
Pillow (colours, sizes and positions varied). The CLI runs in this process so
that every image file opened can be counted.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit
from imagedata import CLASSES, png_bytes, truncated_jpeg, write_shapes
from trainkit.cli import app
from trainkit.data.images import IMAGE_EXTENSIONS
from trainkit.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
name: shapes
seed: 0
data:
  dataset: image_folder
  root: {root}
  image_size: 24
  batch_size: 32
  transforms:
    - random_horizontal_flip
    - color_jitter: {{brightness: 0.2}}
    - normalize
model:
  layers:
    - conv2d: {{out_channels: 16, kernel_size: 3, padding: 1}}
    - relu
    - maxpool2d: {{kernel_size: 2}}
    - conv2d: {{out_channels: 32, kernel_size: 3, padding: 1}}
    - relu
    - maxpool2d: {{kernel_size: 2}}
    - conv2d: {{out_channels: 32, kernel_size: 3, padding: 1}}
    - relu
    - maxpool2d: {{kernel_size: 2}}
    - flatten
    - linear: {{out_features: 64}}
    - relu
    - linear: {{out_features: 3}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.003}}
train:
  epochs: 10
"""


class ImageOpens:
    """Counts image files opened (os.open and open), and the count at each epoch's start and end."""

    def __init__(self):
        self.count = 0
        self.epochs: list[tuple[int, int]] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real_os_open, real_open = os.open, open

        def is_image(path) -> bool:
            return isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).lower().endswith(IMAGE_EXTENSIONS)

        def os_open(path, *a, **k):
            self.count += is_image(path)
            return real_os_open(path, *a, **k)

        def py_open(path, *a, **k):
            self.count += is_image(path)
            return real_open(path, *a, **k)

        mp.setattr(os, "open", os_open)
        mp.setattr("builtins.open", py_open)
        real_epoch = Trainer._train_epoch
        opens = self

        def train_epoch(trainer, epoch):
            before = opens.count
            out = real_epoch(trainer, epoch)
            opens.epochs.append((before, opens.count))
            return out

        mp.setattr(Trainer, "_train_epoch", train_epoch)


def invoke(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on data/train (240 images), data/val (60), with data/test (60) and new/ (45) aside."""
    tmp = tmp_path_factory.mktemp("predict")
    data = tmp / "data"
    write_shapes(data / "train", 80, seed=1)
    write_shapes(data / "val", 20, seed=2)
    write_shapes(data / "test", 20, seed=3)
    write_shapes(tmp / "new", 15, seed=4)
    (tmp / "shapes.yaml").write_text(CONFIG.format(root=data))
    opens = ImageOpens()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINKIT_DATA", str(tmp / "cache"))
        mp.setenv("COLUMNS", "200")
        opens.install(mp)
        code, out, err = invoke("train", tmp / "shapes.yaml", "--runs-dir", tmp / "runs", "--quiet")
        assert code == 0, out + err
        after_train = opens.count
        code, out, err = invoke("eval", next((tmp / "runs").iterdir()), "--split", "test", "--json")
        assert code == 0, err
        eval_opens = opens.count - after_train
    run = next((tmp / "runs").iterdir())
    return {"tmp": tmp, "data": data, "run": run, "opens": opens, "after_train": after_train,
            "eval_opens": eval_opens, "eval": json.loads(out)}


@pytest.fixture
def env(trained, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(trained["tmp"] / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    return trained


def test_training_reaches_90_percent_and_epochs_read_no_image_file(trained):
    info = json.loads((trained["run"] / "run.json").read_text())
    assert info["status"] == "completed" and info["best_metric"]["name"] == "val_acc"
    assert info["best_metric"]["value"] >= 0.9, info["best_metric"]
    assert info["data"]["class_names"] == list(CLASSES) and info["data"]["train"] == 240
    opens = trained["opens"]
    assert len(opens.epochs) == 10
    # All 360 files were read once, while the data set was built (the cache did not exist yet) ...
    first_epoch_start = opens.epochs[0][0]
    assert first_epoch_start == 360
    # ... and no epoch, the second included, opened a single image file: batches come from the map.
    assert all(before == after for before, after in opens.epochs), opens.epochs
    assert trained["after_train"] == 360
    # A later command (eval rebuilds the data set) maps the cache: still no image file read.
    assert trained["eval_opens"] == 0


def test_predict_on_new_images_is_right_and_json_is_machine_readable(env):
    code, out, err = invoke("predict", env["run"], env["tmp"] / "new", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["classes"] == list(CLASSES) and doc["checkpoint"] == "best" and doc["skipped"] == []
    rows = doc["predictions"]
    assert len(rows) == 45
    right = sum(Path(r["input"]).parent.name == r["class"] for r in rows)
    assert right / len(rows) >= 0.9, right
    r = rows[0]
    assert set(r) == {"input", "class", "index", "probability", "top_k"} and len(r["top_k"]) == 3
    assert r["top_k"][0]["class"] == r["class"] and math.isclose(sum(t["probability"] for t in r["top_k"]), 1.0)


def test_predict_json_equals_what_eval_computes_for_the_same_files(env):
    code, out, err = invoke("predict", env["run"], env["data"] / "test", "--json", "--top-k", "3")
    assert code == 0, err
    rows = json.loads(out)["predictions"]
    report = env["eval"]["test"]
    truth = [CLASSES.index(Path(r["input"]).parent.name) for r in rows]
    confusion = np.zeros((3, 3), np.int64)
    for t, r in zip(truth, rows):
        confusion[t, r["index"]] += 1
    assert confusion.tolist() == report["confusion_matrix"]
    assert np.trace(confusion) / len(rows) == report["accuracy"]
    p_true = [next(t["probability"] for t in r["top_k"] if t["index"] == y) for r, y in zip(rows, truth)]
    assert math.isclose(-np.mean(np.log(p_true)), report["loss"], rel_tol=1e-5)


def test_load_run_gives_the_building_blocks_predict_uses(env):
    model, transform, classes = trainkit.load_run(env["run"])
    run = trainkit.load_run(env["run"])
    assert classes == list(CLASSES) and not model.training
    assert [type(t).__name__ for t in transform.transforms] == ["ToTensor", "Normalize"]  # no augmentation
    files = sorted((env["data"] / "test" / "square").iterdir())[:4]
    x = np.stack([run.decode(f) for f in files])
    assert x.shape == (4, 3, 24, 24) and x.dtype == np.uint8
    logits = run.outputs(x)
    code, out, _ = invoke("predict", env["run"], *files, "--json")
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose([r["probability"] for r in json.loads(out)["predictions"]], probs.max(1), rtol=1e-5)


def test_inputs_stream_in_chunks_with_progress(env):
    from trainkit.train.predict import load_run, predict

    calls = []
    chunks = [len(c) for c in predict(load_run(env["run"]), [env["tmp"] / "new"], batch_size=16,
                                      progress=lambda done, total: calls.append((done, total)))]
    assert chunks == [16, 16, 13] and calls == [(16, 45), (32, 45), (45, 45)]


def test_table_csv_output_and_chunks(env, monkeypatch):
    monkeypatch.chdir(env["tmp"])  # inputs as a user types them: short paths, not folded in the table
    code, out, err = invoke("predict", env["run"], Path("new") / "circle", "--top-k", "2", "-o",
                            env["tmp"] / "out.csv")
    assert code == 0, err
    assert "circle_0000.png" in out and "probability" in out and "top-k" in out
    rows = list(csv.reader(io.StringIO((env["tmp"] / "out.csv").read_text())))
    assert rows[0] == ["input", "class", "index", "probability", "class_1", "probability_1", "class_2",
                       "probability_2"]
    assert len(rows) == 16 and rows[1][0].endswith("circle_0000.png")
    code, chunked, _ = invoke("predict", env["run"], env["tmp"] / "new", "--json", "--batch-size", "7")
    code, whole, _ = invoke("predict", env["run"], env["tmp"] / "new", "--json")
    a, b = json.loads(chunked)["predictions"], json.loads(whole)["predictions"]
    assert [r["class"] for r in a] == [r["class"] for r in b]
    np.testing.assert_allclose([r["probability"] for r in a], [r["probability"] for r in b], rtol=1e-5)


@pytest.fixture
def bad_inputs(env):
    folder = env["tmp"] / "bad"
    if not folder.exists():
        folder.mkdir()
        (folder / "broken.jpg").write_bytes(truncated_jpeg())
        (folder / "notes.png").write_text("these are notes, not a picture")
        (folder / "huge.png").write_bytes(png_bytes(20_000, 20_000, level=1))
    return folder


@pytest.mark.parametrize("name, reason", [("broken.jpg", "truncated or corrupt image"),
                                          ("notes.png", "not an image"), ("huge.png", "decompression bomb")])
def test_each_bad_input_exits_2_naming_it(env, bad_inputs, name, reason):
    good = env["tmp"] / "new" / "square" / "square_0000.png"
    code, out, err = invoke("predict", env["run"], good, bad_inputs / name, "-o", env["tmp"] / f"{name}.csv")
    assert code == 2 and f"{bad_inputs / name}: " in err and reason in err
    assert out == "" and not (env["tmp"] / f"{name}.csv").exists()  # nothing half-written


def test_skip_bad_files_lists_them_and_predicts_the_rest(env, bad_inputs):
    good = env["tmp"] / "new" / "square"
    code, out, err = invoke("predict", env["run"], good, bad_inputs, "--json", "--skip-bad-files")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["predictions"]) == 15 and len(doc["skipped"]) == 3
    assert {Path(s["input"]).name for s in doc["skipped"]} == {"broken.jpg", "notes.png", "huge.png"}
    assert "skipped 3 input(s)" in err


def test_the_real_command_fails_cleanly_and_refuses_text_prompts(env, bad_inputs):
    r = subprocess.run([sys.executable, "-m", "trainkit", "predict", str(env["run"]), str(bad_inputs / "huge.png")],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), TRAINKIT_DATA=str(env["tmp"] / "cache")))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "huge.png" in r.stderr
    code, out, err = invoke("predict", env["run"], "a drawing of a circle")
    assert code == 2 and "no such file or folder" in err and "text prompts are for language-model runs" in err
    code, out, err = invoke("predict", env["run"], env["tmp"] / "nowhere")
    assert code == 2 and "nowhere: no such file or folder" in err


# ----------------------------------------------------------------------------- tabular and fixed-size models
TABULAR = """\
name: {name}
seed: 0
data: {{dataset: csv, path: {path}, target: {target}, val_split: 0.2, batch_size: 16}}
model:
  layers: [{{linear: {{out_features: 16}}}}, relu, {{linear: {{out_features: {out}}}}}]
loss: {loss}
optimizer: {{type: adam, lr: 0.05}}
train: {{epochs: 15}}
"""


def test_tabular_predictions_match_columns_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 2))
    labels = np.where(x[:, 0] > 0.5, "high", np.where(x[:, 0] < -0.5, "low", "mid"))
    lines = ["a,noise,kind"] + [f"{a:.4f},{b:.4f},{k}" for (a, b), k in zip(x, labels)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "t.yaml").write_text(TABULAR.format(name="tab", path=tmp_path / "train.csv", target="kind", out=3,
                                                    loss="cross_entropy"))
    code, out, err = invoke("train", tmp_path / "t.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert code == 0, out + err
    run = next((tmp_path / "runs").iterdir())
    # Columns in another order, an extra column, no target: matched by name.
    (tmp_path / "new.csv").write_text("id,noise,a\n1,0.0,2.5\n2,0.3,-2.5\n3,-0.1,0.0\n")
    code, out, err = invoke("predict", run, tmp_path / "new.csv", "--json")
    assert code == 0, err
    rows = json.loads(out)["predictions"]
    assert [r["input"] for r in rows] == [f"{tmp_path / 'new.csv'}:{i}" for i in (2, 3, 4)]
    assert [r["class"] for r in rows] == ["high", "low", "mid"]
    (tmp_path / "missing.csv").write_text("id,noise\n1,0.0\n")
    code, out, err = invoke("predict", run, tmp_path / "missing.csv")
    assert code == 2 and "missing.csv: line 1: no column 'a'; the model takes the training file's features a, noise" \
        in err
    (tmp_path / "bad.csv").write_text("a,noise\n1,0\n2,x\n")
    code, out, err = invoke("predict", run, tmp_path / "bad.csv")
    assert code == 2 and "bad.csv: line 3, column 'noise': 'x' is not a number" in err
    code, out, err = invoke("predict", run, env_png(tmp_path))
    assert code == 2 and "an image; this run's model takes rows of 2 feature(s) from CSV files" in err
    (tmp_path / "train.csv").rename(tmp_path / "moved.csv")
    code, out, err = invoke("predict", run, tmp_path / "new.csv")
    assert code == 2 and "the run's training data are needed for its classes and evaluation transforms" in err
    assert "train.csv: file not found" in err


def env_png(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "pic.png"
    Image.new("RGB", (8, 8)).save(path)
    return path


def test_regression_predicts_values(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    x = np.random.default_rng(1).normal(size=(120, 2))
    y = 3 * x[:, 0] - x[:, 1]
    (tmp_path / "r.csv").write_text("u,v,y\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f}\n" for (a, b), c in zip(x, y)))
    (tmp_path / "r.yaml").write_text(TABULAR.format(name="reg", path=tmp_path / "r.csv", target="y", out=1,
                                                    loss="mse").replace("epochs: 15", "epochs: 30"))
    code, out, err = invoke("train", tmp_path / "r.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert code == 0, out + err
    run = next((tmp_path / "runs").iterdir())
    (tmp_path / "q.csv").write_text("u,v\n1.0,0.0\n")
    code, out, err = invoke("predict", run, tmp_path / "q.csv", "--json", "-o", tmp_path / "q_out.csv")
    assert code == 0, err
    (row,) = json.loads(out)["predictions"]
    assert set(row) == {"input", "value"} and abs(row["value"] - 3.0) < 0.6
    assert (tmp_path / "q_out.csv").read_text().splitlines()[0] == "input,value"


def test_a_fixed_size_model_refuses_images_that_do_not_fit(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    (tmp_path / "d.yaml").write_text("name: d\ndata: {dataset: digits, val_split: 0.1}\n"
                                     "model: {layers: [flatten, {linear: {out_features: 10}}]}\n"
                                     "optimizer: {type: adam, lr: 0.01}\ntrain: {epochs: 1}\n")
    code, out, err = invoke("train", tmp_path / "d.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert code == 0, out + err
    run = next((tmp_path / "runs").iterdir())
    Image.new("L", (8, 8), 200).save(tmp_path / "ok.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "colour.png")
    Image.new("L", (16, 16)).save(tmp_path / "big.png")
    code, out, err = invoke("predict", run, tmp_path / "ok.png", "--json")
    assert code == 0 and json.loads(out)["predictions"][0]["class"] in [str(i) for i in range(10)]
    code, out, err = invoke("predict", run, tmp_path / "colour.png")
    assert code == 2 and "colour.png: 3-channel (RGB) image; the model takes 8x8 grey (1-channel) images" in err
    code, out, err = invoke("predict", run, tmp_path / "big.png")
    assert code == 2 and "big.png: 16x16 image (width x height); the model takes 8x8 grey (1-channel) images" in err
