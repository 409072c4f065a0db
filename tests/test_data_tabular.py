"""CSV / NPZ files, embedded and synthetic sets, and the config entry point build()."""
from __future__ import annotations

import numpy as np
import pytest

from trainkit.data import DATASETS, TRANSFORMS, build
from trainkit.data.datasets import CSVDataset, Diabetes, Digits, Iris, LinearData, NPZDataset
from trainkit.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "default-root"))


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- CSV -------------------------------------------------------------------------------------

def test_csv_classification_with_string_labels(tmp_path):
    path = _csv(tmp_path, "a,b,kind\n1,2,cat\n3,4.5,dog\n\n5,6,cat\n")
    ds = CSVDataset(path, target="kind")
    assert ds.task == "classification" and ds.classes == ["cat", "dog"]
    assert ds.data.dtype == np.float32 and ds.data.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert ds.targets.tolist() == [0, 1, 0] and ds.targets.dtype == np.int64


def test_csv_integer_labels_float_regression_and_override(tmp_path):
    path = _csv(tmp_path, "x,y\n0.5,2\n1.5,0\n")
    ds = CSVDataset(path, target="y")
    assert ds.task == "classification" and ds.num_classes == 3
    reg = CSVDataset(_csv(tmp_path, "x,y\n1,2.5\n2,3.5\n", "r.csv"), target="y")
    assert reg.task == "regression" and reg.targets.shape == (2, 1) and reg.targets.dtype == np.float32
    forced = CSVDataset(path, target="y", task="regression")
    assert forced.task == "regression" and forced.targets.tolist() == [[2.0], [0.0]]
    sel = CSVDataset(_csv(tmp_path, "a,b,c,y\n1,2,3,0\n", "s.csv"), target="y", features=["c", "a"])
    assert sel.data.tolist() == [[3, 1]]


@pytest.mark.parametrize("text, pattern", [
    ("a,b,y\n1,2,0\n3,0\n", r"line 3 has 2 cells, the header has 3"),
    ("a,b,y\n1,2,0\n3,nan,1\n", r"line 3, column 'b'.*NaN/inf"),
    ("a,b,y\n1,inf,0\n", r"line 2, column 'b'.*NaN/inf"),
    ("a,b,y\n1,2,0\n1,abc,1\n", r"line 3, column 'b': 'abc' is not a number"),
    ("a,b,y\n1,,0\n", r"line 2, column 'b': an empty cell"),
    ("", r"empty file"),
    ("a,b,y\n", r"no data rows"),
    ("a,a,y\n1,2,3\n", r"unique"),
    ("a,b,y\n1,2,-1\n", r"line 2, column 'y': label '-1' out of range"),
])
def test_csv_bad_input_names_file_line_and_column(tmp_path, text, pattern):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=pattern) as err:
        CSVDataset(path, target="y")
    assert str(path) in str(err.value)


def test_csv_ten_million_column_header_refused_quickly(tmp_path):
    path = tmp_path / "wide.csv"
    with open(path, "w") as f:
        f.write(",".join(["c"] * 10_000_000) + ",y\n1\n")
    with pytest.raises(DataError, match="line 1 .*columns"):
        CSVDataset(path, target="y")


def test_csv_missing_file_target_and_non_utf8(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        CSVDataset(tmp_path / "nope.csv", target="y")
    with pytest.raises(DataError, match="no column 'z'"):
        CSVDataset(_csv(tmp_path, "a,y\n1,0\n"), target="z")
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"a,y\n\xff\xfe,0\n")
    with pytest.raises(DataError, match="not UTF-8"):
        CSVDataset(bad, target="y")


# -- NPZ -------------------------------------------------------------------------------------

def test_npz_layouts_and_refusals(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x_train=np.ones((4, 2)), y_train=np.array([0, 1, 1, 0]), x_test=np.zeros((2, 2)),
             y_test=np.array([1, 0]))
    tr, te = NPZDataset(p), NPZDataset(p, train=False)
    assert len(tr) == 4 and len(te) == 2 and tr.task == "classification" and tr.data.dtype == np.float32
    q = tmp_path / "b.npz"
    np.savez(q, x=np.ones((3, 2)), y=np.array([0.5, 1.5, 2.5]))
    reg = NPZDataset(q)
    assert reg.task == "regression" and reg.targets.shape == (3, 1)
    obj = tmp_path / "c.npz"
    np.savez(obj, x=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
    with pytest.raises(DataError, match="c.npz"):
        NPZDataset(obj)
    junk = tmp_path / "d.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid .npz"):
        NPZDataset(junk)
    neg = tmp_path / "e.npz"
    np.savez(neg, x=np.ones((2, 2)), y=np.array([0, -3]))
    with pytest.raises(DataError, match="out of range"):
        NPZDataset(neg)


# -- embedded and synthetic ---------------------------------------------------------------------

def test_embedded_sets_shapes_and_fixed_stratified_split():
    tr, te = Digits(train=True), Digits(train=False)
    assert len(tr) + len(te) == 1797 and abs(len(te) - 0.2 * 1797) < 10
    assert tr.data.shape[1:] == (1, 8, 8) and tr.data.dtype == np.float32
    assert 0.0 <= tr.data.min() and tr.data.max() == 1.0  # pixel / 16
    # Stratified: each class keeps about its share in the test part.
    share = np.bincount(te.targets, minlength=10) / np.bincount(np.concatenate([tr.targets, te.targets]))
    assert np.all(np.abs(share - 0.2) < 0.02)
    assert np.array_equal(Digits(train=False).targets, te.targets)  # deterministic
    iris = Iris()
    assert iris.data.shape == (120, 4) and iris.classes == ["setosa", "versicolor", "virginica"]
    dia = Diabetes()
    assert dia.data.shape[1] == 10 and dia.task == "regression" and dia.targets.shape[1] == 1
    assert len(dia) + len(Diabetes(train=False)) == 442


