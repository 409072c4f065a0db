"""Throughput benchmark: trainkit against PyTorch's CPU build on the same workloads.

Run as ``python benchmarks/throughput.py`` (a benchmark, never part of the test
suite). For each workload of the performance issue it builds the model with
``trainkit.nn`` and, when ``torch`` is importable, the same model in PyTorch
with identical initial weights (state_dict arrays copied), feeds both the same
random CIFAR-shaped float32 batches with the same thread count, and times them
alternately (trainkit, torch, trainkit, torch, ...) so that drift on a shared
machine hits both alike. The reported figure is the median of the runs. PyTorch
runs in a process of its own, as a PyTorch user's program would: both load GNU
OpenMP as libgomp.so.1, and in one process trainkit's compiled kernels would run
on PyTorch's OpenMP runtime with the settings PyTorch started it with.

Then it profiles one trainkit training step: forward, backward and optimizer
time by op type. The timing wrappers are installed on the op classes only for
the profiled steps (a context manager here), never in the engine's hot path.

Options: ``--workloads lenet32,mlp128`` to choose (``resnet20_128`` and
``fast256`` run only when named), ``--repeats 3``, ``--seconds 1.5`` (target
length of one timed run), ``--threads 2,1`` (each count in turn: trainkit's
pool, numpy's BLAS and torch all set to it; the table then also shows each
side's 2-thread / 1-thread scaling), ``--clock cpu`` (1 thread only: time by
the process's CPU time, which other processes' load does not inflate),
``--profile KEY`` / ``--no-profile``, ``--json FILE``.

OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when numpy is imported;
the header shows them and the kernel chosen, since a forced older core type
slows numpy's GEMMs several times while torch (its own BLAS) is unaffected.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

# benchmark the trainkit of this checkout, whatever an editable install points at
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trainkit  # noqa: E402  (before numpy, as the CLI does: see trainkit/blasenv.py)
import numpy as np  # noqa: E402
import trainkit.nn as tnn  # noqa: E402
import trainkit.optim as toptim  # noqa: E402
from trainkit.autograd.tensor import Tensor  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import seq_models  # noqa: E402
from opprofile import profile_step  # noqa: E402

# The reference is optional: without torch only trainkit's figures are shown. PyTorch runs in a process
# of its own (see TorchSide): both libraries load GNU OpenMP under the same name, libgomp.so.1, so in one
# process trainkit's compiled kernels would run on PyTorch's OpenMP runtime, with the thread spin PyTorch's
# process started with, and a trainkit user's process has no PyTorch in it.
torch = None  # imported in the PyTorch process only
HAVE_TORCH = importlib.util.find_spec("torch") is not None

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover
    Console = Table = None


# --------------------------------------------------------------------------- workloads
#: SGD settings: LeNet/MLP as in the first performance issue; the residual nets as configs/cifar_resnet.yaml
PLAIN_SGD = {"lr": 0.001, "momentum": 0.9}
RESNET_SGD = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}


@dataclass
class Workload:
    """One row of the table: a model, a batch size, training or inference, and the optimizer's settings.

    ``data(batch)`` gives the batches (default: CIFAR-shaped images and labels); the
    loss is cross-entropy on the model's output (token models flatten their logits).
    """

    key: str
    label: str
    build: object
    batch: int
    train: bool
    sgd: dict = field(default_factory=lambda: dict(PLAIN_SGD))
    default: bool = True  # part of a plain ``python benchmarks/throughput.py`` run
    data: object = None


WORKLOADS = [
    Workload("lenet32", "LeNet train, batch 32", models.lenet, 32, True),
    Workload("lenet128", "LeNet train, batch 128", models.lenet, 128, True),
    Workload("mlp128", "MLP 3072-512-256-10 train, batch 128", models.mlp, 128, True),
    Workload("lenet_infer256", "LeNet inference (no_grad), batch 256", models.lenet, 256, False),
    Workload("resnet64", "cifar_resnet train, batch 64", models.cifar_resnet, 64, True, dict(RESNET_SGD)),
    Workload("resnet128", "cifar_resnet train, batch 128", models.cifar_resnet, 128, True, dict(RESNET_SGD)),
    Workload("resnet8_128", "ResNet-8 train, batch 128", models.resnet8, 128, True, dict(RESNET_SGD)),
    Workload("resnet8_infer256", "ResNet-8 inference (no_grad), batch 256", models.resnet8, 256, False),
    Workload("resnet20_128", "ResNet-20 train, batch 128", models.resnet20, 128, True, dict(RESNET_SGD), False),
    Workload("fast256", "fast-CIFAR anchor net (width 16) train, batch 256", models.fast_cifar, 256, True,
             dict(RESNET_SGD), False),
    # issue 14: sequence models (samples are sequences); see benchmarks/seq_models.py
    Workload("lstm_lm", "2-layer LSTM LM (200, vocab 65), bptt 35, batch 20", seq_models.lstm_lm, 20, True,
             data=lambda batch: seq_models.token_data((35, batch), 65)),
    Workload("lstm_lm_word", "2-layer LSTM LM (200, vocab 33278), bptt 35, batch 20", seq_models.lstm_lm_word, 20,
             True, default=False, data=lambda batch: seq_models.token_data((35, batch), 33278)),
    Workload("tiny_gpt", "tiny GPT (4x128, 4 heads), block 64, batch 12", seq_models.tiny_gpt, 12, True,
             data=lambda batch: seq_models.token_data((batch, 64), 65)),
    Workload("small_vit", "ViT 32x32 (patch 4, 4x128, 4 heads), batch 64", seq_models.small_vit, 64, True),
]

#: Ratio targets (trainkit / PyTorch) by thread count, from the speed issues; None: no target.
TARGETS = {
    "lenet32": {2: 0.75, 1: 0.75}, "lenet128": {2: 0.75, 1: 0.75}, "mlp128": {2: 0.9, 1: 0.9},
    "lenet_infer256": {2: 0.8, 1: 0.8}, "resnet64": {2: 0.7, 1: 0.9}, "resnet128": {2: 0.7, 1: 0.9},
    "lstm_lm": {1: 0.7}, "lstm_lm_word": {1: 0.7}, "tiny_gpt": {1: 0.7}, "small_vit": {1: 0.7},
}
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
    opt = optim.SGD(model.parameters(), **wl.sgd)
    crit = nn.CrossEntropyLoss()

    def step(i):
        opt.zero_grad()
        loss = crit(model(bx[i % N_BATCHES]), by[i % N_BATCHES])
        loss.backward()
        opt.step()
        return loss

    step.model, step.opt, step.crit, step.bx, step.by = model, opt, crit, bx, by
    return step


def shared_state(wl: Workload) -> dict:
    """trainkit's own initialisation of the workload's model, as numpy arrays both sides load."""
    ref = wl.build(tnn)
    return {k: np.array(v.numpy(), copy=True) for k, v in ref.state_dict().items()}


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
    """Images per second of each run for one workload at one thread count."""

    workload: Workload
    threads: int
    trainkit: list = field(default_factory=list)
    torch: list = field(default_factory=list)
    loadavg: list = field(default_factory=list)

    @property
    def tk_median(self) -> float:
        return statistics.median(self.trainkit)

    @property
    def torch_median(self) -> float | None:
        return statistics.median(self.torch) if self.torch else None


class TorchSide:
    """PyTorch's steps, run in a process of its own (spawned: it never loads trainkit's kernels).

    The parent sends a workload's state, batches and thread count, then asks for calibrations and timed
    runs; the child answers with step counts and seconds, timed by the same clock.
    """

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_torch_server, args=(child, CLOCK is time.process_time), daemon=True)
        self.proc.start()
        child.close()

    def call(self, *msg):
        self.conn.send(msg)
        ok, value = self.conn.recv()
        if not ok:
            raise RuntimeError(f"the PyTorch process failed: {value}")
        return value

    def close(self):
        try:
            self.conn.send(("stop",))
        except OSError:  # pragma: no cover
            pass
        self.proc.join(timeout=10)


def _torch_server(conn, cpu_clock: bool) -> None:
    """The PyTorch process: set threads, build a workload's step, calibrate and time it, on request."""
    global torch, CLOCK
    import torch as _torch
    torch = _torch
    CLOCK = time.process_time if cpu_clock else time.perf_counter
    step = None
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "stop":
                return
            if msg[0] == "threads":
                torch.set_num_threads(msg[1])
                out = torch.get_num_threads()
            elif msg[0] == "setup":
                key, state, xs, ys = msg[1:]
                wl = next(w for w in WORKLOADS if w.key == key)
                step = torch_stepper(wl, state, xs, ys)
                out = None
            elif msg[0] == "calibrate":
                out = calibrate(step, msg[1])
            elif msg[0] == "timed":
                out = timed(step, msg[1])
            elif msg[0] == "version":
                out = torch.__version__
            else:
                raise ValueError(f"unknown request {msg[0]!r}")
            conn.send((True, out))
        except Exception as e:  # noqa: BLE001 - reported to the parent
            conn.send((False, f"{type(e).__name__}: {e}"))


