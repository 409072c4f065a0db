"""Data-parallel training over MPI (mpi4py), after ChainerMN: three small pieces around the unchanged trainer.

* :class:`~.communicator.Communicator` - rank, size, the ranks on this
  machine and the collectives training needs (ChainerMN's ``create_communicator``);
* :class:`~.allreduce.GradientAllreduce` - one Allreduce over a flat buffer per
  step makes every rank's gradient the global batch's (the multi-node optimizer);
* :class:`~.sampler.ShardedLoader` - each rank's rows of every global batch
  of one seeded permutation (``scatter_dataset``, per batch);

plus :class:`~.sync_batchnorm.SyncBatchNorm` (``train.sync_batchnorm: true``),
the rank's trainer (:mod:`.trainer`), the rank's session (:mod:`.session`) and
``trainkit train --procs N`` (:mod:`.launch`). mpi4py is imported only when a
job runs: ``pip install 'trainkit[mpi]'``.

Importing this package is cheap (the CLI asks :func:`mpi_world_size` on every
``trainkit train``); the pieces load on first use.
"""
from __future__ import annotations

from .communicator import MPIUnavailable, RankFailed, mpi_env_rank, mpi_world_size

__all__ = ["MPIUnavailable", "RankFailed", "mpi_env_rank", "mpi_world_size", "Communicator", "GradientAllreduce",
           "ShardedLoader", "BatchShardLoader", "SyncBatchNorm", "convert_sync_batchnorm", "DistributedTrainer"]


def __getattr__(name):
    if name == "Communicator":
        from .communicator import Communicator
        return Communicator
    if name == "GradientAllreduce":
        from .allreduce import GradientAllreduce
        return GradientAllreduce
    if name in ("ShardedLoader", "BatchShardLoader"):
        from . import sampler
        return getattr(sampler, name)
    if name in ("SyncBatchNorm", "convert_sync_batchnorm"):
        from . import sync_batchnorm
        return getattr(sync_batchnorm, name)
    if name == "DistributedTrainer":
        from .trainer import DistributedTrainer
        return DistributedTrainer
    raise AttributeError(f"module 'trainkit.distributed' has no attribute {name!r}")
