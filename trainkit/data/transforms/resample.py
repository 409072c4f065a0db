"""Vectorised image arithmetic behind the photo transforms: resampling weights, rotation, HSV.

Resizing is separable: an image (N, C, H, W) becomes ``Wy @ x @ Wx.T`` with
one weight matrix per axis (``Wy``: (out_h, H), ``Wx``: (out_w, W)), or one
pair per sample, (N, out, in), when every sample has its own crop box (random
resized crop). The weights are PyTorch's: ``F.interpolate(..., antialias=True)``
for bilinear and bicubic (the filter widened by the scale when shrinking, as
PIL does), its plain bilinear/bicubic without antialiasing, and its
``nearest`` (``floor(i * in / out)``). So a whole batch is resized by two
batched matrix products.

Rotation samples each output pixel at the inversely rotated position, as
torchvision's tensor ``rotate`` does through ``grid_sample`` (align_corners
False, zeros outside, then ``fill``); colour conversion to and from HSV follows
torchvision's tensor functions.
"""
from __future__ import annotations

import numpy as np

__all__ = ["axis_weights", "resample", "rotate", "rgb_to_hsv", "hsv_to_rgb", "grayscale"]

_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((x - 5.0) * x + 8.0) * x * a - 4.0 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _kernel(kind: str, x: np.ndarray, a: float = -0.5) -> np.ndarray:
    if kind == "bilinear":
        return np.clip(1.0 - np.abs(x), 0.0, None)
    return _cubic(x, a)


