"""DataLoader: batches of trainkit Tensors, with all data randomness in one generator.

Array-backed datasets are gathered with one fancy-index per batch and
transformed batch-wise; other datasets go through a per-item path and are
stacked. Shuffling and random augmentation both come from the loader's own
``numpy.random.Generator``:

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
from typing import Any, Callable, Iterator

import numpy as np

from .dataset import Subset, as_array, supports_batches

__all__ = ["DataLoader", "to_model_arrays"]


def _tensor_cls():
    # Imported lazily so the data package can be used (and tested) on its own.
    from trainkit.autograd.tensor import Tensor

    return Tensor


def _is_random(transform: Any) -> bool:
    return bool(getattr(transform, "random", False))


def _dataset_transform(dataset: Any) -> Any:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "transform", None)


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
    """Iterate over ``dataset`` in batches of trainkit Tensors ``(inputs, targets)``.

    Args:
        dataset: a map-style dataset; array-backed ones (with ``get_batch``) are
            gathered a whole batch at a time.
        batch_size: samples per batch.
        shuffle: draw a new permutation every epoch.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: seed of the loader's generator (None: fresh entropy, not reproducible).
        transform: applied to the inputs of each batch, after the dataset's own
            transform (batch-wise for trainkit transforms).

    Yields ``(inputs, targets)`` (or one Tensor per field when samples have a
    different number of fields). Inputs are float32; class targets int64.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform: Callable | None = None):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.generator = np.random.Generator(np.random.PCG64(seed))
        self._batched = supports_batches(dataset)
        self._epoch: dict | None = None     # progress of the epoch being iterated
        self._resume: dict | None = None    # state to start the next iteration from

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # -- iteration -----------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple]:
        n = len(self.dataset)
        skip = 0
        if self._resume is not None:
            self.generator.bit_generator.state = copy.deepcopy(self._resume["generator"])
            skip = int(self._resume["batches_done"])
            self._resume = None
        start_state = copy.deepcopy(self.generator.bit_generator.state)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        # Drawn every epoch, used or not, so the generator advances the same way
        # whatever transforms are configured.
        epoch_seed = int(self.generator.integers(0, 2**63 - 1))
        total = len(self)
        random_aug = _is_random(self.transform) or _is_random(_dataset_transform(self.dataset))
        epoch = {"start": start_state, "done": skip, "total": total}
        self._epoch = epoch
        Tensor = _tensor_cls()
        for b in range(skip, total):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            rng = np.random.default_rng([epoch_seed, b]) if random_aug else None
            fields = self._fetch(idx, rng)
            epoch["done"] = b + 1
            yield tuple(Tensor(a) for a in fields)
        if self._epoch is epoch:
            self._epoch = None

    def _fetch(self, idx: np.ndarray, rng: np.random.Generator | None) -> tuple:
        if self._batched:
            fields = self.dataset.get_batch(idx, rng)
        else:
            items = [self.dataset[int(i)] for i in idx]
            if isinstance(items[0], (tuple, list)):
                fields = tuple(np.stack([as_array(it[k]) for it in items]) for k in range(len(items[0])))
            else:
                fields = (np.stack([as_array(it) for it in items]),)
        fields = tuple(fields)
        if self.transform is not None:
            x = fields[0]
            if hasattr(self.transform, "apply_batch"):
                x = self.transform.apply_batch(x, rng)
            else:
                x = np.stack([as_array(self.transform(item)) for item in x])
            fields = (x,) + fields[1:]
        return to_model_arrays(fields)

    # -- exact resume --------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-serialisable state: generator state at the start of the current epoch and
        the batches of it already yielded (0 between epochs)."""
        if self._resume is not None:
            return copy.deepcopy(self._resume)
        ep = self._epoch
        if ep is not None and ep["done"] < ep["total"]:
            return {"version": 1, "generator": copy.deepcopy(ep["start"]), "batches_done": ep["done"]}
        return {"version": 1, "generator": copy.deepcopy(self.generator.bit_generator.state),
                "batches_done": 0}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; the next iteration continues exactly where it left off."""
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
        self._resume = {"version": 1, "generator": copy.deepcopy(gen), "batches_done": done}
        self._epoch = None

    def __repr__(self) -> str:
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")