_TORCH_SIDE = None


def torch_side():
    """The PyTorch process (started on first use), or None without torch."""
    global _TORCH_SIDE
    if _TORCH_SIDE is None and HAVE_TORCH:
        _TORCH_SIDE = TorchSide()
    return _TORCH_SIDE


def set_threads(n: int) -> None:
    """trainkit's intra-op pool and numpy's BLAS, and torch, all on ``n`` threads."""
    if hasattr(trainkit, "set_num_threads"):
        trainkit.set_num_threads(n)
    else:  # a tree from before trainkit.set_num_threads: BLAS only
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise SystemExit("this trainkit has no set_num_threads: run with OPENBLAS_NUM_THREADS set and "
                             "without --threads, or install threadpoolctl") from None
        set_threads.limits = threadpool_limits(n, user_api="blas")  # kept alive on the function
    if _TORCH_SIDE is not None:  # a started PyTorch process (run_workload sets it too)
        _TORCH_SIDE.call("threads", n)


def run_workload(wl: Workload, threads: int, repeats: int, seconds: float) -> Result:
    """Alternate trainkit and torch runs ``repeats`` times each; images/s of every run."""
    xs, ys = (wl.data or make_data)(wl.batch)
    state = shared_state(wl)
    tk = trainkit_stepper(wl, state, xs, ys)
    th = torch_side()
    if th is not None:
        th.call("threads", threads)
        th.call("setup", wl.key, state, xs, ys)
    steps = calibrate(tk, seconds)
    # torch is faster: give it as many steps as it needs for a comparable run length
    th_steps = th.call("calibrate", seconds) if th is not None else 0
    res = Result(wl, threads)
    for _ in range(repeats):
        res.loadavg.append(os.getloadavg()[0])
        res.trainkit.append(wl.batch * steps / timed(tk, steps))
        if th is not None:
            res.torch.append(wl.batch * th_steps / th.call("timed", th_steps))
    return res


