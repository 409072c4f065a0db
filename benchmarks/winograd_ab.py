"""A/B of Winograd F(2x2, 3x3) against trainkit's im2col conv2d forward (a measured lever that lost).

Run as ``python benchmarks/winograd_ab.py`` (one thread; CPU time of each call,
median of 9). For each 3x3, stride-1, padding-1 shape of the benchmark's
residual nets it prints the Winograd forward's time, the engine's conv2d
forward time, and the Winograd result's largest error relative to a float64
direct convolution. The transforms are numpy passes over 4x4 input tiles and
4x4 product tiles (Lavin & Gray's B, G, A matrices); they cost more than the
2.25x fewer multiply-adds save, which is why the engine does not use it.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit  # noqa: E402
from trainkit.autograd.ops.conv import Conv2d  # noqa: E402

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """U = G g Gᵀ for every (out, in) channel pair, as 16 (O, C) matrices."""
    u = np.einsum("ai,ocij,bj->aboc", G, w.astype(np.float64), G)
    return u.reshape(16, w.shape[0], w.shape[1]).astype(w.dtype)


def winograd_forward(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """3x3 stride-1 padding-1 cross-correlation of x (N, C, H, W), H and W even, by F(2x2, 3x3)."""
    n, c, h, w = x.shape
    th, tw = h // 2, w // 2
    xp = np.zeros((n, c, h + 2, w + 2), x.dtype)
    xp[:, :, 1:-1, 1:-1] = x
    s = xp.strides
    # d[i]: tile row i of every 4x4 input tile, (N, C, th, tw, 4 columns)
    d = [as_strided(xp[:, :, i:], (n, c, th, tw, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[3])) for i in range(4)]
    rows = [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]  # Bᵀ d
    v = np.empty((4, 4, c, n, th, tw), x.dtype)
    for a, t in enumerate(rows):  # (Bᵀ d) B, laid out for one (O, C) @ (C, tiles) product per entry
        v[a, 0] = (t[..., 0] - t[..., 2]).transpose(1, 0, 2, 3)
        v[a, 1] = (t[..., 1] + t[..., 2]).transpose(1, 0, 2, 3)
        v[a, 2] = (t[..., 2] - t[..., 1]).transpose(1, 0, 2, 3)
        v[a, 3] = (t[..., 1] - t[..., 3]).transpose(1, 0, 2, 3)
    m = np.matmul(u, v.reshape(16, c, n * th * tw)).reshape(4, 4, -1, n, th, tw)
    s0, s1 = m[0] + m[1] + m[2], m[1] - m[2] - m[3]  # Aᵀ m
    y = np.empty((n, u.shape[1], h, w), x.dtype)
    for r, sr in enumerate((s0, s1)):  # (Aᵀ m) A
        y[:, :, r::2, 0::2] = (sr[0] + sr[1] + sr[2]).transpose(1, 0, 2, 3)
        y[:, :, r::2, 1::2] = (sr[1] - sr[2] - sr[3]).transpose(1, 0, 2, 3)
    return y


def _median_ms(f, repeats: int = 9) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        f()
        times.append(time.thread_time() - t0)
    return 1e3 * float(np.median(times))


def main() -> int:
    trainkit.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("shape (N, C, O, H)      winograd ms   im2col ms   max |error| / max |y|")
    for n, c, o, h in [(64, 16, 16, 16), (64, 32, 32, 8), (64, 64, 64, 8), (128, 16, 16, 32), (64, 64, 64, 16)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c, 3, 3)) * 0.2).astype(np.float32)
        u = winograd_weights(w)
        ref = Conv2d(1, 1).forward(x.astype(np.float64), w.astype(np.float64))
        err = np.abs(winograd_forward(x, u) - ref).max() / np.abs(ref).max()
        tw = _median_ms(lambda: winograd_forward(x, u))
        td = _median_ms(lambda: Conv2d(1, 1).forward(x, w))
        print(f"{(n, c, o, h)!s:22} {tw:11.2f} {td:11.2f}   {err:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
