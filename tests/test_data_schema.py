"""The ``data:`` section is validated once, from the declarations: every mistake in the first pass, located."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from clitools import tk
from trainkit.config import ConfigError, load_config, loads_config
from trainkit.data import DATASETS, TRANSFORMS, build
from trainkit.data.schema import DataSpec

MODEL = """\
model: {layers: [flatten, {linear: {out_features: 10}}]}
optimizer: {type: sgd, lr: 0.1}
"""


def _config(tmp_path: Path, data: str, model: str = MODEL) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(data) + model)
    return path


@pytest.mark.parametrize("data,expected", [
    ("data:\n  dataset: digits\n  transforms:\n    - random_crop: {size: 9}\n",
     "c.yaml:4:21: data.transforms.0.random_crop.size: crop [9, 9] is larger than the digits images (8x8) plus "
     "padding 0"),
    ("data:\n  dataset: digits\n  transforms:\n    - normalize: {mean: [0.1, 0.2, 0.3], std: 0.5}\n",
     "c.yaml:4:19: data.transforms.0.normalize.mean: has 3 values; digits images have 1 channel(s)"),
    ("data:\n  dataset: digits\n  transforms:\n    - random_crop: {size: 6, padding: 1}\n",
     "c.yaml:4:21: data.transforms.0.random_crop.size: size [6, 6] must equal the image size [8, 8] so that train "
     "and eval inputs have the same shape; use padding to shift"),
    ("data:\n  dataset: iris\n  transforms:\n    - normalize: {mean: [1, 2, 3]}\n",
     "c.yaml:4:19: data.transforms.0.normalize.mean: has 3 values; iris samples have 4 feature(s)"),
    ("data:\n  dataset: csv\n  path: x.csv\n  target: y\n  transforms: [random_horizontal_flip]\n",
     "c.yaml:5:16: data.transforms.0: transform 'random_horizontal_flip' needs image data; dataset 'csv' is "
     "not images"),
])
def test_data_mistakes_are_reported_in_the_first_pass(tmp_path, data, expected):
    """Loading the config alone finds them (no data is read), each at its line and column."""
    path = _config(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{tmp_path}/{expected}"


def test_a_data_mistake_exits_2_and_creates_nothing(tmp_path):
    _config(tmp_path, "data:\n  dataset: digits\n  transforms:\n    - random_crop: {size: 9}\n")
    r = tk(tmp_path, "train", "c.yaml", check=2)
    assert r.stderr.startswith("error: c.yaml:4:21: data.transforms.0.random_crop.size: crop [9, 9] is larger")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_transforms_of_a_file_whose_shape_only_the_file_knows_are_checked_once_loaded(tmp_path):
    """An .npz of 2-channel images with a 3-value normalize: refused at build, at the key's line."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (12, 2, 5, 5), dtype=np.uint8), y=np.arange(12) % 3)
    path = _config(tmp_path, "data:\n  dataset: npz\n  path: d.npz\n  transforms:\n"
                             "    - normalize: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\n")
    r = tk(tmp_path, "train", "c.yaml", check=2)
    assert "c.yaml:5:19: data.transforms.0.normalize.mean: has 3 values; npz images have 2 channel(s)" in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert path.exists()


def test_download_defaults_to_true_everywhere_and_keys_come_from_the_declaration():
    c = loads_config("data: {dataset: mnist}\n" + MODEL)
    assert c.resolved.data.args == {"root": None, "download": True}
    assert DATASETS["cifar10"].arguments["download"].default is True
    spec = DataSpec.from_resolved(c.data["data"])
    assert spec.static_shape() == (1, 28, 28) and spec.static_task() == "classification"
    # the Python entry point applies the same rules (and the same defaults)
    with pytest.raises(ConfigError) as info:
        build({"dataset": "mnist", "path": "x"})
    assert str(info.value) == ("<config>: data.path: key 'path' does not apply to dataset 'mnist' "
                               "(it is for csv, npz, text)")


def test_data_spec_is_immutable_and_transforms_keep_their_order():
    c = loads_config("data: {dataset: digits, transforms: [random_horizontal_flip, "
                     "{normalize: {mean: 0.5, std: 0.25}}]}\n" + MODEL)
    spec = c.resolved.data
    assert [t.name for t in spec.transforms] == ["random_horizontal_flip", "normalize"]
    assert set(TRANSFORMS) >= {t.name for t in spec.transforms}
    with pytest.raises(Exception):
        spec.batch_size = 3
    with pytest.raises(TypeError):
        spec.transforms[1].args["mean"] = 1.0
    with pytest.raises(ConfigError):
        load_config(Path("/nonexistent/c.yaml"))
