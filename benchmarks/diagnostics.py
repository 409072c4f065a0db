"""What the per-layer diagnostics cost: training with them on against off, in one process.

Run as ``python benchmarks/diagnostics.py`` (a benchmark, never part of the
test suite). For each workload it writes random CIFAR-shaped uint8 images to
an ``.npz`` file and trains the config's model through the real
:class:`~trainkit.train.trainer.Trainer` (loader, loss, optimizer, metrics,
checkpoints, evaluation, diagnostics callback), alternating diagnostics on and
off run after run so that drift on a shared machine hits both alike. Two
figures per workload:

* **inside the callback**, measured directly and nearly free of the machine's
  noise: per step, the time in the per-step hooks (gradient norms, the weight
  sample and update norms on measured steps, two calls on the others) over the
  training loop's time; per epoch, the time of the epoch's end (the probe
  batch through forward hooks, weight norms, rules, the row), in ms and as a
  share of a CIFAR-10 epoch (50,000 images) at the measured step time;
* **end to end**: the median seconds per optimizer step of whole runs (the
  training loop, evaluation and checkpoints included) on against off — the
  same overhead plus whatever else changes (e.g. the module-hook test that
  every ``Module.__call__`` makes once a hook has ever been registered),
  but noisier.

Options: ``--workloads lenet32,mlp128``, ``--repeats 5``, ``--samples 4096``,
``--epochs 2``, ``--every N`` (``train.diagnostics.every``), ``--threads N``
(needs threadpoolctl; ``OPENBLAS_NUM_THREADS=1`` does the same without it), ``--json FILE``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from trainkit.nn import hooks as module_hooks  # noqa: E402
from trainkit.train.diagnostics import Diagnostics  # noqa: E402
from trainkit.train.run import Run  # noqa: E402
from trainkit.train.session import prepare  # noqa: E402
from trainkit.train.trainer import Trainer  # noqa: E402

LENET = """\
    - conv2d: {out_channels: 6, kernel_size: 5}
    - relu
    - maxpool2d: {kernel_size: 2}
    - conv2d: {out_channels: 16, kernel_size: 5}
    - relu
    - maxpool2d: {kernel_size: 2}
    - flatten
    - linear: {out_features: 120}
    - relu
    - linear: {out_features: 84}
    - relu
    - linear: {out_features: 10}
"""
MLP = """\
    - flatten
    - linear: {out_features: 512}
    - relu
    - linear: {out_features: 256}
    - relu
    - linear: {out_features: 10}
"""


DIGITS_CNN = """\
    - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
    - relu
    - conv2d: {out_channels: 32, kernel_size: 3, padding: 1}
    - relu
    - maxpool2d: {kernel_size: 2}
    - flatten
    - linear: {out_features: 64}
    - relu
    - linear: {out_features: 10}
