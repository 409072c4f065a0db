"""Throughput benchmark: trainkit against PyTorch's CPU build on the same workloads.

Run as ``python benchmarks/throughput.py`` (a benchmark, never part of the test
suite). For each workload of the performance issue it builds the model with
``trainkit.nn`` and, when ``torch`` is importable, the same model in PyTorch
with identical initial weights (state_dict arrays copied), feeds both the same
random CIFAR-shaped float32 batches with the same thread count, and times them
alternately (trainkit, torch, trainkit, torch, ...) so that drift on a shared
machine hits both alike. The reported figure is the median of the runs.

Then it profiles one trainkit training step: forward, backward and optimizer
time by op type. The timing wrappers are installed on the op classes only for
the profiled steps (a context manager here), never in the engine's hot path.

Options: ``--workloads lenet32,mlp128`` to choose, ``--repeats 3``,
``--seconds 1.5`` (target length of one timed run), ``--threads N`` (numpy's
BLAS pool and torch both set to N; without threadpoolctl, set
OPENBLAS_NUM_THREADS before starting), ``--clock cpu`` (1 thread only: time by
the process's CPU time, which other processes' load does not inflate),
``--no-profile``, ``--json FILE``.

OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when numpy is imported;
the header shows them and the kernel chosen, since a forced older core type
slows numpy's GEMMs several times while torch (its own BLAS) is unaffected.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

# benchmark the trainkit of this checkout, whatever an editable install points at
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit  # noqa: E402
import trainkit.nn as tnn  # noqa: E402
import trainkit.optim as toptim  # noqa: E402
from trainkit.autograd.function import Op  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seq_models  # noqa: E402
from trainkit.autograd.tensor import Tensor  # noqa: E402

try:  # the reference is optional: without torch only trainkit's figures are shown
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover
    Console = Table = None


# --------------------------------------------------------------------------- models
def lenet(nn):
    """The cifar_cnn LeNet, built from either library's ``nn`` namespace."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def mlp(nn):
    """The 3072-512-256-10 MLP (flattens CIFAR-shaped input)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(3072, 512), nn.ReLU(),
        nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )


@dataclass
class Workload:
    """One row of the table: a model, a batch size, and training or inference.

    ``data(batch)`` gives the batches (default: CIFAR-shaped images and labels); the
    loss is cross-entropy on the model's output (token models flatten their logits).
    """

    key: str
    label: str
    build: object
    batch: int
    train: bool
    data: object = None


WORKLOADS = [
    Workload("lenet32", "LeNet train, batch 32", lenet, 32, True),
    Workload("lenet128", "LeNet train, batch 128", lenet, 128, True),
    Workload("mlp128", "MLP 3072-512-256-10 train, batch 128", mlp, 128, True),
    Workload("lenet_infer256", "LeNet inference (no_grad), batch 256", lenet, 256, False),
    # issue 14: sequence models (samples are sequences); see benchmarks/seq_models.py
    Workload("lstm_lm", "2-layer LSTM LM (200, vocab 65), bptt 35, batch 20", seq_models.lstm_lm, 20, True,
             lambda batch: seq_models.token_data((35, batch), 65)),
    Workload("lstm_lm_word", "2-layer LSTM LM (200, vocab 33278), bptt 35, batch 20", seq_models.lstm_lm_word, 20,
             True, lambda batch: seq_models.token_data((35, batch), 33278)),
    Workload("tiny_gpt", "tiny GPT (4x128, 4 heads), block 64, batch 12", seq_models.tiny_gpt, 12, True,
             lambda batch: seq_models.token_data((batch, 64), 65)),
    Workload("small_vit", "ViT 32x32 (patch 4, 4x128, 4 heads), batch 64", seq_models.small_vit, 64, True),
]

TARGETS = {"lenet32": 0.6, "lenet128": 0.6, "mlp128": 0.9, "lenet_infer256": 0.6, "lstm_lm": 0.7,
           "lstm_lm_word": 0.7, "tiny_gpt": 0.7, "small_vit": 0.7}
N_BATCHES = 8  # distinct batches cycled through, so caches do not flatter either side


def make_data(batch: int, seed: int = 0):
    """``N_BATCHES`` random CIFAR-shaped float32 batches and int64 labels."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((batch, 3, 32, 32), dtype=np.float32) for _ in range(N_BATCHES)]
    ys = [rng.integers(0, 10, batch).astype(np.int64) for _ in range(N_BATCHES)]
    return xs, ys


