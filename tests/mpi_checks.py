"""Checks that need several MPI ranks; tests/test_distributed_mpi.py runs this under ``mpiexec -n 2`` and ``-n 3``.

Every rank computes the single-process answer on the whole batch itself and
compares it with the data-parallel one; rank 0 prints ``ok <check>`` per check
(any failure raises, which the MPI launcher turns into a non-zero exit).
"""
from __future__ import annotations

import sys

import numpy as np

import trainkit as tk
from trainkit import nn
from trainkit.distributed.allreduce import GradientAllreduce, loss_weight
from trainkit.distributed.communicator import Communicator
from trainkit.distributed.sampler import Share, split_rows
from trainkit.distributed.sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm


def close(a, b, tol=2e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(), 1e-12)
    return np.abs(a - b).max() <= tol * scale, np.abs(a - b).max() / scale


def check(name, ok, detail=""):
    if not ok:
        raise AssertionError(f"rank {COMM.rank}: {name} failed {detail}")


def model(features_norm=True):
    # With 2 rows a BatchNorm1d maps every input to +-1: its input gradient is rounding noise, nothing to compare.
    tk.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.GELU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6, bias=False), nn.BatchNorm1d(6) if features_norm else nn.Identity(),
                         nn.GELU(), nn.Linear(6, 3))


def step(m, x, y, loss_fn, share: Share, reducer):
    """One data-parallel step as the trainer takes it (sum-form backward, one Allreduce)."""
    rows = share.fetched()
    for layer in m.modules():
        if isinstance(layer, SyncBatchNorm):
            layer.padding = share.padding
    out = m(tk.tensor(x[rows]))
    target = tk.tensor(y[rows])
    d, mean = loss_weight(loss_fn, y[rows])
    if share.padding or not d:
        d, value_r = 0.0, 0.0
        (out.sum() * 0.0).backward()
    else:
        loss = loss_fn(out, target)
        value_r = loss.item()
        loss.backward(tk.tensor(np.asarray(d if mean else 1.0, dtype=np.float32)))
    return reducer.reduce(denominator=d, loss_sum=value_r * d if mean else value_r,
                          rows_fraction=share.rows / share.total, stop=COMM.rank == 1 and STOP, mean=mean)


def sync_batchnorm_is_the_full_batch(n_rows):
    """Forward rows, gradients, running statistics of sync batch norm = plain batch norm on the whole batch."""
    rng = np.random.default_rng(n_rows)
    x = rng.normal(size=(n_rows, 2, 5, 5)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 3, n_rows)
    loss_fn = nn.CrossEntropyLoss()
    ref = model(n_rows > 2)
    out = ref(tk.tensor(x))
    loss = loss_fn(out, tk.tensor(y))
    loss.backward()
    dist = convert_sync_batchnorm(model(n_rows > 2), COMM)
    check("converted", sum(isinstance(m, SyncBatchNorm) for m in dist.modules()) == 1 + (n_rows > 2))
    reducer = GradientAllreduce(dist, list(dist.parameters()), COMM)
    start, stop = split_rows(n_rows, COMM.rank, COMM.size)
    value, stopped = step(dist, x, y, loss_fn, Share(n_rows, start, stop), reducer)
    check("loss", close(value, loss.item())[0], close(value, loss.item()))
    check("stop flag agreed", stopped == STOP)
    for (k, p), q in zip(dist.named_parameters(), ref.parameters()):
        ok, err = close(p.grad.numpy(), q.grad.numpy(), 1e-5)
        check(f"gradient {k} ({n_rows} rows)", ok, f"{err:.2e}")
    for (k, b), c in zip(dist.named_buffers(), ref.buffers()):
        ok, err = close(b.numpy(), c.numpy(), 1e-5)
        check(f"buffer {k} ({n_rows} rows)", ok, f"{err:.2e}")
    dist.eval()
    ref.eval()
    ok, err = close(dist(tk.tensor(x)).detach().numpy(), ref(tk.tensor(x)).detach().numpy(), 1e-5)
    check("eval outputs", ok, f"{err:.2e}")


