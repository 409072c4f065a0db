"""DataLoader: PyTorch's ``torch.utils.data.DataLoader``, with a fast batch path and exact resume.

Arguments, defaults, argument-conflict errors and batch contents follow
PyTorch: map-style and iterable datasets, ``sampler``/``batch_sampler``,
``collate_fn`` (``default_collate`` by default), ``batch_size=None``,
``drop_last``, ``generator``. Loading always happens in the calling process:
``num_workers``, ``prefetch_factor``, ``persistent_workers``,
``multiprocessing_context``, ``timeout``, ``worker_init_fn``, ``pin_memory``,
``pin_memory_device`` and ``in_order`` are validated as PyTorch does and
otherwise have no effect (there are no worker processes to start, seed or
wait for, and no device memory to pin); ``worker_init_fn`` is never called,
as with ``num_workers=0``.

Array-backed datasets (the built-in data sets, ``TensorDataset``) are gathered
with one fancy-index per batch and transformed batch-wise when the default
collation is in use; the result is what ``default_collate`` would build.
Built-in data sets (:class:`~trainkit.data.dataset.ArrayDataset`) also get
trainkit's model conventions (uint8 images scaled to float32, float inputs
float32, integer targets int64, batches as tuples). Other datasets go item by
item through ``collate_fn``.

When the loader orders the data itself (no ``sampler``/``batch_sampler``, a
map-style dataset), shuffling and random augmentation both come from one
generator (``generator=``, or ``seed=``, or else one seeded from the global
generator on first use, so ``trainkit.manual_seed`` makes it reproducible):

* at the start of an epoch the loader draws the permutation and one
  ``epoch_seed``;
* batch ``b`` of that epoch augments with ``default_rng([epoch_seed, b])``.

So :meth:`DataLoader.state_dict` only needs the generator state at the start of
the current epoch and the number of batches already handed out; restoring it
reproduces the rest of the epoch (order and augmentation) exactly, whether the
state was saved at an epoch boundary or in the middle of one.
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Iterator

import numpy as np

from .collate import default_collate, default_convert
from .dataset import ArrayDataset, IterableDataset, as_array, base_dataset, supports_batches
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "get_worker_info", "to_model_arrays"]

# Attributes PyTorch forbids changing once a DataLoader exists.
_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


def _tensor_cls():
    from trainkit.autograd.tensor import Tensor

    return Tensor


def get_worker_info():
    """None: trainkit loads data in the calling process (as PyTorch does with ``num_workers=0``)."""
    return None


def _is_random(transform: Any) -> bool:
    return bool(getattr(transform, "random", False))


def _dataset_transform(dataset: Any) -> Any:
    return getattr(base_dataset(dataset), "transform", None)


def to_model_arrays(fields: tuple) -> tuple:
    """Apply the loader's dtype conventions to a collated batch.

    Inputs (field 0): uint8 -> float32 scaled by 1/255 (as ToTensor would),
    other floats -> float32, integers kept. Targets and further fields:
    integers -> int64, floats -> float32; shapes are kept as the dataset gives
    them (built-in regression sets store targets as (N, k)).
    """
    out = []
    for i, a in enumerate(fields):
        a = as_array(a)
        if i == 0 and a.dtype == np.uint8:
            a = np.multiply(a, np.float32(1.0 / 255.0), dtype=np.float32)
        elif a.dtype.kind == "f" or a.dtype == np.bool_:
            a = a.astype(np.float32, copy=False) if a.dtype != np.bool_ else a.astype(np.float32)
        elif a.dtype.kind in "iu":
            a = a.astype(np.int64, copy=False)
        out.append(np.ascontiguousarray(a))
    return tuple(out)


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader``.

    Args (PyTorch's, in its order):
        dataset: a map-style dataset (``__len__``/``__getitem__``) or an
            :class:`~trainkit.data.dataset.IterableDataset`.
        batch_size: samples per batch; None turns automatic batching off
            (each sample goes through ``collate_fn``, ``default_convert`` by default).
        shuffle: a new random order every epoch (map-style datasets only).
        sampler: the order of indices (excludes ``shuffle``).
        batch_sampler: yields lists of indices (excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers: accepted (>= 0); loading runs in the calling process.
        collate_fn: merges a list of samples into a batch (``default_collate``).
        pin_memory: accepted; there is no device memory to pin.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        timeout: accepted (>= 0); there are no workers to wait for.
        worker_init_fn: accepted; never called (no worker processes).
        multiprocessing_context: only with ``num_workers > 0``, as in PyTorch; unused.
        generator: a :class:`trainkit.Generator` for shuffling and random augmentation.
        prefetch_factor: only with ``num_workers > 0``, as in PyTorch; unused.
        persistent_workers: only with ``num_workers > 0``, as in PyTorch; unused.
        pin_memory_device, in_order: accepted; unused.

    trainkit's own keyword arguments:
        seed: seed of the loader's generator (instead of ``generator``).
        transform: applied to the inputs (field 0) of each batch, batch-wise
            for trainkit transforms.

    ``state_dict()``/``load_state_dict()`` save and restore the position in
    the current epoch exactly (see the module docstring) when the loader
    orders the data itself.
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None, sampler: Any = None,
                 batch_sampler: Any = None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context: Any = None, generator: Any = None,
                 *, prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True, seed: int | None = None,
                 transform: Callable | None = None):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers "
                             "> 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None and num_workers == 0:
            raise ValueError("multiprocessing_context can only be used with multi-process loading "
                             f"(num_workers > 0), but got num_workers={num_workers}")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                                 "drop_last")
        elif not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if generator is not None and seed is not None:
            raise ValueError("give the DataLoader either generator= or seed=, not both")

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.shuffle = shuffle
        self.generator = generator
        self.seed = seed
        self.transform = transform
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self._default_collate = collate_fn is None
        self.collate_fn = collate_fn or (default_collate if batch_size is not None or batch_sampler is not None
                                         else default_convert)
        self._iterable = iterable
        self._sampler = sampler
        self._batch_sampler = batch_sampler
        # The loader orders the data itself: exact resume and the batch path apply.
        self._own_order = not iterable and sampler is None and batch_sampler is None and batch_size is not None
        self._batched = (not iterable) and self._default_collate and supports_batches(dataset)
        self._model_arrays = isinstance(base_dataset(dataset), ArrayDataset)
        self._rng: np.random.Generator | None = None
        if generator is not None:
            from trainkit.autograd.random import resolve

            self._rng = resolve(generator)
        elif seed is not None:
            self._rng = np.random.Generator(np.random.PCG64(seed))
        self._epoch: dict | None = None     # progress of the epoch being iterated
        self._resume: dict | None = None    # state to start the next iteration from
        self._initialized = True

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_initialized") and name in _FROZEN:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def _generator(self) -> np.random.Generator:
        """The loader's generator; without generator=/seed= it is seeded from the global one on first use."""
        if self._rng is None:
            from trainkit.autograd.random import Generator, default_generator

            self._rng = Generator().manual_seed(int(default_generator().integers(0, 2**63 - 1)))
        return self._rng

    @property
    def sampler(self):
        """The sampler giving the order of indices (PyTorch's default ones when none was passed)."""
        if self._sampler is not None or self._iterable:
            return self._sampler
        if self.shuffle:
            return RandomSampler(self.dataset, generator=self._generator() if self._own_order else self.generator)
        return SequentialSampler(self.dataset)

    @property
    def batch_sampler(self):
        """The batch sampler (None without automatic batching)."""
        if self._batch_sampler is not None:
            return self._batch_sampler
        if self.batch_size is None or self._iterable:
            return None
        return BatchSampler(self.sampler, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError for streams without a length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self._own_order:
            n = len(self.dataset)
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    # -- iteration -----------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self._iterable:
            return self._iter_stream()
        if not self._own_order:
            return self._iter_sampled()
        return self._iter_own()

    def _random_aug(self) -> bool:
        return _is_random(self.transform) or _is_random(_dataset_transform(self.dataset))

    def _iter_own(self) -> Iterator:
        n = len(self.dataset)
        rng_main = self._generator()
        skip = 0
        if self._resume is not None:
            rng_main.bit_generator.state = copy.deepcopy(self._resume["generator"])
            skip = int(self._resume["batches_done"])
            self._resume = None
        start_state = copy.deepcopy(rng_main.bit_generator.state)
        order = rng_main.permutation(n) if self.shuffle else np.arange(n)
        # Drawn every epoch, used or not, so the generator advances the same way
        # whatever transforms are configured.
        epoch_seed = int(rng_main.integers(0, 2**63 - 1))
        total = len(self)
        random_aug = self._random_aug()
        epoch = {"start": start_state, "done": skip, "total": total}
        self._epoch = epoch
        for b in range(skip, total):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            rng = np.random.default_rng([epoch_seed, b]) if random_aug else None
            batch = self._fetch(idx, rng)
            epoch["done"] = b + 1
            yield batch
        if self._epoch is epoch:
            self._epoch = None

    def _aug_seed(self) -> int | None:
        """A per-epoch augmentation seed from the global generator (samplers own the order)."""
        if not self._random_aug():
            return None
        from trainkit.autograd.random import default_generator

        return int(default_generator().integers(0, 2**63 - 1))

    def _iter_sampled(self) -> Iterator:
        seed = self._aug_seed()
        if self.batch_sampler is None:  # automatic batching off: one sample at a time
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])
            return
        for b, idx in enumerate(self.batch_sampler):
            rng = np.random.default_rng([seed, b]) if seed is not None else None
            yield self._fetch(np.asarray(idx, dtype=np.int64) if self._batched else list(idx), rng)

    def _iter_stream(self) -> Iterator:
        it = iter(self.dataset)
        if self.batch_size is None:
            for sample in it:
                yield self.collate_fn(sample)
            return
        seed = self._aug_seed()
        for b in itertools.count():
            samples = list(itertools.islice(it, self.batch_size))
            if not samples or (self.drop_last and len(samples) < self.batch_size):
                return
            rng = np.random.default_rng([seed, b]) if seed is not None else None
            yield self._finish(self.collate_fn(samples), rng)

    def _fetch(self, idx, rng: np.random.Generator | None):
        if self._batched:
            fields = tuple(self.dataset.get_batch(np.asarray(idx), rng))
            fields = self._transform_fields(fields, rng)
            Tensor = _tensor_cls()
            if self._model_arrays:
                return tuple(Tensor(a) for a in to_model_arrays(fields))
            return [Tensor(np.ascontiguousarray(a)) for a in fields]  # what default_collate gives for tuples
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(list(idx)) if callable(getitems) else [self.dataset[int(i)] for i in idx]
        return self._finish(self.collate_fn(samples), rng)

    def _finish(self, batch: Any, rng: np.random.Generator | None) -> Any:
        """Apply the loader transform (and built-in data sets' conventions) to a collated batch."""
        if self.transform is None and not (self._model_arrays and self._default_collate):
            return batch
        Tensor = _tensor_cls()
        if isinstance(batch, (list, tuple)):
            fields = tuple(as_array(f) for f in batch)
        elif isinstance(batch, Tensor):
            fields = (batch._array,)
        else:
            raise TypeError(f"DataLoader(transform=...) needs batches of tensors or tuples of them, got "
                            f"{type(batch).__name__}")
        fields = self._transform_fields(fields, rng)
        if self._model_arrays and self._default_collate:
            return tuple(Tensor(a) for a in to_model_arrays(fields))
        out = [Tensor(np.ascontiguousarray(a)) for a in fields]
        return out[0] if isinstance(batch, Tensor) else out

    def _transform_fields(self, fields: tuple, rng: np.random.Generator | None) -> tuple:
        if self.transform is None:
            return fields
        x = fields[0]
        if hasattr(self.transform, "apply_batch"):
            x = self.transform.apply_batch(x, rng)
        else:
            x = np.stack([as_array(self.transform(item)) for item in x])
        return (x,) + tuple(fields[1:])

    # -- exact resume --------------------------------------------------------------
    def _require_own_order(self) -> None:
        if not self._own_order:
            raise TypeError("DataLoader.state_dict() is only available when the loader orders a map-style dataset "
                            "itself (no sampler, batch_sampler or IterableDataset, and a batch_size)")

    def state_dict(self) -> dict:
        """JSON-serialisable state: generator state at the start of the current epoch and
        the batches of it already yielded (0 between epochs)."""
        self._require_own_order()
        if self._resume is not None:
            return copy.deepcopy(self._resume)
        ep = self._epoch
        if ep is not None and ep["done"] < ep["total"]:
            return {"version": 1, "generator": copy.deepcopy(ep["start"]), "batches_done": ep["done"]}
        return {"version": 1, "generator": copy.deepcopy(self._generator().bit_generator.state),
                "batches_done": 0}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; the next iteration continues exactly where it left off."""
        self._require_own_order()
        try:
            gen = state["generator"]
            done = int(state.get("batches_done", 0))
            if gen.get("bit_generator") != "PCG64":
                raise ValueError(f"unsupported bit generator {gen.get('bit_generator')!r}")
            probe = np.random.PCG64()
            probe.state = copy.deepcopy(gen)  # validates the state before we commit to it
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a DataLoader state: {exc}") from exc
        if not 0 <= done <= len(self):
            raise ValueError(f"DataLoader state has {done} batches done, but an epoch has {len(self)}")
        if not isinstance(self._generator().bit_generator, np.random.PCG64):
            raise ValueError("this DataLoader's generator is not PCG64-based; it cannot take a saved state")
        self._resume = {"version": 1, "generator": copy.deepcopy(gen), "batches_done": done}
        self._epoch = None

    def __repr__(self) -> str:
        n = len(self.dataset) if hasattr(self.dataset, "__len__") else "?"
        return (f"DataLoader(n={n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")
