"""Op micro-benchmarks against PyTorch: GELU (and the erf behind it), einsum, conv1d, sort/topk, gather, embedding.

    python benchmarks/ops.py                 # 1 and 2 threads
    python benchmarks/ops.py --threads 1

Each case runs forward + backward (where there is a gradient) on float32 data,
trainkit and torch alternately, and reports the best of ``--repeat`` timings
per framework and their ratio (torch time / trainkit time: > 1 means trainkit
is faster). The GELU rows also time the erf variants trainkit used before (each
against the same torch GELU): the 1.2e-7-accurate Numerical Recipes series
(the old fallback without scipy) and scipy's erf (the old path with scipy
installed). Not a test: figures depend on
the machine and its load.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trainkit as tk  # noqa: E402
import trainkit.nn.functional as F  # noqa: E402
from trainkit.autograd.ops import special  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def erf_numerical_recipes(x):
    """The erf trainkit used without scipy before (fractional error < 1.2e-7), for the before/after row."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    r = t * np.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return np.where(x >= 0, 1 - r, r - 1).astype(x.dtype, copy=False)


def gelu_cases(rng):
    x = rng.standard_normal((128, 4096)).astype(np.float32)
    g = rng.standard_normal((128, 4096)).astype(np.float32)
    cases = []

    def ours(erf=None):
        def run():
            saved = special.erf
            if erf is not None:  # the GELU op looks erf up in its module at call time
                import trainkit.autograd.ops.elementwise as ew
                ew.erf = erf
            try:
                t = tk.tensor(x, requires_grad=True)
                (F.gelu(t) * tk.Tensor(g)).sum().backward()
            finally:
                import trainkit.autograd.ops.elementwise as ew
                ew.erf = saved
        return run

    cases.append(("GELU fwd+bwd (128, 4096): exact numpy erf (now)", ours()))
    cases.append(("GELU fwd+bwd: old fallback erf (1.2e-7)", ours(erf_numerical_recipes)))
    try:
        from scipy.special import erf as scipy_erf
        cases.append(("GELU fwd+bwd: scipy erf (old path with scipy)", ours(scipy_erf)))
    except ImportError:
        pass
    return cases, lambda torch: (lambda: _torch_gelu(torch, x, g))


def erf_case(rng):
    x = rng.standard_normal((128, 4096)).astype(np.float32)
    return ("erf alone (128, 4096) float32, forward", lambda: special.erf(x),
            lambda torch: (lambda: torch.erf(torch.from_numpy(x))))


def _torch_gelu(torch, x, g):
    t = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.gelu(t) * torch.from_numpy(g)).sum().backward()


