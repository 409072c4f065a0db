"""torchvision.utils' image helpers: ``make_grid`` and ``save_image``.

Same arguments and the same pixels as torchvision: single-channel images are
repeated to RGB, images are tiled ``nrow`` per row with ``padding`` pixels of
``pad_value`` between them, and ``save_image`` rounds ``x * 255 + 0.5`` down
into uint8 before writing the file with Pillow (which matplotlib, a trainkit
dependency, already requires).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from trainkit.autograd.tensor import Tensor

__all__ = ["make_grid", "save_image"]


def _as_batch(tensor) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor.detach().numpy()
    if isinstance(tensor, list) and tensor and all(isinstance(t, Tensor) for t in tensor):
        return np.stack([t.detach().numpy() for t in tensor])
    raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")


def make_grid(tensor: Tensor | list[Tensor], nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False, pad_value: float = 0,
              **kwargs: Any) -> Tensor:
    """Tile a ``(B, C, H, W)`` batch (or a list of ``(C, H, W)`` images) into one ``(C, H', W')`` image.

    Args:
        tensor: a 4-D batch, a single ``(C, H, W)``/``(H, W)`` image, or a list of same-sized images.
        nrow: images per row; the grid has ``ceil(B / nrow)`` rows.
        padding: pixels between images and around the border.
        normalize: shift and scale to [0, 1] using ``value_range`` (default: the tensor's min and max).
        value_range: ``(min, max)`` used by ``normalize``; values outside are clamped.
        scale_each: with ``normalize``, use each image's own min and max.
        pad_value: value of the padding pixels.

    A single-channel input becomes three identical channels; a batch of one
    image is returned as that image (no padding), as torchvision does.
    """
    if "range" in kwargs:
        warnings.warn("range will be deprecated, please use value_range instead.", stacklevel=2)
        value_range = kwargs["range"]
    arr = _as_batch(tensor)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        if arr.shape[0] == 1:
            arr = np.concatenate([arr] * 3, 0)
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = np.concatenate([arr] * 3, 1)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        arr = arr.copy()
        for img in (arr if scale_each else [arr]):
            low, high = value_range if value_range is not None else (float(img.min()), float(img.max()))
            np.clip(img, low, high, out=img)
            img -= np.asarray(low, dtype=img.dtype)
            img /= np.asarray(max(high - low, 1e-5), dtype=img.dtype)
    if arr.shape[0] == 1:
        return Tensor(np.ascontiguousarray(arr[0]))
    nmaps, channels = arr.shape[0], arr.shape[1]
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(nmaps / xmaps))
    height, width = arr.shape[2] + padding, arr.shape[3] + padding
    grid = np.full((channels, height * ymaps + padding, width * xmaps + padding), pad_value, dtype=arr.dtype)
    for k in range(nmaps):
        y, x = divmod(k, xmaps)
        grid[:, y * height + padding:(y + 1) * height, x * width + padding:(x + 1) * width] = arr[k]
    return Tensor(grid)


def save_image(tensor: Tensor | list[Tensor], fp, format: str | None = None, **kwargs: Any) -> None:  # noqa: A002
    """Write ``tensor`` (values in [0, 1]) as an image file; a batch is tiled by :func:`make_grid`.

    Args:
        tensor: as for :func:`make_grid`.
        fp: a path or a writable binary file object.
        format: the image format (e.g. ``'png'``); needed for a file object, otherwise taken from the suffix.
        **kwargs: :func:`make_grid`'s arguments (``nrow``, ``padding``, ``normalize``, ...).
    """
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("save_image needs Pillow (pip install pillow)") from err
    grid = make_grid(tensor, **kwargs).numpy()
    # In the grid's own precision (numpy keeps float32 with Python scalars), as torch computes it.
    ndarr = np.clip(grid * 255 + 0.5, 0, 255).transpose(1, 2, 0).astype(np.uint8)
    Image.fromarray(ndarr).save(fp, format=format)
