"""Optimizer step benchmark: trainkit.optim against torch.optim on the same parameters.

Run as ``python benchmarks/optim_step.py`` (a benchmark, never part of the test
suite). Parameters shaped like a small CNN's (about 1.2 M float32 values in 8
tensors) get fixed random gradients; each optimizer's ``step()`` is timed in
trainkit and in torch alternately (trainkit, torch, trainkit, ...) so that
drift on a shared machine hits both alike, and the median time per step is
reported with the ratio trainkit / torch.

Options: ``--optimizers SGD,Adam`` to choose, ``--repeats 5``, ``--steps 20``
(steps per timed run), ``--threads N`` (torch.set_num_threads; numpy's
elementwise ufuncs, all an optimizer step uses, run on one thread anyway).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

# benchmark the trainkit of this checkout, whatever an editable install points at
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit.optim as toptim  # noqa: E402
from trainkit.autograd.tensor import Tensor  # noqa: E402

try:  # the reference is optional: without torch only trainkit's figures are shown
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

SHAPES = [(32, 3, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64, 3, 3), (128,), (512, 2048), (512,), (10, 512)]
OPTIMIZERS = {
    "SGD": {"lr": 0.01, "momentum": 0.9},
    "Adam": {},
    "Adagrad": {},
    "Adadelta": {},
    "Adamax": {},
    "NAdam": {},
    "RAdam": {},
    "RMSprop": {},
}


def _setup(lib, name, init, grads):
    if lib == "trainkit":
        params = [Tensor(a.copy(), requires_grad=True) for a in init]
        for p, g in zip(params, grads):
            p.grad = Tensor(g.copy())
        return getattr(toptim, name)(params, **OPTIMIZERS[name])
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g.copy())
    # foreach=False: the per-parameter loop torch itself runs on CPU by default
    return getattr(torch.optim, name)(params, foreach=False, **OPTIMIZERS[name])


def _time(opt, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    """Parse the options, time every optimizer in both libraries and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in SHAPES]
    grads = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in SHAPES]
    n = sum(a.size for a in init)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'} ({args.threads} threads); "
          f"{n / 1e6:.2f} M float32 parameters in {len(SHAPES)} tensors; median of {args.repeats} x {args.steps} steps")
    print(f"{'optimizer':<10}{'trainkit ms':>12}{'torch ms':>10}{'ratio':>8}")
    for name in args.optimizers.split(","):
        ours = _setup("trainkit", name, init, grads)
        theirs = _setup("torch", name, init, grads) if torch is not None else None
        _time(ours, 2)
        if theirs is not None:
            _time(theirs, 2)
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):
            t_ours.append(_time(ours, args.steps))
            if theirs is not None:
                t_theirs.append(_time(theirs, args.steps))
        a = statistics.median(t_ours) * 1e3
        if theirs is None:
            print(f"{name:<10}{a:>12.2f}")
            continue
        b = statistics.median(t_theirs) * 1e3
        print(f"{name:<10}{a:>12.2f}{b:>10.2f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