def paired_cases(rng):
    """(name, trainkit fn, torch fn factory) for ops with a torch twin."""
    out = []
    a = rng.standard_normal((16, 128, 128)).astype(np.float32)
    b = rng.standard_normal((16, 128, 128)).astype(np.float32)

    def tk_einsum(eq, *arrays):
        def run():
            ts = [tk.tensor(v, requires_grad=True) for v in arrays]
            tk.einsum(eq, *ts).sum().backward()
        return run

    def th_einsum(eq, *arrays):
        def make(torch):
            def run():
                ts = [torch.tensor(v, requires_grad=True) for v in arrays]
                torch.einsum(eq, *ts).sum().backward()
            return run
        return make

    out.append(("einsum bij,bjk->bik (16,128,128) fwd+bwd", tk_einsum("bij,bjk->bik", a, b),
                th_einsum("bij,bjk->bik", a, b)))

    def tk_matmul():
        x, y = tk.tensor(a, requires_grad=True), tk.tensor(b, requires_grad=True)
        (x @ y).sum().backward()

    def th_matmul(torch):
        def run():
            x, y = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
            (x @ y).sum().backward()
        return run

    out.append(("  the same as a @ b (matmul) fwd+bwd", tk_matmul, th_matmul))
    q = rng.standard_normal((8, 4, 64, 32)).astype(np.float32)
    k = rng.standard_normal((8, 4, 64, 32)).astype(np.float32)
    out.append(("einsum bhqd,bhkd->bhqk (8,4,64,32) fwd+bwd", tk_einsum("bhqd,bhkd->bhqk", q, k),
                th_einsum("bhqd,bhkd->bhqk", q, k)))
    m1, m2, m3 = (rng.standard_normal(s).astype(np.float32) for s in ((256, 64), (64, 512), (512, 8)))
    out.append(("einsum ij,jk,kl->il chain fwd+bwd", tk_einsum("ij,jk,kl->il", m1, m2, m3),
                th_einsum("ij,jk,kl->il", m1, m2, m3)))

    x1 = rng.standard_normal((32, 16, 256)).astype(np.float32)
    w1 = rng.standard_normal((32, 16, 5)).astype(np.float32)

    def tk_conv1d():
        xt, wt = tk.tensor(x1, requires_grad=True), tk.tensor(w1, requires_grad=True)
        F.conv1d(xt, wt, padding=2).sum().backward()

    def th_conv1d(torch):
        def run():
            xt, wt = torch.tensor(x1, requires_grad=True), torch.tensor(w1, requires_grad=True)
            torch.nn.functional.conv1d(xt, wt, padding=2).sum().backward()
        return run

    out.append(("conv1d (32,16,256) * (32,16,5) fwd+bwd", tk_conv1d, th_conv1d))

    s = rng.standard_normal((256, 1000)).astype(np.float32)

    def tk_topk():
        t = tk.tensor(s, requires_grad=True)
        tk.topk(t, 10, 1).values.sum().backward()

    def th_topk(torch):
        def run():
            t = torch.tensor(s, requires_grad=True)
            torch.topk(t, 10, 1).values.sum().backward()
        return run

    out.append(("topk k=10 of (256, 1000) fwd+bwd", tk_topk, th_topk))

    def tk_sort():
        t = tk.tensor(s, requires_grad=True)
        tk.sort(t, 1).values.sum().backward()

    def th_sort(torch):
        def run():
            t = torch.tensor(s, requires_grad=True)
            torch.sort(t, 1).values.sum().backward()
        return run

    out.append(("sort (256, 1000) dim 1 fwd+bwd", tk_sort, th_sort))

    emb = rng.standard_normal((10000, 200)).astype(np.float32)
    idx = rng.integers(0, 10000, (35, 20))

    def tk_emb():
        w = tk.tensor(emb, requires_grad=True)
        F.embedding(tk.tensor(idx), w).sum().backward()

    def th_emb(torch):
        def run():
            w = torch.tensor(emb, requires_grad=True)
            torch.nn.functional.embedding(torch.from_numpy(idx), w).sum().backward()
        return run

    out.append(("embedding (10000, 200)[35x20] fwd+bwd", tk_emb, th_emb))
    return out


def run(threads: int, repeat: int) -> None:
    """Time every case at the thread count this process was started with."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    gelu, gelu_torch = gelu_cases(rng)
    print(f"\n{threads} thread(s){'':43s} trainkit ms   torch ms   torch/trainkit")
    # The GELU variants and torch's GELU are timed in turns (round-robin), so load drift hits them alike.
    fns = [fn for _, fn in gelu] + ([gelu_torch(torch)] if torch else [])
    times = [[] for _ in fns]
    for f in fns:
        f()
    for _ in range(repeat):
        for k, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    t_torch = min(times[-1]) if torch else math.nan
    for (name, _), ts in zip(gelu, times):
        t = min(ts)
        print(f"{name:52s} {t * 1e3:9.2f}  {t_torch * 1e3:9.2f}   {t_torch / t:6.2f}")
    for name, fn, make in [erf_case(rng)] + paired_cases(rng):
        t = best(fn, repeat)
        tt = best(make(torch), repeat) if torch else math.nan
        print(f"{name:52s} {t * 1e3:9.2f}  {tt * 1e3:9.2f}   {tt / t:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run(args.child, args.repeat)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    for n in args.threads:
        # BLAS reads its thread count when numpy is imported: one child process per count.
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        subprocess.run([sys.executable, __file__, "--child", str(n), "--repeat", str(args.repeat)], env=env,
                       check=True)


if __name__ == "__main__":
    main()
