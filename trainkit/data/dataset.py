"""Dataset types with PyTorch's names: the protocols, array-backed datasets, subsets, concatenation, random splits.

A map-style dataset is anything with ``__len__`` and ``__getitem__``; an
iterable-style one (:class:`IterableDataset`) has ``__iter__``. Array-backed
datasets (:class:`ArrayDataset`, :class:`TensorDataset` and every built-in
data set) additionally offer ``get_batch(indices, rng)``: one fancy-index
gathers a whole batch and the transform runs on the batch at once, which is
what makes a CIFAR-10 epoch take well under two seconds.
"""
from __future__ import annotations

import bisect
import math
import warnings
from typing import Any, Callable, Iterable, Sequence

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

    # No default __len__ (as in PyTorch): ``len()`` of a dataset without one is a TypeError,
    # which is what DataLoader and ``list()`` expect from streams of unknown length.

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])

    def __class_getitem__(cls, item):
        return cls  # ``Dataset[int]`` in type hints, as with PyTorch's generic class


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
    return transform(x)  # per sample, whatever the callable returns (a Tensor, as with torchvision)


class ArrayDataset(Dataset):
    """A dataset held as two aligned arrays: inputs (N, ...) and targets (N, ...).

    Args:
        data: inputs, first axis is the sample axis. Images are kept as uint8
            NCHW; ``ToTensor`` scales them per batch.
        targets: class indices (int64, shape (N,)) or regression values
            (float32, shape (N, k)).
        transform: applied to inputs, per item for ``ds[i]`` and per batch in
            :meth:`get_batch`.
        classes: class names for classification data, else ``None``.
        target_transform: applied to each target of ``ds[i]``, as in
            torchvision (the DataLoader then collates item by item).

    ``ds[i]`` is ``(input, target)`` with a Python ``int`` target for
    classification, as torchvision's data sets return. ``input_array`` and
    ``target_array`` are the arrays batches are gathered from; ``data`` and
    ``targets`` are the same arrays here, and torchvision's types in the
    torchvision-style data sets (MNIST, CIFAR).
    """

    def __init__(self, data: np.ndarray, targets: np.ndarray, transform: Callable | None = None,
                 classes: Sequence[str] | None = None, target_transform: Callable | None = None):
        data, targets = as_array(data), as_array(targets)
        if len(data) != len(targets):
            raise DataError(f"data has {len(data)} samples but targets has {len(targets)}")
        self._inputs = data
        self._targets = targets
        self.transform = transform
        self.target_transform = target_transform
        self.classes = list(classes) if classes is not None else None

    # The arrays batches are gathered from (trainkit's layout: images NCHW).
    @property
    def input_array(self) -> np.ndarray:
        """All inputs as one array (N, ...), images uint8 NCHW."""
        return self._inputs

    @property
    def target_array(self) -> np.ndarray:
        """All targets as one array (N,) or (N, k)."""
        return self._targets

    @property
    def input_shape(self) -> tuple:
        """The shape of one input sample, e.g. (3, 32, 32)."""
        return tuple(int(d) for d in self._inputs.shape[1:])

    @property
    def data(self):
        """The inputs (subclasses mirroring torchvision give torchvision's type and layout)."""
        return self._inputs

    @data.setter
    def data(self, value) -> None:
        self._inputs = as_array(value)

    @property
    def targets(self):
        """The targets (subclasses mirroring torchvision give torchvision's type)."""
        return self._targets

    @targets.setter
    def targets(self, value) -> None:
        self._targets = as_array(value)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> index, as torchvision's data sets have."""
        return {c: i for i, c in enumerate(self.classes or [])}

    def __len__(self) -> int:
        return len(self._inputs)

    def __getitem__(self, index: int):
        x = _apply_transform(self.transform, self._inputs[index], None, batched=False)
        y = self._targets[index]
        if isinstance(y, np.integer):
            y = int(y)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator | None = None):
        """Gather samples ``indices`` with one fancy-index and transform them as a batch."""
        x = self._inputs[indices]
        x = _apply_transform(self.transform, x, rng, batched=True)
        return x, self._targets[indices]

    @property
    def task(self) -> str:
        """'classification' for integer targets, 'regression' otherwise."""
        return "classification" if np.issubdtype(self._targets.dtype, np.integer) else "regression"

    @property
    def num_classes(self) -> int | None:
        """Number of classes (None for regression)."""
        if self.task != "classification":
            return None
        if self.classes is not None:
            return len(self.classes)
        return int(self._targets.max()) + 1 if len(self._targets) else 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, input_shape={self.input_shape}, "
                f"task={self.task})")