# --------------------------------------------------------------------------- report
def machine_info() -> dict:
    """BLAS library, threads and the OpenBLAS environment that affects its speed."""
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_side().call("version") if torch_side() is not None else None,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "processor": platform.processor() or platform.machine(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "blas": None,
        "threads": None,
    }
    try:
        from trainkit.autograd import threads as tk_threads
        info["blas"] = tk_threads.blas_info()
        info["threads"] = tk_threads.get_num_threads()
    except (ImportError, AttributeError):
        try:
            from threadpoolctl import threadpool_info
            for lib in threadpool_info():
                if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
                    info["blas"] = f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                    info["threads"] = lib.get("num_threads")
                    break
        except ImportError:
            pass
    if info["threads"] is None:
        info["threads"] = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    return info


def _ratio_cell(ratio, target):
    if ratio is None:
        return "—"
    if target is None:
        return f"{ratio:.2f}"
    return f"[green]{ratio:.2f}[/]" if ratio >= target else f"[red]{ratio:.2f}[/]"


def print_report(console, info, results, profile):
    """The machine header, the throughput table, the 2-thread scaling and the profile."""
    console.print(
        f"[bold]trainkit throughput[/] — {info['processor']}, {info['cpus']} CPUs, "
        f"BLAS {info['blas']}; numpy {info['numpy']}, torch {info['torch'] or 'not installed'}; "
        f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}, OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}, "
        f"OPENBLAS_THREAD_TIMEOUT={info['OPENBLAS_THREAD_TIMEOUT']}; "
        f"1-min load average at start {info['loadavg']:.2f}; clock: {info['clock']}"
    )
    table = Table(title="images/s (median of alternating runs; trainkit, numpy's BLAS and torch on the same threads)")
    for col in ("workload", "threads", "trainkit", "PyTorch", "ratio", "target", "best-run ratio",
                "runs tk / torch", "load"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for r in results:
        tkm, thm = r.tk_median, r.torch_median
        ratio = tkm / thm if thm else None
        target = TARGETS.get(r.workload.key, {}).get(r.threads)
        runs = " ".join(f"{v:.0f}" for v in r.trainkit) + " / " + " ".join(f"{v:.0f}" for v in r.torch)
        best = f"{max(r.trainkit) / max(r.torch):.2f}" if r.torch else "—"
        table.add_row(r.workload.label, str(r.threads), f"{tkm:,.0f}", "—" if thm is None else f"{thm:,.0f}",
                      _ratio_cell(ratio, target), "—" if target is None else f"≥ {target}", best, runs,
                      f"{min(r.loadavg):.1f}–{max(r.loadavg):.1f}")
    console.print(table)
    by_key = defaultdict(dict)
    for r in results:
        by_key[r.workload.key][r.threads] = r
    scaling = [(k, d) for k, d in by_key.items() if 1 in d and 2 in d]
    if scaling:
        st = Table(title="2-thread / 1-thread throughput (medians)")
        for col in ("workload", "trainkit", "PyTorch"):
            st.add_column(col, justify="left" if col == "workload" else "right")
        for k, d in scaling:
            tk = d[2].tk_median / d[1].tk_median
            th = d[2].torch_median / d[1].torch_median if d[1].torch_median else None
            st.add_row(d[2].workload.label, f"{tk:.2f}", "—" if th is None else f"{th:.2f}")
        console.print(st)
    if profile is None:
        return
    wl, threads, (phases, ops) = profile
    total = sum(phases.values())
    pt = Table(title=f"trainkit step profile: {wl.label}, {threads} threads (median ms per step; total {total:.2f} ms)")
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
    keys_all = [w.key for w in WORKLOADS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS if w.default),
                        help="comma-separated subset of: " + ", ".join(keys_all))
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side (median reported)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target length of one timed run")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op profile")
    parser.add_argument("--profile", default="lenet32", help="workload to profile (a training one)")
    parser.add_argument("--threads", default=None,
                        help="thread counts to run, e.g. '2,1' (trainkit, numpy's BLAS and torch set alike; "
                             "default: the current BLAS thread count only)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time runs by wall clock, or by the process's CPU time (1 thread only: "
                             "steady under other processes' load)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time

    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in keys if k not in keys_all]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {keys_all}")
    trainable = [w.key for w in WORKLOADS if w.train]
    if not args.no_profile and args.profile not in trainable:
        parser.error(f"--profile {args.profile!r}: the per-op profile times a training step; choose from {trainable}")
    info = machine_info()
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [int(info["threads"])]
    if args.clock == "cpu" and thread_counts != [1]:
        parser.error("--clock cpu measures one thread's work: use it with --threads 1")
    info["clock"] = args.clock
    # a pipe gets rich's 80 columns by default, too narrow for the tables
    console = (Console() if sys.stdout.isatty() else Console(width=150)) if Console else None
    results = []
    for n in thread_counts:
        if args.threads:
            set_threads(n)
        elif torch_side() is not None:
            torch_side().call("threads", n)  # same thread count as numpy's BLAS
        for wl in WORKLOADS:
            if wl.key in keys:
                results.append(run_workload(wl, n, args.repeats, args.seconds))
    profile = None
    if not args.no_profile:
        wl = next(w for w in WORKLOADS if w.key == args.profile)
        xs, ys = (wl.data or make_data)(wl.batch)
        profile = (wl, thread_counts[-1],
                   profile_step(trainkit_stepper(wl, shared_state(wl), xs, ys), clock=CLOCK))
    if console is not None:
        print_report(console, info, results, profile)
    else:  # pragma: no cover
        for r in results:
            print(r.workload.label, r.threads, r.tk_median, r.torch_median)
    if _TORCH_SIDE is not None:
        _TORCH_SIDE.close()
    if args.json:
        out = {"machine": info, "results": [
            {"workload": r.workload.key, "threads": r.threads, "trainkit": r.trainkit, "torch": r.torch,
             "trainkit_median": r.tk_median, "torch_median": r.torch_median, "loadavg": r.loadavg,
             "ratio": (r.tk_median / r.torch_median) if r.torch_median else None}
            for r in results]}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