def axis_weights(in_size: int, out_size: int, start=None, length=None, kind: str = "bilinear",
                 antialias: bool = True) -> np.ndarray:
    """Resampling weights (N, out_size, in_size) taking ``[start, start + length)`` of an axis to ``out_size``.

    ``start`` and ``length`` are integer arrays (N,) (a crop box per sample);
    None means the whole axis for a single sample (N = 1).
    """
    start = np.zeros(1, np.int64) if start is None else np.asarray(start, np.int64)
    length = np.full(start.shape, in_size, np.int64) if length is None else np.asarray(length, np.int64)
    n = start.shape[0]
    scale = (length / out_size).astype(np.float64)[:, None, None]          # (N, 1, 1)
    i = np.arange(out_size, dtype=np.float64)[None, :, None]              # (1, out, 1)
    j = np.arange(in_size, dtype=np.int64)[None, None, :] - start[:, None, None]  # local index (N, 1, in)
    inside = (j >= 0) & (j < length[:, None, None])
    if kind == "nearest":
        # float32 as PyTorch computes it: 11 * (30 / 22) is 15 there, 14.999... in float64.
        scale32 = (length.astype(np.float32) / np.float32(out_size))[:, None, None]
        src = np.minimum(np.floor(i.astype(np.float32) * scale32), length[:, None, None] - 1)
        w = ((j == src) & inside).astype(np.float64)
        return w.astype(np.float32)
    if antialias:
        shrink = scale >= 1.0
        invscale = np.where(shrink, 1.0 / scale, 1.0)
        support = _SUPPORT[kind] * np.where(shrink, scale, 1.0)
        center = scale * (i + 0.5)
        lo = np.maximum(np.floor(center - support + 0.5), 0)
        hi = np.minimum(np.floor(center + support + 0.5), length[:, None, None])
        w = _kernel(kind, (j - center + 0.5) * invscale, -0.5) * ((j >= lo) & (j < hi) & inside)
    else:
        src = scale * (i + 0.5) - 0.5
        if kind == "bilinear":
            src = np.maximum(src, 0.0)
            i0 = np.floor(src)
            frac = src - i0
            hi_idx = np.minimum(i0 + 1, length[:, None, None] - 1)
            w = (j == i0) * (1.0 - frac) + (j == hi_idx) * frac
        else:  # PyTorch's bicubic (a = -0.75), taps beyond the edge clamped onto it
            i0 = np.floor(src)
            frac = src - i0
            w = np.zeros((n, out_size, in_size))
            last = length[:, None, None] - 1
            for k in (-1, 0, 1, 2):
                tap = np.clip(i0 + k, 0, last)
                w = w + (j == tap) * _cubic(frac - k, -0.75)
        w = w * inside
    total = w.sum(axis=2, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return w.astype(np.float32)


def resample(x: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """``wy @ x @ wx.T`` for a batch x (N, C, H, W); weights (out, in) shared or (N, out, in) per sample.

    uint8 input is computed in float32 and rounded back to uint8; float input stays float32.
    """
    xf = x.astype(np.float32, copy=False)
    if wy.ndim == 3:
        wy, wx = wy[:, None], wx[:, None]
    out = np.matmul(np.matmul(wy, xf), np.swapaxes(wx, -1, -2))
    if x.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def rotate(x: np.ndarray, angles: np.ndarray, interpolation: str = "nearest", fill=0.0,
           center: tuple[float, float] | None = None) -> np.ndarray:
    """Rotate each image of x (N, C, H, W) counter-clockwise by ``angles`` (N,) degrees, keeping its size.

    ``center`` is (x, y) in pixels (default: the image centre); positions that
    fall outside the image take ``fill`` (one value or one per channel).
    """
    n, c, h, w = x.shape
    if center is None:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    else:
        cx, cy = float(center[0]) - 0.5, float(center[1]) - 0.5
    theta = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None, None]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64) - cy, np.arange(w, dtype=np.float64) - cx, indexing="ij")
    cos, sin = np.cos(theta), np.sin(theta)
    sx = cos * xs - sin * ys + cx  # (N, H, W): where each output pixel comes from
    sy = sin * xs + cos * ys + cy
    flat = x.reshape(n, c, h * w)
    xf = flat.astype(np.float32, copy=False)
    fill_arr = np.broadcast_to(np.asarray(fill, dtype=np.float32).reshape(-1), (c,)).reshape(1, c, 1)

    def gather(iy, ix):
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        idx = (np.clip(iy, 0, h - 1) * w + np.clip(ix, 0, w - 1)).reshape(n, 1, h * w)
        return np.take_along_axis(xf, idx, axis=2), ok.reshape(n, 1, h * w)

    if interpolation == "nearest":
        vals, ok = gather(np.rint(sy).astype(np.int64), np.rint(sx).astype(np.int64))
        out = np.where(ok, vals, fill_arr)
    else:
        x0, y0 = np.floor(sx), np.floor(sy)
        fx, fy = (sx - x0).reshape(n, 1, -1), (sy - y0).reshape(n, 1, -1)
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        out = np.zeros((n, c, h * w), np.float32)
        mask = np.zeros((n, 1, h * w), np.float32)
        for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                           (1, 1, fy * fx)):
            vals, ok = gather(y0 + dy, x0 + dx)
            wt = (wt * ok).astype(np.float32)
            out += vals * wt
            mask += wt
        # torchvision samples a ones channel with the image and blends with it: img * mask + (1 - mask) * fill
        # (the zero-padded image is weighted by the mask once more).
        out = out * mask + (1.0 - mask) * fill_arr
    out = out.reshape(n, c, h, w)
    if x.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(x.dtype, copy=False) if x.dtype.kind == "f" else out


def grayscale(x: np.ndarray, integer: bool) -> np.ndarray:
    """ITU-R 601 luma (0.2989 R + 0.587 G + 0.114 B) of (..., 3, H, W) as (..., 1, H, W); truncated for uint8 data."""
    g = 0.2989 * x[..., 0:1, :, :] + 0.587 * x[..., 1:2, :, :] + 0.114 * x[..., 2:3, :, :]
    return np.floor(g) if integer else g


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> HSV, each in [0, 1] (torchvision's ``_rgb2hsv``)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, minc = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc)
    div = np.where(eqc, 1.0, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return np.stack((h, s, maxc), axis=1)


def hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) HSV -> RGB in [0, 1] (torchvision's ``_hsv2rgb``)."""
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int64) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    choices = [i == k for k in range(6)]
    r = np.select(choices, [v, q, p, p, t, v])
    g = np.select(choices, [t, v, v, q, p, p])
    b = np.select(choices, [p, p, t, v, v, q])
    return np.stack((r, g, b), axis=1)
