"""Photo transforms: PyTorch's resampling and rotation as the oracle, torchvision's rules, batches and samples."""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagedata import write_shapes
from trainkit.autograd.tensor import Tensor
from trainkit.data import build
from trainkit.data import transforms as T
from trainkit.data.transforms.resample import axis_weights, resample
from trainkit.errors import ConfigError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _torch():
    return pytest.importorskip("torch")


# ----------------------------------------------------------------------------- Resize
@FAST
@given(h=st.integers(2, 40), w=st.integers(2, 40), th=st.integers(1, 50), tw=st.integers(1, 50),
       kind=st.sampled_from(["bilinear", "bicubic", "nearest"]), antialias=st.booleans(), seed=st.integers(0, 99))
def test_resize_matches_torch_interpolate(h, w, th, tw, kind, antialias, seed):
    torch = _torch()
    if antialias and kind != "nearest" and 1 in (th, tw):
        # torch 2.13's antialiased kernels return the first row/column alone when the other side's output
        # is 1 wide (interpolate([[1], [2]] -> (3, 1)) gives [1, 1, 1]); trainkit interpolates as usual.
        th, tw = max(th, 2), max(tw, 2)
    x = np.random.default_rng(seed).random((2, 3, h, w), dtype=np.float32)
    ours = T.Resize([th, tw], interpolation=kind, antialias=antialias).apply_batch(x)
    kw = {} if kind == "nearest" else {"align_corners": False, "antialias": antialias}
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(th, tw), mode=kind, **kw).numpy()
    assert ours.dtype == np.float32 and ours.shape == (2, 3, th, tw)
    np.testing.assert_allclose(ours, ref, atol=2e-5, rtol=1e-5)


def test_resize_int_matches_the_shorter_side_and_max_size():
    assert T.Resize(20).apply_batch(np.zeros((1, 3, 30, 40), np.uint8)).shape == (1, 3, 20, 26)
    assert T.Resize(20).apply_batch(np.zeros((1, 1, 50, 30), np.float32)).shape == (1, 1, 33, 20)
    assert T.Resize(20, max_size=24).apply_batch(np.zeros((1, 3, 30, 40), np.uint8)).shape == (1, 3, 18, 24)
    with pytest.raises(ValueError, match="max_size = 20 must be strictly greater"):
        T.Resize(20, max_size=20).apply_batch(np.zeros((1, 3, 30, 40), np.uint8))


def test_resize_keeps_uint8_within_one_of_the_float_result():
    torch = _torch()
    x = np.random.default_rng(1).integers(0, 256, (3, 3, 33, 17), dtype=np.uint8)
    out = T.Resize([12, 40]).apply_batch(x)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x.astype(np.float32)), size=(12, 40), mode="bilinear",
                                          antialias=True, align_corners=False).numpy()
    assert out.dtype == np.uint8 and np.abs(out.astype(np.float64) - np.clip(np.rint(ref), 0, 255)).max() <= 1


def test_single_samples_pil_images_and_tensors():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    out = T.Resize(10)(im)
    assert isinstance(out, np.ndarray) and out.shape == (3, 10, 15) and out.dtype == np.uint8
    t = T.Compose([T.Resize(10), T.CenterCrop(8), T.ToTensor()])(im)
    assert isinstance(t, Tensor) and tuple(t.shape) == (3, 8, 8) and float(t.max()) <= 1.0
    grey = T.CenterCrop(4)(Tensor(np.arange(36, dtype=np.float32).reshape(1, 6, 6)))
    assert isinstance(grey, Tensor) and grey.numpy()[0, 0].tolist() == [7, 8, 9, 10]
    assert T.InterpolationMode.BICUBIC.value == "bicubic" and T.Resize(4, T.InterpolationMode.NEAREST)


# ----------------------------------------------------------------------------- CenterCrop
def test_center_crop_rounds_as_torchvision_and_pads_small_images():
    x = np.arange(11 * 9, dtype=np.float32).reshape(1, 1, 11, 9)
    out = T.CenterCrop([4, 4]).apply_batch(x)
    # top = round(3.5) = 4 (half to even), left = round(2.5) = 2
    np.testing.assert_array_equal(out[0, 0], x[0, 0, 4:8, 2:6])
    small = T.CenterCrop(6).apply_batch(np.ones((2, 3, 3, 4), np.uint8))
    assert small.shape == (2, 3, 6, 6) and small.dtype == np.uint8
    assert small[0, 0].sum() == 12 and small[0, 0, 0].sum() == 0 and small[0, 0, :, 0].sum() == 0