# --------------------------------------------------------------------------- steppers
def _stepper(wl: Workload, lib, nn, optim, to_tensor, xs, ys, state: dict):
    """A closure running one step (train or inference) on batch ``i``.

    Written once against PyTorch's API and run with ``lib`` = trainkit or torch: the
    same code drives both sides, which is what trainkit's compatibility promises.
    """
    model = wl.build(nn)
    model.load_state_dict({k: to_tensor(v) for k, v in state.items()})
    bx = [to_tensor(x) for x in xs]
    by = [to_tensor(y) for y in ys]
    if not wl.train:
        model.eval()

        def infer(i):
            with lib.no_grad():
                return model(bx[i % N_BATCHES])

        return infer
    opt = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    crit = nn.CrossEntropyLoss()

    def step(i):
        opt.zero_grad()
        loss = crit(model(bx[i % N_BATCHES]), by[i % N_BATCHES])
        loss.backward()
        opt.step()
        return loss

    step.model, step.opt, step.crit, step.bx, step.by = model, opt, crit, bx, by
    return step


def trainkit_stepper(wl: Workload, state: dict, xs, ys):
    """One trainkit step (train or inference) on batch ``i``."""
    return _stepper(wl, trainkit, tnn, toptim, Tensor, xs, ys, state)


def torch_stepper(wl: Workload, state: dict, xs, ys):
    """The same step in PyTorch, from the same initial weights and data."""
    return _stepper(wl, torch, torch.nn, torch.optim, lambda a: torch.from_numpy(a.copy()), xs, ys, state)


#: The clock runs are timed with: wall time, or (``--clock cpu``) the process's CPU time, which a
#: shared machine's other processes do not inflate while they hold the core (valid at 1 thread only).
CLOCK = time.perf_counter


def calibrate(step, seconds: float) -> int:
    """Number of steps that takes about ``seconds`` (after a short warm-up)."""
    for i in range(3):
        step(i)
    n, t = 0, 0.0
    t0 = CLOCK()
    while t < 0.25:
        step(n)
        n += 1
        t = CLOCK() - t0
    return max(3, int(n * seconds / t))


def timed(step, steps: int) -> float:
    """Seconds for ``steps`` consecutive steps (two warm-up steps first)."""
    step(0)
    step(1)
    t0 = CLOCK()
    for i in range(steps):
        step(i)
    return CLOCK() - t0


@dataclass
class Result:
    """Images per second of each run for one workload."""

    workload: Workload
    trainkit: list = field(default_factory=list)
    torch: list = field(default_factory=list)

    @property
    def tk_median(self) -> float:
        return statistics.median(self.trainkit)

    @property
    def torch_median(self) -> float | None:
        return statistics.median(self.torch) if self.torch else None


def run_workload(wl: Workload, repeats: int, seconds: float) -> Result:
    """Alternate trainkit and torch runs ``repeats`` times each; images/s of every run."""
    xs, ys = (wl.data or make_data)(wl.batch)
    ref = wl.build(tnn)  # trainkit's own initialisation supplies the shared weights
    state = {k: np.array(v.numpy(), copy=True) for k, v in ref.state_dict().items()}
    tk = trainkit_stepper(wl, state, xs, ys)
    th = torch_stepper(wl, state, xs, ys) if torch is not None else None
    steps = calibrate(tk, seconds)
    # torch is faster: give it as many steps as it needs for a comparable run length
    th_steps = calibrate(th, seconds) if th is not None else 0
    res = Result(wl)
    for _ in range(repeats):
        res.trainkit.append(wl.batch * steps / timed(tk, steps))
        if th is not None:
            res.torch.append(wl.batch * th_steps / timed(th, th_steps))
    return res


# --------------------------------------------------------------------------- profile
def _op_classes():
    """Every Op subclass defined so far (recursively)."""
    seen, stack = [], list(Op.__subclasses__())
    while stack:
        c = stack.pop()
        if c not in seen:
            seen.append(c)
            stack.extend(c.__subclasses__())
    return seen


