"""Op-level A/B: conv2d, batch norm and 2x2 max pool of this tree against another tree's, in one process.

Run as ``python benchmarks/ops_ab.py /path/to/other/trainkit-checkout`` (one
thread). The other tree's ``trainkit/autograd/ops`` modules are loaded under
a separate package name, and each op's forward and backward are timed by CPU
time (``time.thread_time``), old and new alternating, median of 15 calls, on
the layer shapes of the benchmark's residual nets and LeNet at batch 64 (or
``--batch``). ``TRAINKIT_NUMBA=0`` times this tree's numpy code.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit  # noqa: E402
from trainkit.autograd.ops import conv as new_conv  # noqa: E402
from trainkit.autograd.ops import norm as new_norm  # noqa: E402
from trainkit.autograd.ops import pool as new_pool  # noqa: E402


def load_ops(root: str) -> types.SimpleNamespace:
    """The other tree's conv, norm and pool op modules, as package ``oldtk`` (its own engine too)."""
    pkg_dir = os.path.join(root, "trainkit")
    spec = importlib.util.spec_from_file_location("oldtk", os.path.join(pkg_dir, "__init__.py"),
                                                  submodule_search_locations=[pkg_dir])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["oldtk"] = mod
    spec.loader.exec_module(mod)
    return types.SimpleNamespace(conv=importlib.import_module("oldtk.autograd.ops.conv"),
                                 norm=importlib.import_module("oldtk.autograd.ops.norm"),
                                 pool=importlib.import_module("oldtk.autograd.ops.pool"))


def _time(make, args, gy, needs):
    op = make()
    op.needs = needs
    t0 = time.thread_time()
    op.forward(*args)
    t1 = time.thread_time()
    op.backward(gy)
    return t1 - t0, time.thread_time() - t1


def compare(name, make_old, make_new, args, gy, needs, repeats=15):
    res = {"old": [], "new": []}
    for _ in range(repeats):
        res["old"].append(_time(make_old, args, gy, needs))
        res["new"].append(_time(make_new, args, gy, needs))
    o, n = (np.median(np.array(res[k]), axis=0) * 1e3 for k in ("old", "new"))
    print(f"{name:44s} fwd {o[0]:6.2f} -> {n[0]:6.2f} ms   bwd {o[1]:6.2f} -> {n[1]:6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="root of the other checkout (the one with trainkit/ inside)")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    old = load_ops(args.other)
    trainkit.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = args.batch
    convs = [  # (C, O, H, k, stride, pad, input needs grad, bias)
        (3, 16, 32, 3, 1, 1, False, False), (16, 16, 16, 3, 1, 1, True, False), (16, 32, 16, 3, 2, 1, True, False),
        (32, 32, 8, 3, 1, 1, True, False), (16, 32, 16, 1, 2, 0, True, False), (16, 16, 32, 3, 1, 1, True, False),
        (3, 6, 32, 5, 1, 0, False, True), (6, 16, 14, 5, 1, 0, True, True),
    ]
    for c, o, h, k, s, p, nx, bias in convs:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        ho = (h + 2 * p - k) // s + 1
        gy = rng.standard_normal((n, o, ho, ho)).astype(np.float32)
        a = (x, w, b) if bias else (x, w)
        needs = (nx, True, True) if bias else (nx, True)
        compare(f"conv2d {c}->{o} {k}x{k} s{s} p{p} at {h}x{h}", lambda: old.conv.Conv2d(s, p),
                lambda: new_conv.Conv2d(s, p), a, gy, needs)
    for shape in [(n, 16, 32, 32), (n, 16, 16, 16), (n, 32, 8, 8)]:
        x = rng.standard_normal(shape).astype(np.float32)
        gy = rng.standard_normal(shape).astype(np.float32)
        c = shape[1]
        wb = (np.ones(c, np.float32), np.zeros(c, np.float32))

        def bn(mod, c=c):
            return lambda: mod.BatchNorm(np.zeros(c, np.float32), np.ones(c, np.float32), training=True)
        compare(f"batch norm {shape}", bn(old.norm), bn(new_norm), (x,) + wb, gy, (True, True, True))
    for shape in [(n, 16, 32, 32), (n, 6, 28, 28)]:
        x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)  # ReLU'd: many ties
        gy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
        compare(f"max pool 2x2 {shape}", old.pool.MaxPool2x2, new_pool.MaxPool2x2, (x,), gy, (True,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