def test_linear_generator_is_what_it_says():
    ds = LinearData(n_samples=500, n_features=3, noise=0.0, seed=4)
    np.testing.assert_allclose(ds.targets[:, 0], ds.data @ ds.weight.astype(np.float32) + ds.bias, rtol=1e-4,
                               atol=1e-5)
    again = LinearData(n_samples=500, n_features=3, noise=0.0, seed=4)
    assert np.array_equal(again.data, ds.data) and len(LinearData(n_samples=500, train=False)) == 100


# -- build() ------------------------------------------------------------------------------------

def test_build_embedded_bundle_and_loaders():
    b = build({"dataset": "digits", "val_split": 0.1, "batch_size": 64,
               "transforms": ["random_horizontal_flip", "normalize"]}, seed=3)
    assert b.input_shape == (1, 8, 8) and b.num_classes == 10 and b.task == "classification"
    assert len(b.train) + len(b.val) + len(b.test) == 1797
    assert len(np.intersect1d(b.train.indices, b.val.indices)) == 0
    x, y = next(iter(b.train_loader()))
    assert x.numpy().shape == (64, 1, 8, 8) and x.numpy().dtype == np.float32 and y.numpy().dtype == np.int64
    # normalize without mean/std uses training statistics: train inputs come out standardised.
    xs = np.concatenate([x.numpy() for x, _ in b.eval_loader("train")])
    assert abs(xs.mean()) < 0.05 and abs(xs.std() - 1) < 0.1
    assert not any(getattr(t, "random", False) for t in b.eval_transform.transforms)
    again = build({"dataset": "digits", "val_split": 0.1}, seed=3)
    assert np.array_equal(again.val.indices, b.val.indices)


def test_build_regression_and_csv(tmp_path):
    b = build({"dataset": "linear", "n_samples": 50, "n_features": 2}, seed=0)
    assert b.task == "regression" and b.num_classes is None and b.input_shape == (2,)
    _, y = next(iter(b.eval_loader("test")))
    assert y.numpy().shape[1] == 1 and y.numpy().dtype == np.float32
    train = _csv(tmp_path, "a,kind\n1,x\n2,y\n3,x\n4,y\n", "train.csv")
    test = _csv(tmp_path, "a,kind\n5,y\n", "test.csv")
    c = build({"dataset": "csv", "path": str(train), "target": "kind", "test_path": str(test)})
    assert c.class_names == ["x", "y"] and c.test.targets.tolist() == [1]


def test_build_config_errors_are_collected_with_paths():
    with pytest.raises(ConfigError) as err:
        build({"dataset": "cifar1O"})
    assert "data.dataset" in str(err.value) and "cifar10" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build({"dataset": "iris", "bach_size": 3, "val_split": 1.5,
               "transforms": ["normalise", {"normalize": {"mea": 1}}, {"random_crop": {"padding": 2}}]})
    msg = str(err.value)
    assert "data.bach_size" in msg and "batch_size" in msg and "data.val_split" in msg
    assert "data.transforms[0]" in msg and "normalize" in msg and "data.transforms[1].normalize.mea" in msg
    with pytest.raises(ConfigError, match=r"transforms\[0\].random_crop.*image"):
        build({"dataset": "iris", "transforms": [{"random_crop": {"padding": 2}}]})
    with pytest.raises(ConfigError, match="required"):
        build({"dataset": "csv"})


def test_registries_for_the_schema():
    assert {"cifar10", "cifar100", "mnist", "fashion_mnist", "digits", "iris", "diabetes", "linear", "csv",
            "npz"} <= set(DATASETS)
    assert {"normalize", "random_crop", "random_horizontal_flip"} <= set(TRANSFORMS)


def test_build_accepts_the_validated_config_form_with_nulls():
    # The config schema fills every optional key, using null for "the default".
    spec = {"dataset": "digits", "val_split": 0.0, "batch_size": 16, "shuffle": True,
            "transforms": [{"random_crop": {"size": None, "padding": 1}}, {"normalize": {"mean": None, "std": None}}]}
    b = build(spec, seed=0)
    assert b.val is None and b.input_shape == (1, 8, 8)
    x, _ = next(iter(b.train_loader()))
    assert x.numpy().shape == (16, 1, 8, 8)


def test_npz_images_and_test_labels_beyond_training_classes(tmp_path):
    p = tmp_path / "img.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x_train=rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8), y_train=np.array([0, 1, 2, 0, 1, 2]),
             x_test=rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8), y_test=np.array([0, 1]))
    b = build({"dataset": "npz", "path": str(p), "transforms": ["random_horizontal_flip"]}, seed=0)
    assert b.input_shape == (3, 5, 5) and b.train.data.dtype == np.uint8 and b.num_classes == 3
    x, _ = next(iter(b.train_loader()))
    assert x.numpy().shape == (6, 3, 5, 5) and x.numpy().max() <= 1.0
    q = tmp_path / "bad.npz"
    np.savez(q, x_train=np.ones((3, 2)), y_train=np.array([0, 1, 0]), x_test=np.ones((1, 2)), y_test=np.array([5]))
    with pytest.raises(DataError, match="test label 5 out of range"):
        build({"dataset": "npz", "path": str(q)}, seed=0)
