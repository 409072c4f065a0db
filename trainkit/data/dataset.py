"""Dataset types: the protocol, array-backed datasets, subsets and random splits.

A dataset is anything with ``__len__`` and ``__getitem__`` (PyTorch's map-style
protocol). Array-backed datasets (:class:`ArrayDataset`, :class:`TensorDataset`
and every built-in data set) additionally offer ``get_batch(indices, rng)``:
one fancy-index gathers a whole batch and the transform runs on the batch at
once, which is what makes a CIFAR-10 epoch take well under two seconds.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from trainkit.errors import DataError


def as_array(x: Any) -> np.ndarray:
    """Return ``x`` as an ndarray; trainkit Tensors are unwrapped without a copy."""
    if isinstance(x, np.ndarray):
        return x
    arr = getattr(x, "_array", None)
    if isinstance(arr, np.ndarray):
        return arr
    return np.asarray(x)


class Dataset:
    """Base class (and protocol) of map-style datasets: ``len(ds)`` and ``ds[i]``.

    Subclasses implement ``__len__`` and ``__getitem__``; a sample is usually a
    tuple ``(input, target)``. Any object with those two methods works with
    :class:`~trainkit.data.loader.DataLoader`; inheriting is optional.
    """

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError


def _apply_transform(transform: Callable | None, x: np.ndarray, rng, batched: bool) -> np.ndarray:
    """Run ``transform`` on one sample or on a batch, passing ``rng`` to random transforms."""
    if transform is None:
        return x
    if batched and hasattr(transform, "apply_batch"):
        return transform.apply_batch(x, rng)
    if not batched and hasattr(transform, "apply_batch"):
        return transform(x, rng=rng)
    if batched:
        # A plain user callable only knows single samples: apply it per item.
        return np.stack([as_array(transform(item)) for item in x])
    return as_array(transform(x))


class ArrayDataset(Dataset):
    """A dataset held as two aligned arrays: ``data`` (N, ...) and ``targets`` (N, ...).

    Args:
        data: inputs, first axis is the sample axis. Images are kept as uint8
            NCHW; ``ToTensor`` scales them per batch.
        targets: class indices (int64, shape (N,)) or regression values
            (float32, shape (N, k)).
        transform: applied to inputs, per item for ``ds[i]`` and per batch in
            :meth:`get_batch`.
        classes: class names for classification data, else ``None``.
    """

    def __init__(self, data: np.ndarray, targets: np.ndarray, transform: Callable | None = None,
                 classes: Sequence[str] | None = None):
        data, targets = as_array(data), as_array(targets)
        if len(data) != len(targets):
            raise DataError(f"data has {len(data)} samples but targets has {len(targets)}")
        self.data = data
        self.targets = targets
        self.transform = transform
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        x = _apply_transform(self.transform, self.data[index], None, batched=False)
        y = self.targets[index]
        return x, y

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator | None = None):
        """Gather samples ``indices`` with one fancy-index and transform them as a batch."""
        x = self.data[indices]
        x = _apply_transform(self.transform, x, rng, batched=True)
        return x, self.targets[indices]

    @property
    def task(self) -> str:
        """'classification' for integer targets, 'regression' otherwise."""
        return "classification" if np.issubdtype(self.targets.dtype, np.integer) else "regression"

    @property
    def num_classes(self) -> int | None:
        """Number of classes (None for regression)."""
        if self.task != "classification":
            return None
        if self.classes is not None:
            return len(self.classes)
        return int(self.targets.max()) + 1 if len(self.targets) else 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, input_shape={tuple(self.data.shape[1:])}, "
                f"task={self.task})")


class TensorDataset(Dataset):
    """Dataset wrapping arrays (or trainkit Tensors) that share their first dimension.

    ``ds[i]`` returns ``tuple(a[i] for a in arrays)``; batches are gathered with
    one fancy-index per array.
    """

    def __init__(self, *tensors: Any):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(as_array(t) for t in tensors)
        n = len(arrays[0])
        for i, a in enumerate(arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(f"TensorDataset: array {i} has {len(a) if a.ndim else 0} rows, "
                                 f"array 0 has {n}; all must share the first dimension")
        self.tensors = arrays

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int):
        return tuple(a[index] for a in self.tensors)

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator | None = None):
        """Gather rows ``indices`` from every array with one fancy-index each."""
        return tuple(a[indices] for a in self.tensors)


class Subset(Dataset):
    """The samples of ``dataset`` at positions ``indices`` (in that order)."""

    def __init__(self, dataset: Any, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError("Subset indices must be one-dimensional")
        if len(self.indices) and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset index out of range for a dataset of {len(dataset)} samples")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator | None = None):
        """Map ``indices`` through this subset and gather from the parent in one call."""
        return self.dataset.get_batch(self.indices[indices], rng)

    def __getattr__(self, name: str):
        # Forward metadata (classes, targets, task, ...) so a Subset can stand
        # in for its parent; get_batch is only offered when the parent has it.
        if name in ("dataset", "indices") or name.startswith("__"):
            raise AttributeError(name)
        if name == "targets":
            return self.dataset.targets[self.indices]
        if name == "data":
            return self.dataset.data[self.indices]
        return getattr(self.dataset, name)


def supports_batches(dataset: Any) -> bool:
    """True if ``dataset`` can gather a whole batch at once (array-backed all the way down)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return callable(getattr(dataset, "get_batch", None))


def random_split(dataset: Any, lengths: Sequence[int | float], seed: int | None = 0) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions
    summing to 1 (remainders go to the first subsets, one each, as PyTorch does).
    The permutation comes from ``numpy.random.default_rng(seed)``, so a seed
    gives the same split every time.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(v, float) for v in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        counts = [int(v) for v in lengths]
    if sum(counts) != n or any(c < 0 for c in counts):
        raise ValueError(f"random_split: lengths {lengths} do not add up to the dataset size {n}")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c]))
        start += c
    return out