"""


@dataclass
class Workload:
    """One row: a model and a batch size (the throughput benchmark's training workloads), and its data:
    random CIFAR-shaped images, or the embedded digits (the quickstart: 41 steps an epoch)."""

    key: str
    label: str
    layers: str
    batch: int
    data: str = "random"


WORKLOADS = [Workload("lenet32", "LeNet (cifar_cnn), batch 32", LENET, 32),
             Workload("lenet128", "LeNet (cifar_cnn), batch 128", LENET, 128),
             Workload("mlp128", "MLP 3072-512-256-10, batch 128", MLP, 128),
             Workload("digits_cnn", "digits_cnn (quickstart), batch 32", DIGITS_CNN, 32, data="digits")]


def write_data(folder: Path, n: int) -> Path:
    """``n`` random CIFAR-shaped training images and 256 test images."""
    rng = np.random.default_rng(0)
    path = folder / "cifar_like.npz"
    np.savez(path, x_train=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
             y_train=rng.integers(0, 10, n).astype(np.int64),
             x_test=rng.integers(0, 256, (256, 3, 32, 32), dtype=np.uint8),
             y_test=rng.integers(0, 10, 256).astype(np.int64))
    return path


def write_config(folder: Path, wl: Workload, data: Path, epochs: int, every: int, on: bool) -> Path:
    data_line = (f"{{dataset: digits, val_split: 0.1, batch_size: {wl.batch}}}" if wl.data == "digits" else
                 f"{{dataset: npz, path: '{data}', val_split: 0.0, batch_size: {wl.batch}}}")
    text = (f"name: bench_{wl.key}\nseed: 0\ndata: {data_line}\nmodel:\n  layers:\n{wl.layers}"
            f"optimizer: {{type: sgd, lr: 0.001, momentum: 0.9}}\n"
            f"train: {{epochs: {epochs}, diagnostics: {{enabled: {str(on).lower()}, every: {every}}}}}\n")
    path = folder / f"{wl.key}_{'on' if on else 'off'}.yaml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def callback_timer():
    """Accumulate the seconds spent inside Diagnostics' hook methods while the block runs."""
    spent = {"total": 0.0}
    names = ("on_fit_start", "on_after_backward", "on_train_batch_end", "on_epoch_end")
    originals = {n: getattr(Diagnostics, n) for n in names}

    def wrap(name, fn):
        def timed(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                spent["total"] += dt
                spent[name] = spent.get(name, 0.0) + dt
        return timed

    for n, fn in originals.items():
        setattr(Diagnostics, n, wrap(n, fn))
    try:
        yield spent
    finally:
        for n, fn in originals.items():
            setattr(Diagnostics, n, fn)


def one_run(config: Path, folder: Path, k: int) -> dict:
    """Train once; seconds of the whole fit, of the training loops, inside the callback; steps."""
    module_hooks.hooks_used[0] = False  # as in a fresh process: no hook registered yet
    prep = prepare(config)
    run = Run.create(None, "bench", exact=folder / f"run{k}")
    run.open_log(Console(file=io.StringIO()), quiet=True)
    run.start("", name="bench", seed=0, epochs=prep.config.resolved.train.epochs, command=[], config_file="",
              data={})
    trainer = Trainer(prep, run)
    with callback_timer() as spent:
        t0 = time.perf_counter()
        trainer.fit()
        total = time.perf_counter() - t0
    run.close()
    loop = sum(r["seconds"] for r in trainer.state.history)
    return {"total": total, "loop": loop, "callback": spent["total"], "steps": trainer.state.step,
            "parts": {k: v for k, v in spent.items() if k != "total"}}


def run_workload(wl: Workload, folder: Path, data: Path, args) -> dict:
    on = write_config(folder, wl, data, args.epochs, args.every, True)
    off = write_config(folder, wl, data, args.epochs, args.every, False)
    one_run(on, folder, -1)  # warm-up: imports, allocator, caches
    res = {"on": [], "off": []}
    k = 0
    for _ in range(args.repeats):
        for side, cfg in (("on", on), ("off", off)):
            res[side].append(one_run(cfg, folder, k))
            k += 1
    inside = [r["callback"] / r["loop"] for r in res["on"]]
    parts = {name: statistics.median(r["parts"].get(name, 0.0) / r["loop"] for r in res["on"])
             for name in res["on"][0]["parts"]}
    per_step = {side: [r["total"] / r["steps"] for r in runs] for side, runs in res.items()}
    step_share = [(r["parts"].get("on_after_backward", 0) + r["parts"].get("on_train_batch_end", 0)) / r["loop"]
                  for r in res["on"]]
    epoch_ms = [1e3 * (r["parts"].get("on_epoch_end", 0) + r["parts"].get("on_fit_start", 0)) / args.epochs
                for r in res["on"]]
    loop_step = statistics.median(r["loop"] / r["steps"] for r in res["off"])
    cifar_steps = math.ceil(50_000 / wl.batch) if wl.data == "random" else res["on"][0]["steps"] // args.epochs
    return {"workload": wl.label, "steps": res["on"][0]["steps"],
            "ms_per_step_on": 1e3 * statistics.median(per_step["on"]),
            "ms_per_step_off": 1e3 * statistics.median(per_step["off"]),
            "end_to_end": statistics.median(per_step["on"]) / statistics.median(per_step["off"]) - 1,
            "inside_callback": statistics.median(inside), "inside_callback_max": max(inside), "parts": parts,
            "per_step_share": statistics.median(step_share), "per_step_share_max": max(step_share),
            "per_epoch_ms": statistics.median(epoch_ms),
            "per_epoch_cifar_share": statistics.median(epoch_ms) / 1e3 / (cifar_steps * loop_step),
            "cifar_steps": cifar_steps, "runs": res}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs per side (median reported)")
    parser.add_argument("--samples", type=int, default=4096, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--every", type=int, default=10, help="train.diagnostics.every")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (threadpoolctl)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            parser.error("--threads needs threadpoolctl (pip install threadpoolctl); or set OPENBLAS_NUM_THREADS")
        _limits = threadpool_limits(args.threads, user_api="blas")  # noqa: F841
    keys = args.workloads.split(",")
    console = Console(width=170)
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = write_data(folder, args.samples)
        for wl in WORKLOADS:
            if wl.key in keys:
                results.append(run_workload(wl, folder / wl.key, data, args) if (folder / wl.key).mkdir() is None
                               else None)
    table = Table(title=f"diagnostics overhead (every={args.every}; {args.samples} random images or the digits x {args.epochs} epochs "
                        f"per run; median of {args.repeats} alternating runs; load average {load:.1f} at start, "
                        f"{os.getloadavg()[0]:.1f} at end)")
    for col in ("workload", "steps/run", "ms/step off", "ms/step on", "end to end", "per step (worst run)",
                "per epoch", "= of a CIFAR-10 epoch*", "all, this run's epochs"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for r in results:
        table.add_row(r["workload"], str(r["steps"]), f"{r['ms_per_step_off']:.2f}", f"{r['ms_per_step_on']:.2f}",
                      f"{100 * r['end_to_end']:+.1f}%",
                      f"{100 * r['per_step_share']:.2f}% ({100 * r['per_step_share_max']:.2f}%)",
                      f"{r['per_epoch_ms']:.1f} ms", f"{100 * r['per_epoch_cifar_share']:.3f}%",
                      f"{100 * r['inside_callback']:.2f}%")
    console.print(table)
    console.print("* for digits_cnn: of its own epoch (41 steps)", highlight=False)
    for r in results:
        console.print(f"{r['workload']}: inside the callback, as a share of the training loop: "
                      + ", ".join(f"{name} {100 * v:.2f}%" for name, v in r["parts"].items()), highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