@contextlib.contextmanager
def op_timing():
    """Time every Op's forward and backward by op type while the block runs.

    Yields a dict ``{(phase, op_name): [seconds, calls]}``. The wrappers are
    removed on exit; nested calls (an op calling another op's method) are
    counted once, at the outermost level.
    """
    stats = defaultdict(lambda: [0.0, 0])
    depth = [0]
    patched = []

    def wrap(fn, phase):
        def timed_method(self, *args, **kwargs):
            if depth[0]:
                return fn(self, *args, **kwargs)
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                s = stats[(phase, type(self).__name__)]
                s[0] += time.perf_counter() - t0
                s[1] += 1
                depth[0] -= 1

        return timed_method

    for cls in _op_classes():
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                patched.append((cls, phase, cls.__dict__[phase]))
                setattr(cls, phase, wrap(cls.__dict__[phase], phase))
    try:
        yield stats
    finally:
        for cls, phase, fn in patched:
            setattr(cls, phase, fn)


def profile_step(wl: Workload, steps: int = 30):
    """Per-phase and per-op times (ms per step, median over ``steps``) of trainkit's training step.

    Medians rather than means keep a shared machine's bursts of load from
    dominating the breakdown; the phases therefore need not add up exactly.
    """
    xs, ys = (wl.data or make_data)(wl.batch)
    ref = wl.build(tnn)
    state = {k: np.array(v.numpy(), copy=True) for k, v in ref.state_dict().items()}
    st = trainkit_stepper(wl, state, xs, ys)
    model, opt, crit, bx, by = st.model, st.opt, st.crit, st.bx, st.by
    for i in range(3):
        st(i)
    phases = defaultdict(list)
    per_op = defaultdict(list)
    calls = {}
    with op_timing() as stats:
        for i in range(steps):
            stats.clear()
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = crit(model(bx[i % N_BATCHES]), by[i % N_BATCHES])
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            phases["forward"].append(t1 - t0)
            phases["backward"].append(t2 - t1)
            phases["optimizer"].append(t3 - t2)
            for k, (sec, n) in stats.items():
                per_op[k].append(sec)
                calls[k] = n
            for phase in ("forward", "backward"):  # time outside the ops, per step
                inside = sum(sec for (ph, _), (sec, _) in stats.items() if ph == phase)
                per_op[(phase, "")].append(phases[phase][-1] - inside)
    med = {k: 1e3 * statistics.median(v) for k, v in phases.items()}
    ops = {k: (1e3 * statistics.median(v), calls.get(k, 0)) for k, v in per_op.items()}
    return med, ops


# --------------------------------------------------------------------------- report
def machine_info() -> dict:
    """BLAS library, threads and the OpenBLAS environment that affects its speed."""
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "processor": platform.processor() or platform.machine(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "blas": None,
        "threads": None,
    }
    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
                info["blas"] = f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                info["threads"] = lib.get("num_threads")
                break
    except ImportError:
        pass
    if info["threads"] is None:  # without threadpoolctl: the count OpenBLAS read from the environment
        env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        info["threads"] = int(env) if env and env.isdigit() else os.cpu_count()
    return info


