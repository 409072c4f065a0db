"""Data parallelism without MPI: the pieces whose behaviour one process can check.

How batches are split (and that the ranks' rows put together are exactly a
single process's batch, random augmentation included), per-batch dropout
draws, loss denominators, summing meters, the launcher's environment reading
and BLAS-thread choice, and the ``--procs`` refusals. The multi-rank runs are
in tests/test_distributed_mpi.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit as tk
from trainkit import nn, rankenv
from trainkit.autograd.random import batch_share, uniform_for_batch
from trainkit.data.dataset import ArrayDataset
from trainkit.data.loader import DataLoader
from trainkit.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip
from trainkit.distributed import mpi_env_rank, mpi_world_size
from trainkit.distributed.allreduce import loss_weight
from trainkit.distributed.launch import rank_command
from trainkit.distributed.sampler import BatchShardLoader, Share, ShardedLoader, split_rows
from trainkit.distributed.trainer import reduce_meter
from trainkit.train.metrics import ClassificationMeter, RegressionMeter


@pytest.mark.parametrize("n,size", [(32, 2), (32, 3), (15, 2), (5, 4), (2, 3), (1, 2), (7, 7), (100, 6)])
def test_rows_split_evenly_in_rank_order(n, size):
    spans = [split_rows(n, r, size) for r in range(size)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # consecutive, rank order
    counts = [b - a for a, b in spans]
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)  # extra rows go first


def test_a_rank_without_rows_computes_on_placeholder_rows():
    assert Share(2, 2, 2).padding and Share(2, 2, 2).fetched() == slice(0, 2)
    assert Share(1, 1, 1).fetched() == slice(0, 1)
    assert not Share(32, 16, 32).padding and Share(32, 16, 32).fetched() == slice(16, 32)


def _images(n=23):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 3, 6, 6), dtype=np.uint8)
    return ArrayDataset(x, rng.integers(0, 4, n))


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("augment", [False, True])
def test_ranks_rows_together_are_the_single_process_batches(size, augment):
    """Same permutation, same augmentation draws: the ranks' rows concatenated are a single process's batches,
    in every epoch, and the loader state is the single process's."""
    transform = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), Normalize([0.5] * 3, [0.2] * 3)]) \
        if augment else Normalize([0.5] * 3, [0.2] * 3)
    single = DataLoader(_images(), batch_size=8, shuffle=True, seed=5, transform=transform)
    ranks = [ShardedLoader(DataLoader(_images(), batch_size=8, shuffle=True, seed=5, transform=transform), r, size)
             for r in range(size)]
    for _ in range(2):  # two epochs: a new permutation each, the same everywhere
        iters = [iter(r) for r in ranks]
        for xs, ys in single:
            parts = [next(it) for it in iters]
            real = [p for p, r in zip(parts, ranks) if not r.share.padding]
            assert all(len(r) == len(single) for r in ranks)
            np.testing.assert_array_equal(np.concatenate([p[0].numpy() for p in real]), xs.numpy())
            np.testing.assert_array_equal(np.concatenate([p[1].numpy() for p in real]), ys.numpy())
        assert all(r.state_dict() == single.state_dict() for r in ranks)


def test_a_rank_resumes_mid_epoch_from_the_single_process_state():
    single = DataLoader(_images(), batch_size=4, shuffle=True, seed=3)
    it = iter(single)
    for _ in range(3):
        next(it)
    state = single.state_dict()
    rest = [b[1].numpy() for b in it]
    rank = ShardedLoader(DataLoader(_images(), batch_size=4, shuffle=True, seed=3), 1, 2)
    rank.load_state_dict(state)
    got = [b[1].numpy() for b in rank]
    assert [g.tolist() for g in got] == [r[2:].tolist() for r in rest]


def test_evaluation_shards_are_whole_batches():
    loader = DataLoader(_images(), batch_size=5, shuffle=False)
    everything = [b[1].numpy().tolist() for b in loader]
    for size in (2, 3):
        shards = [[b[1].numpy().tolist() for b in BatchShardLoader(loader, r, size)] for r in range(size)]
        assert sorted(sum(shards, [])) == sorted(everything)
        assert shards[1] == everything[1::size]
    with pytest.raises(ValueError):
        BatchShardLoader(DataLoader(_images(), batch_size=5, shuffle=True, seed=0), 0, 2)


