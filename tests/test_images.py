"""Decoding image files (trainkit/data/images.py): modes, the resize policies, and every kind of bad file."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagedata import draw_shape, image_bytes, png_bytes, truncated_jpeg
from trainkit.data.images import BadImage, ImageSpec, decode_image
from trainkit.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
RGB8 = ImageSpec("RGB", (8, 8))


@pytest.fixture(scope="session")
def bomb(tmp_path_factory) -> Path:
    """A valid 20,000 x 20,000 grey PNG: 1.7 MB on disk, 400 million pixels."""
    path = tmp_path_factory.mktemp("bomb") / "huge.png"
    path.write_bytes(png_bytes(20_000, 20_000, level=1))
    return path


def _write(path: Path, im: Image.Image, fmt: str, **kw) -> Path:
    path.write_bytes(image_bytes(im, fmt, **kw))
    return path


def test_modes_convert_as_torchvision_pil_loader_does(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    spec = ImageSpec("RGB", (6, 5))
    np.testing.assert_array_equal(decode_image(_write(tmp_path / "a.png", im, "PNG"), spec), rgb.transpose(2, 0, 1))
    grey = decode_image(_write(tmp_path / "a.bmp", im, "BMP"), ImageSpec("L", (6, 5)))
    assert grey.shape == (1, 6, 5)
    np.testing.assert_array_equal(grey[0], np.asarray(im.convert("L")))
    rgba = Image.fromarray(np.dstack([rgb, np.full((6, 5), 7, np.uint8)]))
    np.testing.assert_array_equal(decode_image(_write(tmp_path / "b.png", rgba, "PNG"), spec), rgb.transpose(2, 0, 1))
    pal = im.convert("P")
    np.testing.assert_array_equal(decode_image(_write(tmp_path / "p.png", pal, "PNG"), spec),
                                  np.asarray(pal.convert("RGB")).transpose(2, 0, 1))
    webp = decode_image(_write(tmp_path / "w.webp", im, "WEBP", lossless=True), spec)
    np.testing.assert_array_equal(webp, rgb.transpose(2, 0, 1))


def test_fit_policies_crop_stretch_and_pad(tmp_path):
    # A 40x20 (w x h) picture: left half red, right half blue, a green column in the middle.
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20, 0] = 255
    a[:, 20:, 2] = 255
    path = _write(tmp_path / "wide.png", Image.fromarray(a), "PNG")
    crop = decode_image(path, ImageSpec("RGB", (10, 10), "crop"))
    stretch = decode_image(path, ImageSpec("RGB", (10, 10), "stretch"))
    pad = decode_image(path, ImageSpec("RGB", (10, 10), "pad"))
    # crop keeps the middle 20x20 (scaled to 10x10): half red, half blue, no distortion.
    assert crop[0, :, :4].min() == 255 and crop[2, :, 6:].min() == 255
    np.testing.assert_array_equal(crop, np.asarray(Image.fromarray(a[:, 10:30]).resize((10, 10), Image.BILINEAR))
                                  .transpose(2, 0, 1))
    np.testing.assert_array_equal(stretch, np.asarray(Image.fromarray(a).resize((10, 10), Image.BILINEAR))
                                  .transpose(2, 0, 1))
    # pad: the picture becomes 10x5 in the middle rows, black above and below.
    assert pad[:, :2].max() == 0 and pad[:, 8:].max() == 0 and pad[0, 4, 0] == 255


def test_big_jpegs_decode_through_draft_and_stay_deterministic(tmp_path):
    im = draw_shape("square", np.random.default_rng(3), size=400)
    path = _write(tmp_path / "big.jpg", im, "JPEG", quality=90)
    spec = ImageSpec("RGB", (32, 32))
    a, b = decode_image(path, spec), decode_image(path, spec)
    np.testing.assert_array_equal(a, b)
    full = np.asarray(im.resize((32, 32), Image.BILINEAR, box=_crop_box(im.size)), dtype=np.float64)
    assert np.abs(a.transpose(1, 2, 0) - full).mean() < 12  # the reduced decode is close to the full one


def _crop_box(size):
    w, h = size
    s = min(w, h)
    return ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)


def test_fixed_size_spec_refuses_other_sizes_and_channels(tmp_path):
    spec = ImageSpec("L", (8, 8), fit=None)
    grey = _write(tmp_path / "g.png", Image.new("L", (8, 8), 9), "PNG")
    assert decode_image(grey, spec).shape == (1, 8, 8)
    with pytest.raises(BadImage, match=r"16x8 image .*takes 8x8 grey \(1-channel\) images"):
        decode_image(_write(tmp_path / "w.png", Image.new("L", (16, 8)), "PNG"), spec)
    with pytest.raises(BadImage, match=r"3-channel \(RGB\) image; the model takes 8x8 grey \(1-channel\)"):
        decode_image(_write(tmp_path / "c.png", Image.new("RGB", (8, 8)), "PNG"), spec)


@pytest.mark.parametrize("kind", ["truncated jpeg", "text named png", "16-bit", "cmyk", "empty", "gif", "folder"])
def test_bad_files_name_themselves(tmp_path, kind):
    path = tmp_path / "x.png"
    if kind == "truncated jpeg":
        path = tmp_path / "x.jpg"
        path.write_bytes(truncated_jpeg())
        match = "truncated or corrupt image"
    elif kind == "text named png":
        path.write_text("just some notes, not a picture\n")
        match = r"not an image \(PNG, JPEG, BMP or WebP\)"
    elif kind == "16-bit":
        _write(path, Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 900), "PNG")
        match = r"16-bit grey image \(mode I;16\); convert it to 8-bit grey \(L\) or RGB first"
    elif kind == "cmyk":
        path = _write(tmp_path / "x.jpg", Image.new("CMYK", (8, 8)), "JPEG")
        match = r"CMYK image \(mode CMYK\); convert it to RGB first"
    elif kind == "empty":
        path.write_bytes(b"")
        match = "empty file"
    elif kind == "gif":  # a real image, but not one of the formats an image folder reads
        path = _write(tmp_path / "x.png", Image.new("RGB", (8, 8)), "GIF")
        match = "not an image"
    else:
        path.mkdir()
        match = "is a directory, not a regular file"
    with pytest.raises(DataError, match=match) as info:
        decode_image(path, RGB8)
    assert str(info.value).startswith(str(path))


def test_a_20000_by_20000_png_is_refused_from_its_header(bomb):
    with pytest.raises(BadImage, match="400,000,000 pixels|400000000 pixels") as info:
        decode_image(bomb, RGB8)
    assert "decompression bomb" in str(info.value) and str(info.value).startswith(str(bomb))


def test_the_bomb_never_allocates_its_pixels(bomb, tmp_path):
    """Peak memory of a process asked to decode it stays far below the 400 MB its pixels would take."""
    # VmHWM, not ru_maxrss: Linux keeps in ru_maxrss the peak of the memory an exec replaced, which for
    # a process started from a large pytest worker is the worker's (the difference would then be 0).
    code = ("import sys; from pathlib import Path\n"
            "from trainkit.data.images import decode_image, ImageSpec, BadImage\n"
            "hwm = lambda: int(next(ln for ln in Path('/proc/self/status').read_text().splitlines()"
            " if ln.startswith('VmHWM:')).split()[1])\n"
            "base = hwm()\n"
            "try:\n    decode_image(sys.argv[1], ImageSpec('RGB', (8, 8)))\nexcept BadImage:\n    pass\n"
            "print(base, hwm())")
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    base, peak = map(int, out.stdout.split())
    assert peak - base < 50_000, (base, peak)  # KiB: under 50 MB more than the bare imports


def test_pixel_limit_follows_pillow_setting(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.png", Image.new("RGB", (30, 30)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 800)
    with pytest.raises(BadImage, match="900 pixels.* limit of 800"):
        decode_image(path, RGB8)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_corrupted_files_decode_or_fail_cleanly(tmp_path_factory, data):
    """Random byte damage to a PNG, JPEG, BMP or WebP: either pixels of the right shape or a BadImage."""
    fmt = data.draw(st.sampled_from(["PNG", "JPEG", "BMP", "WEBP"]))
    im = draw_shape("triangle", np.random.default_rng(data.draw(st.integers(0, 5))), size=24)
    raw = bytearray(image_bytes(im, fmt))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(raw)))
    path = tmp_path_factory.mktemp("fuzz") / f"x.{fmt.lower()}"
    path.write_bytes(bytes(raw[:cut]))
    try:
        out = decode_image(path, ImageSpec("RGB", (12, 12)))
    except BadImage as exc:
        assert str(exc).startswith(str(path))
    else:
        assert out.shape == (3, 12, 12) and out.dtype == np.uint8