def print_report(console, info, results, profile):
    """The machine header, the throughput table and the profile."""
    console.print(
        f"[bold]trainkit throughput[/] — {info['processor']}, {info['cpus']} CPUs, "
        f"BLAS {info['blas']} with {info['threads']} threads; numpy {info['numpy']}, "
        f"torch {info['torch'] or 'not installed'} (set_num_threads({info['threads']})); "
        f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}, OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}; "
        f"1-min load average at start {info['loadavg']:.2f}; clock: {info.get('clock', 'wall')}"
    )
    table = Table(title="samples/s: images or sequences (median of alternating runs)")
    for col in ("workload", "trainkit", "PyTorch", "ratio", "target", "best-run ratio", "runs tk / torch"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for r in results:
        tkm, thm = r.tk_median, r.torch_median
        ratio = tkm / thm if thm else None
        target = TARGETS[r.workload.key]
        ratio_s = "—" if ratio is None else (f"[green]{ratio:.2f}[/]" if ratio >= target else f"[red]{ratio:.2f}[/]")
        runs = " ".join(f"{v:.0f}" for v in r.trainkit) + " / " + " ".join(f"{v:.0f}" for v in r.torch)
        best = f"{max(r.trainkit) / max(r.torch):.2f}" if r.torch else "—"
        table.add_row(r.workload.label, f"{tkm:,.0f}", "—" if thm is None else f"{thm:,.0f}", ratio_s,
                      f"≥ {target}", best, runs)
    console.print(table)
    if profile is None:
        return
    wl, (phases, ops) = profile
    total = sum(phases.values())
    pt = Table(title=f"trainkit step profile: {wl.label} (median ms per step; total {total:.2f} ms)")
    for col in ("phase", "op", "calls/step", "ms/step", "% of step"):
        pt.add_column(col, justify="left" if col in ("phase", "op") else "right")
    for phase in ("forward", "backward"):
        rows = sorted(((k[1], v) for k, v in ops.items() if k[0] == phase and k[1]), key=lambda kv: -kv[1][0])
        for name, (ms, n) in rows:
            pt.add_row(phase, name, str(n), f"{ms:.3f}", f"{100 * ms / total:.1f}")
        rest = ops.get((phase, ""), (0.0, 0))[0]
        pt.add_row(phase, "[dim](engine + Python outside ops)[/]", "", f"{rest:.3f}", f"{100 * rest / total:.1f}")
        pt.add_row(f"[bold]{phase}[/]", "[bold]total[/]", "", f"[bold]{phases[phase]:.3f}[/]",
                   f"{100 * phases[phase] / total:.1f}", end_section=True)
    pt.add_row("[bold]optimizer[/]", "SGD step (+ zero_grad in forward)", "", f"{phases['optimizer']:.3f}",
               f"{100 * phases['optimizer'] / total:.1f}")
    console.print(pt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS),
                        help="comma-separated subset of: " + ", ".join(w.key for w in WORKLOADS))
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side (median reported)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target length of one timed run")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op profile")
    parser.add_argument("--profile", default="lenet32", help="workload to profile (a training one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for numpy and torch.set_num_threads (default: numpy's current count)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time runs by wall clock, or by the process's CPU time (1 thread only: other "
                             "processes on a shared machine do not inflate it)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time

    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in keys if k not in {w.key for w in WORKLOADS}]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {[w.key for w in WORKLOADS]}")
    if args.threads is not None:
        try:  # limits numpy's BLAS pool for the whole run (kept alive by the variable)
            from threadpoolctl import threadpool_limits
            _limits = threadpool_limits(args.threads, user_api="blas")  # noqa: F841
        except ImportError:
            parser.error("--threads needs threadpoolctl (pip install threadpoolctl)")
    info = machine_info()
    info["clock"] = args.clock
    if args.clock == "cpu" and int(info["threads"]) != 1:
        parser.error("--clock cpu measures one thread's work: run with one BLAS thread (OPENBLAS_NUM_THREADS=1 "
                     "or --threads 1)")
    if torch is not None:
        torch.set_num_threads(int(info["threads"]))  # same thread count as numpy's BLAS
    # a pipe gets rich's 80 columns by default, too narrow for the tables
    console = (Console() if sys.stdout.isatty() else Console(width=140)) if Console else None
    results = []
    for wl in WORKLOADS:
        if wl.key in keys:
            results.append(run_workload(wl, args.repeats, args.seconds))
    profile = None
    if not args.no_profile:
        wl = next(w for w in WORKLOADS if w.key == args.profile)
        profile = (wl, profile_step(wl))
    if console is not None:
        print_report(console, info, results, profile)
    else:  # pragma: no cover
        for r in results:
            print(r.workload.label, r.tk_median, r.torch_median)
    if args.json:
        out = {"machine": info, "results": {
            r.workload.key: {"trainkit": r.trainkit, "torch": r.torch, "trainkit_median": r.tk_median,
                             "torch_median": r.torch_median,
                             "ratio": (r.tk_median / r.torch_median) if r.torch_median else None}
            for r in results}}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