def test_a_loader_with_its_own_sampler_cannot_be_sharded():
    ds = _images()
    with pytest.raises(TypeError, match="orders a map-style dataset itself"):
        ShardedLoader(DataLoader(ds, batch_size=4, sampler=list(range(len(ds)))), 0, 2)


def test_dropout_inside_a_batch_share_draws_the_rows_of_the_whole_batch():
    x = tk.ones(10, 7)
    tk.manual_seed(11)
    whole = nn.functional.dropout(x, 0.4).numpy()
    after_whole = tk.get_rng_state()
    for start, stop in ((0, 5), (5, 10), (3, 4)):
        tk.manual_seed(11)
        with batch_share(10, start, stop):
            part = nn.functional.dropout(x[start:stop], 0.4).numpy()
        np.testing.assert_array_equal(part, whole[start:stop])
        assert tk.get_rng_state() == after_whole  # every rank's generator moves as a single process's
    rng = np.random.default_rng(0)
    with batch_share(10, 0, 5):
        assert uniform_for_batch(rng, (3, 2)).shape == (3, 2)  # not a batch-shaped draw: left alone
    with pytest.raises(ValueError):
        batch_share(4, 3, 6)


def test_loss_denominators():
    y = np.array([0, 2, -100, 1, 2])
    assert loss_weight(nn.CrossEntropyLoss(), y) == (4.0, True)
    w = tk.tensor(np.array([1.0, 2.0, 0.5], dtype=np.float32))
    assert loss_weight(nn.CrossEntropyLoss(weight=w), y) == (1.0 + 0.5 + 2.0 + 0.5, True)
    assert loss_weight(nn.NLLLoss(ignore_index=2), y) == (3.0, True)
    assert loss_weight(nn.CrossEntropyLoss(reduction="sum"), y) == (1.0, False)
    assert loss_weight(nn.MSELoss(), np.zeros((6, 3), np.float32)) == (6.0, True)
    soft = np.full((4, 3), 1 / 3, np.float32)
    assert loss_weight(nn.CrossEntropyLoss(), soft) == (4.0, True)


class _FakeComm:
    """A second rank whose meter state is given: allreduce_ adds it."""

    def __init__(self, other: np.ndarray):
        self.other = other

    def allreduce_(self, buf, account=True):
        buf += self.other
        return buf


def _flat(meter, flag=0.0):
    state = meter.state()
    return np.concatenate([np.asarray(state[k], np.float64).reshape(-1) for k in sorted(state)] + [[flag]])


def test_meters_sum_over_ranks_to_the_single_process_meter():
    rng = np.random.default_rng(0)
    out, y = rng.normal(size=(20, 4)), rng.integers(0, 4, 20)
    single, a, b = ClassificationMeter(4), ClassificationMeter(4), ClassificationMeter(4)
    single.update(0.5, out, y)
    a.update(0.5, out[:11], y[:11])
    b.update(0.5, out[11:], y[11:])
    b.update(0.7, out[:0], y[:0])  # a rank without rows adds nothing
    flag = reduce_meter(a, _FakeComm(_flat(b, 1.0)), 0.0)
    assert flag == 1.0
    assert a.n == single.n and np.array_equal(a.confusion, single.confusion) and a.loss == pytest.approx(single.loss)
    assert a.confusion.dtype == np.int64 and isinstance(a.n, int)
    r1, r2, rs = RegressionMeter(), RegressionMeter(), RegressionMeter()
    t = rng.normal(size=(9, 2)).astype(np.float32)
    o = t + rng.normal(size=(9, 2)).astype(np.float32)
    rs.update(0.3, o, t)
    r1.update(0.3, o[:4], t[:4])
    r2.update(0.3, o[4:], t[4:])
    r1.update(0.3, o[:0], t[:0])
    reduce_meter(r1, _FakeComm(_flat(r2)))
    assert (r1.n, r1.m) == (rs.n, rs.m) and r1.r2 == pytest.approx(rs.r2) and r1.mse == pytest.approx(rs.mse)


