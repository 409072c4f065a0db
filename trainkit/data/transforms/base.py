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

A transform YAML can name declares itself with ``@transform("name", ...)``; its
optional ``output_shape(args, shape, data)`` checks it against a per-sample
shape (the config's first pass uses the data set's declared shape) and its
optional ``from_config(args, shape, train)`` builds it from the resolved
arguments and the loaded training data.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trainkit.registry import SIZE, AnyOf, Float, Int, ListOf, Nullable, ShapeProblem, fmt, pair, transform

from ..dataset import as_array

__all__ = ["Transform", "Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Lambda",
           "dataset_statistics"]

_FLOATS = AnyOf((Float(), ListOf(Float(), min_len=1)), "a number or a list of numbers")


def _tensor_cls():
    from trainkit.autograd.tensor import Tensor

    return Tensor


def sample_array(x: Any) -> np.ndarray:
    """One sample as an ndarray; a PIL image (what torchvision's loaders give) becomes uint8 (C, H, W)."""
    if type(x).__module__.startswith("PIL.") and hasattr(x, "getbands"):
        arr = np.asarray(x)
        return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))
    return as_array(x)


def _per_sample(fn: Any, x: np.ndarray) -> np.ndarray:
    """Run a per-sample callable over a batch: items as Tensors once the batch is floating point."""
    Tensor = _tensor_cls() if x.dtype.kind in "fc" else None
    return np.stack([as_array(fn(Tensor(item) if Tensor is not None else item)) for item in x])


class Transform:
    """Base class: subclasses implement :meth:`apply_batch`; single samples go through it too."""

    #: True for transforms that draw random numbers (used only for training).
    random: bool = False

    def __call__(self, x: Any, rng: np.random.Generator | None = None):
        """Transform one sample (no batch axis): a Tensor for a Tensor, an array otherwise (a PIL image
        becomes a uint8 (C, H, W) array)."""
        out = self.apply_batch(sample_array(x)[None], rng)[0]
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
        return _tensor_cls()(self.apply_batch(sample_array(x)[None], rng)[0])

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


def _check_normalize(args, path, ck) -> None:
    mean, std = args["mean"], args["std"]
    std_list = std if isinstance(std, list) else [] if std is None else [std]
    if any(s <= 0 for s in std_list):
        ck.error(path + ("std",), f"every std must be > 0, found {std}")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) != len(std):
        ck.error(path, f"mean has {len(mean)} values but std has {len(std)}")


@transform("normalize", args={"mean": Nullable(_FLOATS), "std": Nullable(_FLOATS)},
           defaults={"mean": None, "std": None}, check=_check_normalize, exclude=("inplace",),
           docs={"mean": "per-channel (or per-feature) mean subtracted; null: computed from the training set",
                 "std": "per-channel std divided by (> 0); null: computed from the training set"})
class Normalize(Transform):
    """``(x - mean) / std`` per channel (axis 0 of a sample, axis 1 of a batch).

    Args:
        mean: one value, or one per channel (image) / feature (tabular).
        std: same shape as ``mean``; every value must be positive.
        inplace: accepted for torchvision compatibility; the result is always a
            new array (inputs may be views of a dataset's memory).
    """

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
        if x.ndim > 2 and channels <= 16:
            # Images: one channel at a time with scalars, twice as fast as broadcasting a (1, C, 1, 1)
            # operand through the batch, and the same arithmetic (bit for bit).
            out = np.empty_like(x)
            for c in range(channels):
                o = out[:, c]
                np.subtract(x[:, c], self.mean[c % self.mean.size], out=o)
                o *= self._inv_std[c % self._inv_std.size]
            return out
        shape = (1, -1) + (1,) * (x.ndim - 2)
        out = np.subtract(x, self.mean.reshape(shape))
        out *= self._inv_std.reshape(shape)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"

    @staticmethod
    def output_shape(args, shape, data):
        """Shape kept; ``mean`` and ``std`` have 1 value or one per channel (feature)."""
        if not shape or shape[0] is None:
            return shape
        what = "channel(s)" if len(shape) >= 2 else "feature(s)"
        bad = [(f"has {len(args[k])} values; {data} have {shape[0]} {what}", k) for k in ("mean", "std")
               if isinstance(args[k], list) and len(args[k]) not in (1, shape[0])]
        if bad:
            raise ShapeProblem.several(bad)
        return shape

    @classmethod
    def from_config(cls, args, shape, train) -> "Normalize":
        """With ``mean``/``std`` null, the per-channel statistics of the training inputs."""
        mean, std = args["mean"], args["std"]
        if mean is None or std is None:
            m, s = dataset_statistics(train)
            mean = m.tolist() if mean is None else mean
            std = s.tolist() if std is None else std
        return cls(mean, std)


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


@transform("random_crop", args={"size": Nullable(SIZE), "padding": Int(lo=0)}, defaults={"size": None},
           image_only=True)
class RandomCrop(_RandomTransform):
    """Pad by ``padding`` zeros on each side, then crop a random ``size`` window per sample.

    Works on (N, C, H, W) and (N, H, W) batches of any dtype; each sample of a
    batch gets its own offset.

    Args:
        size: output size, an int or ``[height, width]``; in a config, null means the image size.
        padding: zero padding added on each side before cropping.
    """

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

    @staticmethod
    def output_shape(args, shape, data):
        """Shape kept: the crop fits the padded image and equals the image size (eval inputs are not cropped)."""
        if args["size"] is None or None in shape[1:]:
            return shape
        size, p = list(pair(args["size"])), args["padding"]
        h, w = shape[1], shape[2]
        if size[0] > h + 2 * p or size[1] > w + 2 * p:
            raise ShapeProblem(f"crop {size} is larger than the {data} ({fmt(shape[1:])}) plus padding {p}", "size")
        if size != [h, w]:
            raise ShapeProblem(f"size {size} must equal the image size {[h, w]} so that train and eval inputs have "
                               "the same shape; use padding to shift", "size")
        return shape

    @classmethod
    def from_config(cls, args, shape, train) -> "RandomCrop":
        """With ``size`` null, a crop of the image's own size (after ``padding``)."""
        return cls(list(shape[1:]) if args["size"] is None else args["size"], args["padding"])


@transform("random_horizontal_flip", args={"p": Float(0, 1)}, image_only=True)
class RandomHorizontalFlip(_RandomTransform):
    """Mirror each sample left-right (last axis) with probability ``p``.

    Args:
        p: probability of flipping, in [0, 1].
    """

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


def dataset_statistics(dataset, max_samples: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (per-feature) mean and std of a data set's inputs, as ToTensor would scale them.

    An evenly spaced sample of at most ``max_samples`` inputs is plenty for
    normalisation statistics and keeps the float64 working copy small; a zero
    std becomes 1.
    """
    n = len(dataset)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_samples)).astype(np.int64))
    data = dataset.get_batch(pick, None)[0]
    scale = 255.0 if data.dtype == np.uint8 else 1.0
    mean, std = [], []
    for c in range(data.shape[1]):  # one channel at a time: small temporaries
        xc = data[:, c].astype(np.float64) / scale
        mean.append(xc.mean())
        std.append(xc.std())
    std_arr = np.asarray(std)
    return np.asarray(mean), np.where(std_arr > 0, std_arr, 1.0)
