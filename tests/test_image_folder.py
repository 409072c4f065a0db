"""Image folders: torchvision's ImageFolder lists, the decoded cache, bad files, and the image_folder config."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainkit.data.image_cache as image_cache
from imagedata import png_bytes, truncated_jpeg, write_shapes
from trainkit.config import loads_config
from trainkit.data import DataLoader, build
from trainkit.data.datasets import ImageFolder
from trainkit.data.images import DataWarning
from trainkit.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINKIT_NO_DATA_CACHE", raising=False)


@pytest.fixture
def decodes(monkeypatch):
    """Counts image files decoded (every path from file to pixels goes through decode_image)."""
    seen: list[str] = []
    real = image_cache.decode_image

    def counting(path, spec):
        seen.append(str(path))
        return real(path, spec)

    monkeypatch.setattr(image_cache, "decode_image", counting)
    return seen


def _tiny(path: Path, colour=(255, 0, 0), size=(10, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


# ----------------------------------------------------------------------------- torchvision's lists
def test_classes_samples_and_targets_follow_torchvision(tmp_path):
    root = tmp_path / "pics"
    for rel in ("dog/b.png", "dog/a.JPG", "dog/sub/z/c.png", "dog/sub/a/d.bmp", "cat/x.webp", "cat/notes.txt",
                "bird/1.jpeg"):
        p = root / rel
        if p.suffix == ".txt":
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("not an image and not listed")
        else:
            _tiny(p)
    (root / ".ipynb_checkpoints").mkdir()
    ds = ImageFolder(root)
    assert ds.classes == ["bird", "cat", "dog"] and ds.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    # Sorted as torchvision's make_dataset: per class, os.walk's folders sorted, file names sorted.
    names = [Path(p).relative_to(root).as_posix() for p, _ in ds.samples]
    assert names == ["bird/1.jpeg", "cat/x.webp", "dog/a.JPG", "dog/b.png", "dog/sub/a/d.bmp", "dog/sub/z/c.png"]
    assert ds.targets == [0, 1, 2, 2, 2, 2] and ds.imgs == ds.samples
    img, label = ds[1]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and label == 1  # no image_size: torchvision's items
    only_png = ImageFolder(root, is_valid_file=lambda p: p.endswith(".png"), allow_empty=True)
    assert [Path(p).name for p, _ in only_png.samples] == ["b.png", "c.png"]


def test_a_symlink_loop_is_walked_once(tmp_path):
    _tiny(tmp_path / "pics" / "a" / "1.png")
    os.symlink(tmp_path / "pics" / "a", tmp_path / "pics" / "a" / "loop")
    ds = ImageFolder(tmp_path / "pics", image_size=4)
    assert len(ds) == 1


def test_empty_class_folders_are_refused_or_kept_as_classes(tmp_path):
    _tiny(tmp_path / "pics" / "a" / "1.png")
    (tmp_path / "pics" / "b").mkdir()
    with pytest.raises(DataError, match=r"pics/b: no image files .* in this class folder"):
        ImageFolder(tmp_path / "pics", image_size=4)
    with pytest.warns(DataWarning, match=r"skipped 1 .*pics/b: class folder without images"):
        ds = ImageFolder(tmp_path / "pics", image_size=4, skip_bad_files=True)
    assert ds.classes == ["a", "b"] and len(ds) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageFolder(tmp_path / "pics", allow_empty=True).classes == ["a", "b"]  # torchvision's flag: silent
    with pytest.raises(DataError, match="no class folders found"):
        ImageFolder(tmp_path / "pics" / "b")
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolder(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- the decoded cache
def test_decoded_once_then_memory_mapped(tmp_path, decodes):
    write_shapes(tmp_path / "pics", 4)
    first = ImageFolder(tmp_path / "pics", image_size=16)
    assert len(decodes) == 12 and not first.from_cache
    second = ImageFolder(tmp_path / "pics", image_size=16)
    assert len(decodes) == 12 and second.from_cache  # no image file read again
    np.testing.assert_array_equal(second.input_array, first.input_array)
    assert second.input_array.shape == (12, 3, 16, 16) and second.input_array.dtype == np.uint8
    assert isinstance(second.input_array.base, np.memmap) or isinstance(second.input_array, np.memmap) or \
        _is_mapped(second.input_array)
    x, y = next(iter(DataLoader(second, batch_size=5, shuffle=True, seed=0)))
    assert x.shape == (5, 3, 16, 16) and str(x.dtype) == "trainkit.float32" and len(decodes) == 12
    # Another size or mode is another copy.
    ImageFolder(tmp_path / "pics", image_size=8, mode="L")
    assert len(decodes) == 24


def _is_mapped(arr: np.ndarray) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


def test_changing_a_file_rebuilds_and_the_old_copy_goes(tmp_path, decodes):
    write_shapes(tmp_path / "pics", 3)
    ImageFolder(tmp_path / "pics", image_size=8)
    copies = list((tmp_path / "cache" / ".decoded").iterdir())
    assert len(copies) == 1
    victim = tmp_path / "pics" / "circle" / "circle_0000.png"
    Image.new("RGB", (9, 9), (0, 255, 0)).save(victim)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    ds = ImageFolder(tmp_path / "pics", image_size=8)
    assert len(decodes) == 18 and not ds.from_cache
    assert ds.input_array[0, 1].min() == 255  # the new green picture
    assert [p.name for p in (tmp_path / "cache" / ".decoded").iterdir()] != [c.name for c in copies]
    assert len(list((tmp_path / "cache" / ".decoded").iterdir())) == 1


def test_a_damaged_copy_is_rebuilt(tmp_path, decodes):
    write_shapes(tmp_path / "pics", 2)
    ImageFolder(tmp_path / "pics", image_size=8)
    (copy,) = (tmp_path / "cache" / ".decoded").iterdir()
    with open(copy / "pixels.npy", "r+b") as f:
        f.truncate(200)
    ds = ImageFolder(tmp_path / "pics", image_size=8)
    assert len(decodes) == 12 and not ds.from_cache and ds.input_array.shape == (6, 3, 8, 8)
    (copy,) = (tmp_path / "cache" / ".decoded").iterdir()
    (copy / "index.json").write_text("{not json")
    ImageFolder(tmp_path / "pics", image_size=8)
    assert len(decodes) == 18


def test_no_cache_decodes_into_memory(tmp_path, decodes, monkeypatch):
    write_shapes(tmp_path / "pics", 2)
    monkeypatch.setenv("TRAINKIT_NO_DATA_CACHE", "1")
    a = ImageFolder(tmp_path / "pics", image_size=8)
    ImageFolder(tmp_path / "pics", image_size=8, cache=True)
    assert len(decodes) == 12 and not (tmp_path / "cache" / ".decoded").exists() and not _is_mapped(a.input_array)


def test_an_unwritable_cache_folder_warns_and_decodes_in_memory(tmp_path, monkeypatch):
    write_shapes(tmp_path / "pics", 2)
    (tmp_path / "blocker").write_text("a file where the cache folder should be")
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "blocker"))
    with pytest.warns(DataWarning, match="cannot write the decoded-image cache"):
        ds = ImageFolder(tmp_path / "pics", image_size=8)
    assert len(ds) == 6


def test_the_cache_needs_room_on_its_disk(tmp_path, monkeypatch):
    write_shapes(tmp_path / "pics", 2)
    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(DataError, match=r"decoding 6 images of 3x64x64 takes 0.00 GiB in the cache folder .* "
                                        r"which has 0.00 GiB free"):
        ImageFolder(tmp_path / "pics", image_size=64)
    assert not any((tmp_path / "cache" / ".decoded").iterdir())  # the temporary folder is gone


# ----------------------------------------------------------------------------- bad files
def _bad_folder(root: Path) -> None:
    write_shapes(root, 3)
    (root / "circle" / "broken.jpg").write_bytes(truncated_jpeg())
    (root / "square" / "notes.png").write_text("not a picture")
    (root / "triangle" / "huge.png").write_bytes(png_bytes(20_000, 20_000, level=1))


def test_bad_files_stop_the_load_naming_each_one(tmp_path):
    _bad_folder(tmp_path / "pics")
    with pytest.raises(DataError) as info:
        ImageFolder(tmp_path / "pics", image_size=8)
    msg = str(info.value)
    assert msg.startswith("3 of the 12 image files under")
    for name, why in (("broken.jpg", "truncated or corrupt image"), ("notes.png", "not an image"),
                      ("huge.png", "decompression bomb")):
        assert f"{name}: " in msg and why in msg
    assert "data.skip_bad_files: true" in msg


def test_skip_bad_files_counts_and_warns_and_the_cache_remembers(tmp_path, decodes):
    _bad_folder(tmp_path / "pics")
    with pytest.warns(DataWarning, match="skipped 3 unusable file"):
        ds = ImageFolder(tmp_path / "pics", image_size=8, skip_bad_files=True)
    assert len(ds) == 9 and len(ds.skipped) == 3 and ds.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all("broken" not in p and "notes" not in p for p, _ in ds.samples)
    n = len(decodes)
    with pytest.raises(DataError, match="3 of the 12 image files"):  # known from the cache's index at once
        ImageFolder(tmp_path / "pics", image_size=8)
    assert len(decodes) == n


# ----------------------------------------------------------------------------- the config's data set
def test_config_data_set_with_split_folders(tmp_path):
    for part, n in (("train", 4), ("val", 2), ("test", 1)):
        write_shapes(tmp_path / "data" / part, n, seed=len(part))
    bundle = build({"dataset": "image_folder", "root": str(tmp_path / "data"), "image_size": [12, 10],
                    "transforms": ["random_horizontal_flip"]})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 6, 3)
    assert bundle.input_shape == (3, 12, 10) and bundle.class_names == ["circle", "square", "triangle"]
    x, y = next(iter(bundle.eval_loader("test")))
    assert x.shape == (3, 3, 12, 10) and y.tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="data.val_split: the data has its own validation part"):
        build({"dataset": "image_folder", "root": str(tmp_path / "data"), "image_size": 8, "val_split": 0.2})


def test_config_val_and_test_classes_must_be_training_classes(tmp_path):
    write_shapes(tmp_path / "data" / "train", 2)
    write_shapes(tmp_path / "data" / "val", 1, classes=("circle", "hexagon"))
    with pytest.raises(DataError, match=r"val/hexagon: class folder 'hexagon' is not one of the training classes"):
        build({"dataset": "image_folder", "root": str(tmp_path / "data"), "image_size": 8})
    write_shapes(tmp_path / "flat", 5)
    bundle = build({"dataset": "image_folder", "root": str(tmp_path / "flat"), "image_size": 8, "val_split": 0.2,
                    "test_split": 0.2, "mode": "L"})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 3, 3) and bundle.input_shape == (1, 8, 8)
    held = [bundle.train.dataset.targets[i] for i in bundle.val.indices]
    assert sorted(held) == [0, 1, 2]  # stratified


def test_transforms_are_checked_against_the_declared_image_shape_in_the_first_pass():
    text = ("data:\n  dataset: image_folder\n  root: nowhere\n  image_size: 32\n  mode: L\n  transforms:\n"
            "    - center_crop: {size: 40}\n    - normalize: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\n"
            "    - color_jitter: {hue: 0.1}\n"
            "model:\n  layers: [flatten, {linear: {out_features: 2}}]\noptimizer: {type: sgd, lr: 0.1}\n")
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.yaml")
    msg = str(info.value)
    assert "c.yaml:8:19: data.transforms.1.normalize.mean: has 3 values; image_folder images have 1 channel(s)" in msg
    assert "c.yaml:9:22: data.transforms.2.color_jitter.hue: changes colour, but image_folder images have 1 " \
           "channel(s), not 3 (RGB)" in msg


def test_train_and_eval_transform_orders_must_agree(tmp_path):
    write_shapes(tmp_path / "pics", 2)
    base = {"dataset": "image_folder", "root": str(tmp_path / "pics"), "image_size": 16}
    ok = build({**base, "transforms": [{"random_resized_crop": {"size": 12}}, {"center_crop": {"size": 12}}]})
    x, _ = next(iter(ok.train_loader()))
    xe, _ = next(iter(ok.eval_loader("train")))
    assert ok.input_shape == (3, 12, 12) and x.shape[1:] == xe.shape[1:] == (3, 12, 12)
    with pytest.raises(ConfigError, match=r"data.transforms: the transforms give samples of 3x12x12 in the order "
                                          r"listed.*eval batches 3x16x16"):
        build({**base, "transforms": [{"random_resized_crop": {"size": 12}}]})
    later = build({**base, "transforms": [{"center_crop": {"size": 10}}, "random_resized_crop"]})
    x, _ = next(iter(later.train_loader()))
    assert later.input_shape == (3, 10, 10) and x.shape[1:] == (3, 10, 10)


def test_cached_folder_index_holds_the_bad_files(tmp_path):
    _bad_folder(tmp_path / "pics")
    with pytest.warns(DataWarning):
        ImageFolder(tmp_path / "pics", image_size=8, skip_bad_files=True)
    (copy,) = (tmp_path / "cache" / ".decoded").iterdir()
    index = json.loads((copy / "index.json").read_text())
    assert index["n"] == 12 and len(index["bad"]) == 3 and index["shape"] == [3, 8, 8]