# ----------------------------------------------------------------------------- RandomResizedCrop
def test_random_resized_crop_each_sample_is_torch_resize_of_its_own_box():
    torch = _torch()
    x = np.random.default_rng(0).random((6, 3, 40, 30), dtype=np.float32)
    t = T.RandomResizedCrop([16, 12], scale=(0.2, 0.9))
    out = t.apply_batch(x, np.random.default_rng(7))
    top, left, bh, bw = t.boxes(6, 40, 30, np.random.default_rng(7))
    assert len(set(zip(top.tolist(), left.tolist(), bh.tolist()))) > 1  # every sample its own box
    for i in range(6):
        assert 0 <= top[i] and top[i] + bh[i] <= 40 and 0 <= left[i] and left[i] + bw[i] <= 30
        crop = torch.from_numpy(x[i:i + 1, :, top[i]:top[i] + bh[i], left[i]:left[i] + bw[i]].copy())
        ref = torch.nn.functional.interpolate(crop, size=(16, 12), mode="bilinear", antialias=True,
                                              align_corners=False).numpy()
        np.testing.assert_allclose(out[i:i + 1], ref, atol=2e-5)


def test_random_resized_crop_box_rule():
    t = T.RandomResizedCrop(8, scale=(0.5, 0.5), ratio=(1.0, 1.0))
    top, left, bh, bw = t.boxes(200, 20, 20, np.random.default_rng(0))
    assert set(bh.tolist()) == {14} and set(bw.tolist()) == {14}  # round(sqrt(200)) = 14
    assert top.min() == 0 and top.max() == 6 and left.max() == 6
    # No try can fit a 3:1 box of the whole area in a square: the central box with the ratio clamped.
    t = T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(3.0, 4.0))
    top, left, bh, bw = t.boxes(4, 30, 30, np.random.default_rng(0))
    assert bw.tolist() == [30] * 4 and bh.tolist() == [10] * 4 and top.tolist() == [10] * 4


def test_random_resized_crop_is_reproducible_and_keeps_size_without_one():
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 24, 24), dtype=np.uint8)
    t = T.RandomResizedCrop(None)
    a, b = t.apply_batch(x, np.random.default_rng(3)), t.apply_batch(x, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == np.uint8 and not np.array_equal(a, x)


# ----------------------------------------------------------------------------- RandomRotation
def _torchvision_rotate(torch, img, angle, mode, fill):
    """torchvision's tensor rotate (inverse affine grid + grid_sample + fill mask), written out in torch."""
    n, c, h, w = img.shape
    a = math.radians(-angle)
    theta = torch.tensor([math.cos(a), math.sin(a), 0.0, -math.sin(a), math.cos(a), 0.0]).reshape(1, 2, 3)
    base = torch.empty(1, h, w, 3)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h).unsqueeze(-1))
    base[..., 2].fill_(1)
    grid = base.view(1, h * w, 3).bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h]))
    grid = grid.view(1, h, w, 2).expand(n, h, w, 2)
    t = torch.cat([torch.from_numpy(img), torch.ones(n, 1, h, w)], 1)
    out = torch.nn.functional.grid_sample(t, grid, mode=mode, padding_mode="zeros", align_corners=False)
    mask, out = out[:, -1:], out[:, :-1]
    fill_img = torch.tensor(fill, dtype=torch.float32).view(1, -1, 1, 1).expand_as(out)
    if mode == "nearest":
        m = (mask < 0.5).expand_as(out)
        out = out.clone()
        out[m] = fill_img[m]
    else:
        out = out * mask + (1 - mask) * fill_img
    return out.numpy()


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_random_rotation_matches_torchvision_grid_sample(mode):
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 17, 22), dtype=np.float32)
    t = T.RandomRotation([-170, 170], interpolation=mode, fill=[0.1, 0.5, 0.9])
    out = t.apply_batch(x, np.random.default_rng(5))
    angles = np.random.default_rng(5).uniform(-170, 170, 4)
    for i in range(4):
        ref = _torchvision_rotate(torch, x[i:i + 1], float(angles[i]), mode, [0.1, 0.5, 0.9])
        # nearest may round a coordinate that falls exactly between two pixels the other way
        close = np.isclose(out[i:i + 1], ref, atol=2e-5)
        assert close.mean() > (0.995 if mode == "nearest" else 0.9999), (i, close.mean())


def test_rotation_by_90_degrees_turns_a_square_image_counter_clockwise():
    x = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    out = T.RandomRotation([90, 90]).apply_batch(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, 0], np.rot90(x[0, 0]))
    with pytest.raises(ValueError, match=r"expand=True\) gives each image its own size"):
        T.RandomRotation(10, expand=True)