def test_launcher_environment_is_read_without_mpi():
    assert mpi_world_size({}) == 1 and mpi_env_rank({}) == 0
    assert mpi_world_size({"PMI_SIZE": "4", "PMI_RANK": "3"}) == 4 and mpi_env_rank({"PMI_RANK": "3"}) == 3
    assert mpi_world_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert rankenv.local_ranks({"MPI_LOCALNRANKS": "3"}) == 3
    assert rankenv.local_ranks({"SLURM_STEP_TASKS_PER_NODE": "4(x2)"}) == 4
    assert rankenv.local_ranks({}) is None


def test_ranks_sharing_a_machine_share_its_cores(monkeypatch):
    monkeypatch.setattr(rankenv, "cores", lambda: 8)
    monkeypatch.delitem(__import__("sys").modules, "numpy")  # as before numpy loads (restored afterwards)
    env = {"MPI_LOCALNRANKS": "3"}
    d = rankenv.apply(env)
    assert d["threads"] == 2 and d["source"] == "trainkit"
    assert all(env[k] == "2" for k in rankenv.THREAD_VARS)
    assert "2 BLAS thread(s) per rank (set by trainkit: 8 cores / 3 ranks" in rankenv.describe(d)
    env = {"MPI_LOCALNRANKS": "3", "OMP_NUM_THREADS": "4"}
    d = rankenv.apply(env)
    assert d == {"cores": 8, "local_ranks": 3, "threads": 4, "source": "user", "variable": "OMP_NUM_THREADS"}
    assert "OPENBLAS_NUM_THREADS" not in env
    assert rankenv.apply({"MPI_LOCALNRANKS": "1"})["source"] == "default"
    assert rankenv.apply({}) is None


def test_ranks_threads_are_not_set_once_numpy_is_loaded(monkeypatch):
    monkeypatch.setattr(rankenv, "cores", lambda: 4)
    env = {"MPI_LOCALNRANKS": "2"}
    d = rankenv.apply(env)
    assert d["source"] == "numpy-already-loaded" and "OMP_NUM_THREADS" not in env
    assert "OMP_NUM_THREADS=2" in rankenv.describe(d)


def test_rank_command_repeats_the_arguments_without_procs():
    cmd = rank_command("c.yaml", ["a=1", "b=2"], None, "runs", None, True)
    assert cmd[1:] == ["-m", "trainkit", "train", "c.yaml", "--set", "a=1", "--set", "b=2", "--runs-dir", "runs",
                       "--quiet"]
    assert rank_command(None, [], None, None, "runs/x", False)[-2:] == ["--resume", "runs/x"]


def test_procs_without_mpi4py_names_the_extra(monkeypatch):
    import importlib.util

    from trainkit.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mpi4py" else real(name, *a))
    result = CliRunner().invoke(app, ["train", "configs/iris_mlp.yaml", "--procs", "2"])
    assert result.exit_code == 2
    assert "trainkit[mpi]" in result.output and "Traceback" not in result.output


def test_procs_under_an_mpi_job_is_refused(monkeypatch):
    from trainkit.cli import app

    monkeypatch.setenv("PMI_SIZE", "2")
    result = CliRunner().invoke(app, ["train", "configs/iris_mlp.yaml", "--procs", "2"])
    assert result.exit_code == 2 and "under mpiexec leave it out" in result.output


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    from trainkit.distributed.sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

    tk.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(nn.BatchNorm1d(4)))
    before = dict(model.state_dict())
    params = [id(p) for p in model.parameters()]
    convert_sync_batchnorm(model, comm=None)
    assert isinstance(model[1], SyncBatchNorm) and isinstance(model[2][0], SyncBatchNorm)
    assert [id(p) for p in model.parameters()] == params  # an optimizer built before keeps working
    assert list(model.state_dict()) == list(before)
    x = tk.tensor(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
    tk.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(nn.BatchNorm1d(4)))
    np.testing.assert_array_equal(model(x).detach().numpy(), plain(x).detach().numpy())