def weighted_losses_average_exactly():
    """Class weights, ignored targets and summed losses: the reduced gradient is the whole batch's."""
    rng = np.random.default_rng(7)
    n = 11
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 4, n)
    y[: n // 2] = -100 if COMM.size > 1 else y[: n // 2]  # rank 0's rows mostly ignored
    weight = tk.tensor(np.array([0.5, 2.0, 1.0, 3.0], dtype=np.float32))
    for loss_fn in (nn.CrossEntropyLoss(weight=weight), nn.CrossEntropyLoss(reduction="sum"),
                    nn.CrossEntropyLoss(label_smoothing=0.1), nn.NLLLoss(weight=weight)):
        tk.manual_seed(1)
        ref = nn.Sequential(nn.Linear(5, 4), nn.LogSoftmax(dim=1)) if isinstance(loss_fn, nn.NLLLoss) \
            else nn.Linear(5, 4)
        loss = loss_fn(ref(tk.tensor(x)), tk.tensor(y))
        loss.backward()
        tk.manual_seed(1)
        dist = nn.Sequential(nn.Linear(5, 4), nn.LogSoftmax(dim=1)) if isinstance(loss_fn, nn.NLLLoss) \
            else nn.Linear(5, 4)
        reducer = GradientAllreduce(dist, list(dist.parameters()), COMM)
        start, stop = split_rows(n, COMM.rank, COMM.size)
        value, _ = step(dist, x, y, loss_fn, Share(n, start, stop), reducer)
        check(f"{loss_fn!r} value", close(value, loss.item())[0], close(value, loss.item()))
        for p, q in zip(dist.parameters(), ref.parameters()):
            ok, err = close(p.grad.numpy(), q.grad.numpy(), 1e-5)
            check(f"{loss_fn!r} gradient", ok, f"{err:.2e}")


def per_rank_batchnorm_statistics_are_shared():
    """Unsynchronised batch norm: the running mean is the single process's, the same on every rank."""
    rng = np.random.default_rng(3)
    n = 10
    x = rng.normal(size=(n, 3)).astype(np.float32) * 2 + rng.normal(size=(1, 3)).astype(np.float32)
    ref = nn.BatchNorm1d(3)
    ref(tk.tensor(x))
    dist = nn.BatchNorm1d(3)
    start, stop = split_rows(n, COMM.rank, COMM.size)
    if stop > start:
        dist(tk.tensor(x[start:stop] if stop - start > 1 else x[start:start + 2]))
    GradientAllreduce(dist, [], COMM).reduce(denominator=stop - start, loss_sum=0.0,
                                            rows_fraction=(stop - start) / n, stop=False)
    check("running_mean", close(dist.running_mean.numpy(), ref.running_mean.numpy(), 1e-6)[0])
    every = COMM.allgather(dist.running_var.numpy())
    check("running_var equal on all ranks", all(np.array_equal(every[0], v) for v in every))


def communicator_moves_objects():
    got = COMM.bcast_obj({"a": [1, 2, 3], "from": COMM.rank} if COMM.rank == 0 else None)
    check("bcast_obj", got == {"a": [1, 2, 3], "from": 0})
    every = COMM.gather_obj(("rank", COMM.rank, "x" * COMM.rank * 1000))
    check("gather_obj", [e[1] for e in every] == list(range(COMM.size)) and len(every[2 % COMM.size][2]) ==
          (2 % COMM.size) * 1000)
    rows = COMM.allgather(np.full(3, COMM.rank, dtype=np.int64))
    check("allgather", rows.shape == (COMM.size, 3) and rows[:, 0].tolist() == list(range(COMM.size)))
    buf = np.full(5, COMM.rank + 1, dtype=np.float32)
    COMM.allreduce_(buf)
    check("allreduce", buf.tolist() == [COMM.size * (COMM.size + 1) / 2] * 5)


if __name__ == "__main__":
    COMM = Communicator()
    STOP = True
    checks = [("communicator", communicator_moves_objects),
              ("sync batch norm, uneven split", lambda: sync_batchnorm_is_the_full_batch(2 * COMM.size + 1)),
              ("sync batch norm, a rank without rows", lambda: sync_batchnorm_is_the_full_batch(COMM.size - 1)
               if COMM.size > 2 else sync_batchnorm_is_the_full_batch(3)),
              ("weighted, ignored and summed losses", weighted_losses_average_exactly),
              ("per-rank batch norm statistics", per_rank_batchnorm_statistics_are_shared)]
    for name, fn in checks:
        fn()
        if COMM.rank == 0:
            print("ok", name, flush=True)
    COMM.finish()
    sys.exit(0)
