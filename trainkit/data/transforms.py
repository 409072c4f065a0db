"""Transforms that work on one sample and on a whole batch.

Every transform has two entry points:

* ``t(x, rng=None)`` for one sample (an image CHW/HWC, or a feature vector);
* ``t.apply_batch(x, rng=None)`` for a batch (N, ...), used by the DataLoader
  so that a batch is transformed with a few vectorised numpy calls.

Random transforms draw from the ``rng`` passed in (the DataLoader passes a
generator derived from its own, which is what makes an epoch reproducible on
resume) or, when called alone, from their own generator seeded by ``seed``.
Transforms never modify their input in place: a sample from a dataset may be a
view of the dataset's memory.

Batch outputs are numpy arrays; the DataLoader wraps the batch in trainkit
Tensors. Per sample they follow torchvision: ``ToTensor()`` returns a trainkit
Tensor, and the other transforms return a Tensor for a Tensor (an array for an
array), so ``Compose([ToTensor(), Normalize(...), Lambda(torch.flatten)])``
works on single samples as it does with torchvision. ``Lambda`` and plain
callables run per sample inside a batch too; they receive each sample as a
Tensor once the batch is floating point (after ``ToTensor``), else as an array.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .dataset import as_array

__all__ = ["Transform", "Compose", "ToTensor", "Normalize", "Lambda", "RandomCrop", "RandomHorizontalFlip",
           "TRANSFORMS", "TRANSFORM_ARGS"]


def _tensor_cls():
    from trainkit.autograd.tensor import Tensor

    return Tensor


def _per_sample(fn: Any, x: np.ndarray) -> np.ndarray:
    """Run a per-sample callable over a batch: items as Tensors once the batch is floating point."""
    Tensor = _tensor_cls() if x.dtype.kind in "fc" else None
    return np.stack([as_array(fn(Tensor(item) if Tensor is not None else item)) for item in x])


class Transform:
    """Base class: subclasses implement :meth:`apply_batch`; single samples go through it too."""

    #: True for transforms that draw random numbers (used only for training).
    random: bool = False
    #: Arguments accepted in a YAML config: name -> description (the schema reads this).
    config_args: dict[str, str] = {}

    def __call__(self, x: Any, rng: np.random.Generator | None = None):
        """Transform one sample (no batch axis): a Tensor for a Tensor, an array otherwise."""
        out = self.apply_batch(as_array(x)[None], rng)[0]
        Tensor = _tensor_cls()
        return Tensor(out) if isinstance(x, Tensor) else out

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Transform a batch whose first axis is the sample axis."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _RandomTransform(Transform):
    """A transform with its own fallback generator, used when no ``rng`` is passed."""

    random = True

    def __init__(self, seed: int | None = None):
        self.generator = np.random.default_rng(seed)

    def _rng(self, rng: np.random.Generator | None) -> np.random.Generator:
        return self.generator if rng is None else rng


class Compose(Transform):
    """Apply ``transforms`` in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, x: Any, rng: np.random.Generator | None = None):
        for t in self.transforms:
            x = t(x, rng=rng) if isinstance(t, Transform) else t(x)
        return x

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            if isinstance(t, Transform):
                x = t.apply_batch(x, rng)
            else:  # a plain user callable knows single samples only
                x = _per_sample(t, as_array(x))
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


def _is_hwc(shape: tuple[int, ...]) -> bool:
    """Guess channel-last for an image batch shape (N, A, B, C)."""
    return shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)


class ToTensor(Transform):
    """uint8 images (HWC or CHW, or HW) -> float32 CHW in [0, 1]; other data -> float32.

    Like torchvision's ``ToTensor``, only uint8 input is scaled (by 1/255);
    float input is cast to float32 unchanged. A 2-D image gains a channel axis.
    Called on one sample it returns a trainkit Tensor, as torchvision's does.
    """

    def __call__(self, x: Any, rng: np.random.Generator | None = None):
        return _tensor_cls()(self.apply_batch(as_array(x)[None], rng)[0])

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = as_array(x)
        if x.ndim == 3 and x.dtype == np.uint8:  # (N, H, W) grey images
            x = x[:, None]
        elif x.ndim == 4 and _is_hwc(x.shape):
            x = x.transpose(0, 3, 1, 2)
        if x.dtype == np.uint8:
            # One pass: multiply straight into a new float32 array.
            return np.multiply(x, np.float32(1.0 / 255.0), dtype=np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)