# ----------------------------------------------------------------------------- ColorJitter
def test_brightness_factor_per_sample_and_uint8_truncation():
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 5, 5), dtype=np.uint8)
    out = T.ColorJitter(brightness=0.5).apply_batch(x, np.random.default_rng(2))
    rng = np.random.default_rng(2)
    rng.random((6, 4))  # the order draw
    f = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    expected = np.floor(np.clip(f[:, None, None, None] * x.astype(np.float32), 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert len(set(np.round(f, 6).tolist())) == 6


def test_hue_shift_agrees_with_colorsys():
    x = np.random.default_rng(1).random((2, 3, 4, 4)).astype(np.float32)
    out = T.ColorJitter(hue=(0.2, 0.2)).apply_batch(x, np.random.default_rng(0))
    for n in range(2):
        for i in range(4):
            for j in range(4):
                h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].astype(np.float64))
                ref = colorsys.hsv_to_rgb((h + 0.2) % 1.0, s, v)
                np.testing.assert_allclose(out[n, :, i, j], ref, atol=1e-5)


def test_saturation_and_contrast_zero_give_grey_and_flat_images():
    x = np.random.default_rng(2).random((3, 3, 6, 6)).astype(np.float32)
    grey = T.ColorJitter(saturation=(0, 0)).apply_batch(x, np.random.default_rng(0))
    luma = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        np.testing.assert_allclose(grey[:, c], luma, atol=1e-6)
    flat = T.ColorJitter(contrast=(0, 0)).apply_batch(x, np.random.default_rng(0))
    np.testing.assert_allclose(flat, np.broadcast_to(luma.mean(axis=(1, 2))[:, None, None, None], x.shape), atol=1e-6)


def test_jitter_of_grey_images_leaves_colour_alone_and_all_four_mix():
    g = np.random.default_rng(3).random((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(T.ColorJitter(saturation=0.9, hue=0.4).apply_batch(g, np.random.default_rng(0)), g)
    x = np.random.default_rng(4).integers(0, 256, (8, 3, 6, 6), dtype=np.uint8)
    t = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    a, b = t.apply_batch(x, np.random.default_rng(9)), t.apply_batch(x, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and not np.array_equal(a, x)
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.7)


# ----------------------------------------------------------------------------- in a config
def test_photo_transforms_in_a_config_train_batches_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA", str(tmp_path / "cache"))
    write_shapes(tmp_path / "pics", 6)
    spec = {"dataset": "image_folder", "root": str(tmp_path / "pics"), "image_size": 20, "batch_size": 8,
            "transforms": [{"random_resized_crop": {"scale": [0.5, 1.0]}}, {"color_jitter": {"brightness": 0.3}},
                           {"random_rotation": {"degrees": 15}}, {"resize": {"size": 16}},
                           {"center_crop": {"size": 14}}, "normalize"]}
    bundle = build(spec)
    assert bundle.input_shape == (3, 14, 14)
    train = [x.numpy() for x, _ in bundle.train_loader()]
    again = [x.numpy() for x, _ in build(spec).train_loader()]
    assert all(np.array_equal(a, b) for a, b in zip(train, again)) and train[0].shape == (8, 3, 14, 14)
    e1 = next(iter(bundle.eval_loader("train")))[0].numpy()
    e2 = next(iter(bundle.eval_loader("train")))[0].numpy()
    np.testing.assert_array_equal(e1, e2)  # evaluation: deterministic transforms only
    assert [type(t).__name__ for t in bundle.eval_transform.transforms] == ["ToTensor", "Resize", "CenterCrop",
                                                                          "Normalize"]


@pytest.mark.parametrize("transform, message", [
    ({"random_resized_crop": {"scale": [0.9, 0.1]}}, "scale: must be [min, max] with min <= max"),
    ({"random_resized_crop": {"scale": [0.5, 2.0]}}, "share of the image's area, at most 1"),
    ({"color_jitter": {"brightness": [1.5, 0.5]}}, "brightness: must be [min, max] with min <= max"),
    ({"color_jitter": {"hue": 0.6}}, "hue: must be in [0, 0.5]"),
    ({"resize": {"size": 10, "max_size": 8}}, "max_size 8 must be greater than size 10"),
    ({"random_rotation": {"degrees": 10, "fill": [1, 2]}}, "fill: has 2 values; image_folder images have 3"),
    ({"random_rotation": {"degrees": 10, "expand": True}}, "unknown key 'expand'"),
])
def test_photo_transform_arguments_are_checked(tmp_path, transform, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build({"dataset": "image_folder", "root": str(tmp_path), "image_size": 16, "transforms": [transform]})


def test_axis_weights_rows_sum_to_one():
    for kind in ("bilinear", "bicubic", "nearest"):
        w = axis_weights(37, 11, np.array([0, 5]), np.array([37, 20]), kind, True)
        np.testing.assert_allclose(w.sum(axis=2), 1.0, atol=1e-6)
        assert (w[1, :, :5] == 0).all() and (w[1, :, 25:] == 0).all()  # nothing outside the box
    x = np.ones((1, 2, 37, 9), np.uint8) * 200
    assert (resample(x, axis_weights(37, 5)[0], axis_weights(9, 3)[0]) == 200).all()
