"""``pad`` and ``interpolate`` of ``trainkit.nn.functional`` (PyTorch's index and weight rules).

Non-constant padding and nearest resizing are index selections along each
dimension (gradients scatter-add back); linear resizing multiplies each
spatial dimension by its (out, in) interpolation matrix, whose two nonzeros
per row are PyTorch's weights, so the result equals PyTorch's two-tap
formula to rounding.
"""
from __future__ import annotations

import math

import numpy as np

from trainkit.autograd.ops import index as _index
from trainkit.autograd.ops import layout as _layout
from trainkit.autograd.ops.matmul import matmul
from trainkit.autograd.tensor import Tensor


def _pad_indices(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Source index of every output position of a dimension of size n padded by (lo, hi)."""
    j = np.arange(-lo, n + hi)
    if mode == "reflect":
        if lo >= n or hi >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({lo}, {hi}) at dimension of size {n}")
        j = np.abs(j)
        return np.where(j > n - 1, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if lo > n or hi > n:
        raise RuntimeError("Padding value causes wrapping around more than once.")
    return j % n  # circular


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:  # noqa: A002
    """Pad the last ``len(pad) // 2`` dimensions: ``pad = (left, right, top, bottom, ...)``, last dimension first.

    ``mode``: 'constant' (``value``, default 0; negative amounts crop),
    'reflect' (mirror without repeating the edge), 'replicate' (repeat the edge)
    or 'circular' (wrap around).
    """
    pads = [int(p) for p in pad]
    if mode == "constant":
        return _layout.constant_pad(input, pads, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value not in (None, 0, 0.0):
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument.")
    if len(pads) % 2 or len(pads) // 2 > input.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dimensions, "
                           f"got {len(pads)} for {input.ndim} dimensions")
    out = input
    for i in range(len(pads) // 2):
        d = input.ndim - 1 - i
        lo, hi = pads[2 * i], pads[2 * i + 1]
        if lo or hi:
            if lo < 0 or hi < 0:
                raise RuntimeError(f"negative padding is only supported in 'constant' mode, got ({lo}, {hi})")
            out = _index.index_select(out, d, _pad_indices(input.shape[d], lo, hi, mode))
    return out


def _output_size(input: Tensor, size, scale_factor) -> tuple:
    k = input.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = (size,) * k if isinstance(size, int) else tuple(int(s) for s in size)
        if len(sizes) != k:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {list(input.shape[2:])} and output size of {list(sizes)}. "
                             "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                             "(o1, o2, ...,oK) format.")
        return sizes, (None,) * k
    scales = (float(scale_factor),) * k if not isinstance(scale_factor, (tuple, list)) else \
        tuple(float(s) for s in scale_factor)
    if len(scales) != k:
        raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {list(input.shape[2:])} and scale_factor of shape "
                         f"{list(scales)}.")
    return tuple(int(math.floor(n * s)) for n, s in zip(input.shape[2:], scales)), scales


def _kernel_scale(n_in: int, n_out: int, scale) -> float:
    """PyTorch's ``compute_scales_value``: 1/scale_factor when one was given, else in/out (in float32)."""
    if scale is not None and scale > 0:
        return float(np.float32(1.0 / scale))
    return float(np.float32(n_in) / np.float32(n_out))


def _nearest_indices(n_in: int, n_out: int, scale, exact: bool) -> np.ndarray:
    if n_out == n_in and not exact:
        return np.arange(n_out)
    if n_out == 2 * n_in and not exact:
        return np.arange(n_out) >> 1
    s = np.float32(_kernel_scale(n_in, n_out, scale))
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s if exact else dst * s)  # float32 arithmetic, as ATen's floorf
    return np.minimum(src.astype(np.int64), n_in - 1)


def _linear_matrix(n_in: int, n_out: int, scale, align_corners: bool, dtype) -> np.ndarray:
    """The (n_out, n_in) matrix of PyTorch's two-tap linear interpolation weights."""
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = s * np.arange(n_out, dtype=np.float64)
    else:
        s = (1.0 / scale) if scale is not None and scale > 0 else n_in / n_out
        src = np.maximum(s * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = np.clip(src - i0, 0.0, 1.0)
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - l1)
    np.add.at(m, (rows, i1), l1)
    return m.astype(dtype)


_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize the spatial dimensions of (N, C, d1, ...) input to ``size`` or by ``scale_factor``.

    Modes: 'nearest', 'nearest-exact', and 'linear'/'bilinear'/'trilinear' for
    3-/4-/5-D input (``align_corners`` as in PyTorch, default False).
    ``recompute_scale_factor=True`` derives the weights from the output size
    instead of the given scale factor.
    """
    if input.ndim < 3:
        raise ValueError(f"interpolate expects (N, C, d1, ...) input with at least one spatial dimension, "
                         f"got {input.ndim}-D")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by trainkit")
    if mode in ("nearest", "nearest-exact") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    sizes, scales = _output_size(input, size, scale_factor)
    if recompute_scale_factor:
        scales = (None,) * len(sizes)
    out = input
    if mode in ("nearest", "nearest-exact"):
        for i, (n_out, sc) in enumerate(zip(sizes, scales)):
            d = 2 + i
            idx = _nearest_indices(input.shape[d], n_out, sc, mode == "nearest-exact")
            out = _index.index_select(out, d, idx)
        return out
    if mode not in _LINEAR:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  "bilinear, trilinear are)")
    if _LINEAR[mode] != input.ndim - 2:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {_LINEAR[mode] + 2}D input")
    if input.dtype.kind != "f":
        raise RuntimeError(f"\"upsample_{mode}\" not implemented for '{input.dtype}'")
    # Last dimension first (x @ Aᵀ), then each earlier one (A @ x over the last two axes): the order
    # in which PyTorch's kernel combines the taps.
    for i in reversed(range(len(sizes))):
        d = 2 + i
        a = Tensor(_linear_matrix(input.shape[d], sizes[i], scales[i], bool(align_corners), input.dtype))
        if d == out.ndim - 1:
            out = matmul(out, a.T)
        elif d == out.ndim - 2:
            out = matmul(a, out)
        else:
            moved = _layout.movedim(out, d, -2)
            out = _layout.movedim(matmul(a, moved), -2, d)
    return out
