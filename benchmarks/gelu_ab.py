"""A/B of the GELU op: numpy passes against the compiled numba forward, at 1 and 2 intra-op threads.

Run as ``python benchmarks/gelu_ab.py [N C H W]`` (default 256 16 32 32, the first activation of the
fast-CIFAR net at batch 256). Prints the wall time of the forward and the backward (median of 7) with
the numba kernels off and on (``trainkit.autograd.ops.jit.set_enabled``), each at 1 and 2 threads, and
checks that both paths give the same values.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit  # noqa: E402
from trainkit.autograd.ops import jit  # noqa: E402
from trainkit.autograd.ops.elementwise import GELU  # noqa: E402


def main() -> None:
    shape = tuple(int(a) for a in sys.argv[1:5]) or (256, 16, 32, 32)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    results = {}
    print(f"GELU on {shape} float32, wall ms, median of 7")
    for use_jit in (False, True):
        jit.set_enabled(use_jit)
        if use_jit and jit.kernels() is None:
            print("numba is not installed (pip install 'trainkit[fast]'): no compiled path to compare")
            break
        for threads in (1, 2):
            trainkit.set_num_threads(threads)
            op = GELU()
            op.forward(x), op.backward(gy)  # compile / warm up
            fwd, bwd = [], []
            for _ in range(7):
                op = GELU()
                t0 = time.perf_counter()
                y = op.forward(x)
                t1 = time.perf_counter()
                g = op.backward(gy)[0]
                fwd.append(t1 - t0)
                bwd.append(time.perf_counter() - t1)
            results[use_jit] = (y, g)
            print(f"  {'numba' if use_jit else 'numpy'}, {threads} thread(s): forward "
                  f"{statistics.median(fwd) * 1e3:6.1f}  backward {statistics.median(bwd) * 1e3:6.1f}")
    if len(results) == 2:
        same = all(np.array_equal(a, b) for a, b in zip(results[False], results[True]))
        print("numpy and numba paths give the same values:", same)


if __name__ == "__main__":
    main()