class Normalize(Transform):
    """``(x - mean) / std`` per channel (axis 0 of a sample, axis 1 of a batch).

    Args:
        mean: one value, or one per channel (image) / feature (tabular).
        std: same shape as ``mean``; every value must be positive.
        inplace: accepted for torchvision compatibility; the result is always a
            new array (inputs may be views of a dataset's memory).
    """

    config_args = {
        "mean": "number or list of numbers, one per channel/feature (default: from the training set)",
        "std": "number or list of positive numbers, like mean (default: from the training set)",
    }

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float], inplace: bool = False):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32)).ravel()
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32)).ravel()
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if not np.all(np.isfinite(self.mean)) or not np.all(np.isfinite(self.std)) or np.any(self.std <= 0):
            raise ValueError("Normalize: mean must be finite and std finite and > 0")
        self._inv_std = (1.0 / self.std).astype(np.float32)

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = as_array(x)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if x.ndim < 2:
            raise ValueError(f"Normalize expects a batch (N, C, ...), got shape {x.shape}")
        channels = x.shape[1]
        size = max(self.mean.size, self.std.size)
        if size not in (1, channels):
            raise ValueError(f"Normalize has {size} values but the data has {channels} channels/features")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        out = np.subtract(x, self.mean.reshape(shape))
        out *= self._inv_std.reshape(shape)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Lambda(Transform):
    """A user function as a transform, as torchvision's ``Lambda(lambd)``.

    Per sample it is ``lambd(x)``; in a batch it runs once per sample (see the
    module docstring for what each call receives).
    """

    def __init__(self, lambd: Any):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, x: Any, rng: np.random.Generator | None = None):
        return self.lambd(x)

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``lambd`` on each sample of the batch, stacked."""
        return _per_sample(self.lambd, as_array(x))

    def __repr__(self) -> str:
        return f"Lambda({getattr(self.lambd, '__name__', repr(self.lambd))})"


class RandomCrop(_RandomTransform):
    """Pad by ``padding`` zeros on each side, then crop a random ``size`` window per sample.

    Works on (N, C, H, W) and (N, H, W) batches of any dtype; each sample of a
    batch gets its own offset.
    """

    config_args = {
        "size": "int or [height, width] (default: the image size)",
        "padding": "int >= 0, zeros added on each side before cropping (default 0)",
    }

    def __init__(self, size: int | Sequence[int], padding: int = 0, seed: int | None = None):
        super().__init__(seed)
        self.size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
        self.padding = int(padding)
        if len(self.size) != 2 or min(self.size) < 1 or self.padding < 0:
            raise ValueError(f"RandomCrop: bad size {size!r} or padding {padding!r}")

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = as_array(x)
        p, (th, tw) = self.padding, self.size
        if p:
            x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        if th > h or tw > w:
            raise ValueError(f"RandomCrop: crop {th}x{tw} is larger than the padded image {h}x{w}")
        rng = self._rng(rng)
        oy = rng.integers(0, h - th + 1, size=n)
        ox = rng.integers(0, w - tw + 1, size=n)
        # A strided view of every window, then one fancy-index picks each
        # sample's window: no Python loop over the batch.
        windows = np.lib.stride_tricks.sliding_window_view(x, (th, tw), axis=(-2, -1))
        index = (np.arange(n),) + (slice(None),) * (x.ndim - 3) + (oy, ox)
        return np.ascontiguousarray(windows[index])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_RandomTransform):
    """Mirror each sample left-right (last axis) with probability ``p``."""

    config_args = {"p": "probability of flipping, 0..1 (default 0.5)"}

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        self.p = float(p)
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = as_array(x)
        flip = self._rng(rng).random(x.shape[0]) < self.p
        out = x.copy()
        if flip.any():
            out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


#: Transform names usable in a config's ``data.transforms`` list.
TRANSFORMS: dict[str, type[Transform]] = {
    "normalize": Normalize,
    "random_crop": RandomCrop,
    "random_horizontal_flip": RandomHorizontalFlip,
}

#: Allowed arguments of each config transform: name -> {arg: description}.
TRANSFORM_ARGS: dict[str, dict[str, str]] = {name: dict(cls.config_args) for name, cls in TRANSFORMS.items()}