class TensorDataset(Dataset):
    """Dataset wrapping tensors (or arrays) that share their first dimension.

    ``ds[i]`` returns ``tuple(t[i] for t in tensors)`` (Tensors, as in
    PyTorch); batches are gathered with one fancy-index per array.
    """

    def __init__(self, *tensors: Any):
        from trainkit.autograd.tensor import Tensor

        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(as_array(t)) for t in tensors)
        self._arrays = tuple(t._array for t in self.tensors)
        n = len(self._arrays[0]) if self._arrays[0].ndim else 0
        for i, a in enumerate(self._arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(f"Size mismatch between tensors: tensor {i} has {len(a) if a.ndim else 0} rows, "
                                 f"tensor 0 has {n}; all must share the first dimension")

    def __len__(self) -> int:
        return len(self._arrays[0])

    def __getitem__(self, index: int):
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator | None = None):
        """Gather rows ``indices`` from every array with one fancy-index each."""
        return tuple(a[indices] for a in self._arrays)


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

    def __getitems__(self, indices: list) -> list:
        """The samples at ``indices`` of this subset (one call to the parent's ``__getitems__`` if it has one)."""
        parent = [int(self.indices[i]) for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems(parent)
        return [self.dataset[i] for i in parent]

    def __getattr__(self, name: str):
        # Forward metadata (classes, targets, task, ...) so a Subset can stand
        # in for its parent; get_batch is only offered when the parent has it.
        if name in ("dataset", "indices") or name.startswith("__"):
            raise AttributeError(name)
        if name in ("targets", "data", "input_array", "target_array"):
            return _take(getattr(self.dataset, name), self.indices)
        return getattr(self.dataset, name)


def _take(values: Any, indices: np.ndarray) -> Any:
    """``values[indices]`` for arrays and Tensors, item by item for lists (torchvision's CIFAR targets)."""
    if isinstance(values, list):
        return [values[int(i)] for i in indices]
    return values[indices]


def base_dataset(dataset: Any) -> Any:
    """The dataset under any number of :class:`Subset` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def supports_batches(dataset: Any) -> bool:
    """True if ``dataset`` can gather a whole batch at once (array-backed all the way down).

    A ``target_transform`` works on single targets, so datasets with one go item by item.
    """
    base = base_dataset(dataset)
    return callable(getattr(base, "get_batch", None)) and getattr(base, "target_transform", None) is None


def random_split(dataset: Any, lengths: Sequence[int | float], generator=None, seed: int | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths, as ``torch.utils.data.random_split``.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions
    summing to 1 (each floored, then the remainder given one by one to the
    first subsets, as PyTorch does; an empty part warns). The permutation is
    drawn from ``generator`` (a :class:`trainkit.Generator`), or from a
    ``numpy.random.default_rng(seed)`` when ``seed`` is given (trainkit's
    shorthand), else from the global generator (``trainkit.manual_seed``).
    """
    from trainkit.autograd.random import resolve

    if generator is not None and seed is not None:
        raise ValueError("random_split: give either generator= or seed=, not both")
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    else:
        counts = [int(v) for v in lengths]
    if sum(counts) != n or any(c < 0 for c in counts):
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! "
                         f"(lengths {lengths} do not add up to the dataset size {n})")
    rng = np.random.default_rng(seed) if seed is not None else resolve(generator)
    perm = rng.permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c]))
        start += c
    return out


class IterableDataset(Dataset):
    """Base class of iterable-style datasets (streams): subclasses implement ``__iter__``.

    A DataLoader reads them in order, ``batch_size`` samples at a time; they
    take no sampler and no ``shuffle``, as in PyTorch. ``a + b`` chains two.
    """

    def __iter__(self):  # pragma: no cover - abstract
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other: "IterableDataset") -> "ChainDataset":
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Iterable datasets read one after the other."""

    def __init__(self, datasets: Iterable[IterableDataset]):
        self.datasets = list(datasets)
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class ConcatDataset(Dataset):
    """Map-style datasets concatenated: index ``i`` runs through the first, then the second, ...

    Attributes:
        datasets: the parts; ``cumulative_sizes``: running totals of their lengths.
    """

    @staticmethod
    def cumsum(sequence: Sequence) -> list[int]:
        """Running totals of the lengths of ``sequence``'s datasets."""
        out, total = [], 0
        for d in sequence:
            total += len(d)
            out.append(total)
        return out

    def __init__(self, datasets: Iterable[Any]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        if idx >= len(self):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of {len(self)} samples")
        part = bisect.bisect_right(self.cumulative_sizes, idx)
        offset = self.cumulative_sizes[part - 1] if part else 0
        return self.datasets[part][idx - offset]


class StackDataset(Dataset):
    """Datasets of equal length side by side: ``ds[i]`` is a tuple (positional) or dict (keyword) of their samples."""

    def __init__(self, *args: Any, **kwargs: Any):
        if args and kwargs:
            raise ValueError("Supported either ``tuple``- (via ``args``) or ``dict``- (via ``kwargs``) like "
                             "input/output, but both types are given.")
        if not args and not kwargs:
            raise ValueError("At least one dataset should be passed")
        parts = list(args) if args else list(kwargs.values())
        self._length = len(parts[0])
        if any(len(d) != self._length for d in parts):
            raise ValueError("Size mismatch between datasets")
        self.datasets = args if args else kwargs

    def __getitem__(self, index: int):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length
