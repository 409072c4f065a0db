"""Scattering the data: each rank's slice of every global batch, and whole batches for evaluation.

ChainerMN's ``scatter_dataset`` hands each worker a fixed part of the data
set. trainkit instead keeps the single-process order and splits each batch:
every rank draws the same seeded permutation of the whole epoch (the
loader's generator, seeded alike on every rank) and takes its rows of each
global batch of ``data.batch_size`` samples. So a data-parallel step sees
exactly the samples a single process's step sees, the loader's state
(generator at the start of the epoch, batches done) is the same on every
rank and in a single process, and a checkpoint resumes with any number of
ranks.

A batch of ``n`` rows is split as evenly as it goes: with ``size`` ranks the
first ``n % size`` ranks hold ``n // size + 1`` consecutive rows, the others
``n // size`` (32 rows on 3 ranks: 11, 11, 10). A rank left without a row
(the epoch's last batch smaller than the number of ranks) still runs the
step on a copy of the batch's first rows with weight zero, so that every
rank makes the same collective calls (sync batch norm) in the same order.

Random augmentation is drawn per global batch (``default_rng([epoch_seed,
b])``), so a rank fetches and augments the whole batch and keeps its rows:
the augmented samples are bit for bit those of a single process. Without
random augmentation only the rank's rows are read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd.tensor import Tensor
from ..data.loader import DataLoader

__all__ = ["Share", "ShardedLoader", "BatchShardLoader", "split_rows"]


def split_rows(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of an ``n``-row batch that ``rank`` of ``size`` holds (see the module docstring)."""
    q, rem = divmod(n, size)
    start = rank * q + min(rank, rem)
    return start, start + q + (1 if rank < rem else 0)


@dataclass(frozen=True)
class Share:
    """This rank's part of the current global batch."""

    total: int   # rows in the global batch
    start: int
    stop: int

    @property
    def rows(self) -> int:
        """Real rows this rank holds (0 for a padding step)."""
        return self.stop - self.start

    @property
    def padding(self) -> bool:
        """True when the rank holds no row and runs the step on placeholder rows with weight zero."""
        return self.stop == self.start

    def fetched(self) -> slice:
        """The rows of the global batch this rank actually computes on."""
        return slice(0, min(2, self.total)) if self.padding else slice(self.start, self.stop)


def _rows(batch, rows: slice):
    """The same rows of every tensor/array in a (nested) batch."""
    if isinstance(batch, Tensor):
        return Tensor(np.ascontiguousarray(batch._array[rows]))
    if isinstance(batch, np.ndarray):
        return np.ascontiguousarray(batch[rows])
    if isinstance(batch, tuple):
        return tuple(_rows(b, rows) for b in batch)
    if isinstance(batch, list):
        return [_rows(b, rows) for b in batch]
    if isinstance(batch, dict):
        return {k: _rows(v, rows) for k, v in batch.items()}
    raise TypeError(f"cannot take a rank's rows of a batch of {type(batch).__name__}")


def _same_loader_args(loader: DataLoader) -> dict:
    if not getattr(loader, "_own_order", False):
        raise TypeError("data-parallel training needs a DataLoader that orders a map-style dataset itself "
                        "(no sampler, batch_sampler or IterableDataset, and a batch_size)")
    args = dict(batch_size=loader.batch_size, shuffle=loader.shuffle, drop_last=loader.drop_last,
                transform=loader.transform, collate_fn=None if loader._default_collate else loader.collate_fn)
    if loader.generator is not None:
        args["generator"] = loader.generator
    else:
        args["seed"] = loader.seed
    return args


class ShardedLoader(DataLoader):
    """The training loader of one rank: the global loader's batches, cut to this rank's rows.

    Args:
        loader: the single-process training loader (its dataset, batch size,
            shuffling, seed and transforms are taken over).
        rank, size: this rank and the number of ranks.

    ``len()``, ``state_dict()`` and ``load_state_dict()`` are the global
    loader's: global batches, generator state and batches done.
    :attr:`share` describes the rows of the batch last handed out.
    """

    def __init__(self, loader: DataLoader, rank: int, size: int):
        super().__init__(loader.dataset, **_same_loader_args(loader))
        object.__setattr__(self, "rank", rank)
        object.__setattr__(self, "size", size)
        self.share: Share | None = None

    def _fetch(self, idx, rng):
        # DataLoader._iter_own calls this with the global batch's indices and its augmentation generator.
        start, stop = split_rows(len(idx), self.rank, self.size)
        share = Share(len(idx), start, stop)
        self.share = share
        rows = share.fetched()
        if rng is not None:  # random augmentation: draw it for the whole batch, as a single process does
            return _rows(super()._fetch(idx, rng), rows)
        return super()._fetch(np.asarray(idx)[rows], None)


class BatchShardLoader(DataLoader):
    """An evaluation loader of one rank: whole batches ``rank, rank + size, ...`` of an in-order loader.

    Each batch is computed as in a single process (same rows, same batch
    mean), so the summed metrics equal a single process's up to the order of
    the sums.
    """

    def __init__(self, loader: DataLoader, rank: int, size: int):
        args = _same_loader_args(loader)
        if args["shuffle"]:
            raise ValueError("BatchShardLoader splits an in-order (evaluation) loader")
        super().__init__(loader.dataset, **args)
        object.__setattr__(self, "rank", rank)
        object.__setattr__(self, "size", size)

    def __iter__(self):
        n, bs = len(self.dataset), self.batch_size
        for b in range(self.rank, DataLoader.__len__(self), self.size):
            yield self._fetch(np.arange(b * bs, min((b + 1) * bs, n)), None)
