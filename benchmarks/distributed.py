"""Data-parallel speed: one epoch of configs/cifar_cnn.yaml on the real CIFAR-10, three ways.

    python benchmarks/distributed.py --root ../shared/data            # 1 round of the three runs
    python benchmarks/distributed.py --root ../shared/data --rounds 2 --json out.json

* ``1x1``: one process, one BLAS thread (``OMP_NUM_THREADS=1``);
* ``1x2``: one process, two BLAS threads;
* ``2x1``: ``trainkit train --procs 2``, two ranks of one thread each.

The runs alternate (the order rotates every round) so that a machine shared
with other work loads them alike; the load averages before and after each
run are printed with it. The epoch time is the ``seconds`` column of
``metrics.jsonl`` (training only: no data loading, evaluation or report).
For the 2-rank runs the Allreduce share is the time rank 0 spent in the
per-step gradient Allreduce over its step time (waiting for the other rank
included), and a separate measurement times the Allreduce alone (the same
buffer, ranks lined up by a barrier first). Finally the 1x1 and 2x1 runs of
the first round are compared: final weights and test accuracy.

``--synthetic DIR`` writes a CIFAR-10-sized data set of random pixels
there (the same 50,000 + 10,000 uint8 3x32x32 images, in the python layout)
and times on it instead, for a machine without the archive: the work per
epoch is the same, the accuracy is chance.

Needs the mpi extra (``pip install 'trainkit[mpi]'``). Not a test: the
figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainkit.distributed.launch import find_mpiexec  # noqa: E402
from trainkit.train.checkpoint import load_checkpoint  # noqa: E402

MODES = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

ALLREDUCE_ALONE = r"""
import sys, time, numpy as np
from trainkit.distributed.communicator import Communicator
comm = Communicator()
buf = np.ones(int(sys.argv[1]), dtype=np.float32)
for _ in range(20):
    comm.allreduce_(buf)
times = []
for _ in range(int(sys.argv[2])):
    comm.comm.Barrier()
    t0 = time.perf_counter()
    comm.allreduce_(buf)
    times.append(time.perf_counter() - t0)
if comm.rank == 0:
    print(np.median(times) * 1e3)
comm.finish()
"""


def run(mode: str, root: str, run_dir: Path, epochs: int) -> dict:
    procs, threads = MODES[mode]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **{k: str(threads) for k in THREAD_VARS})
    cmd = [sys.executable, "-m", "trainkit", "train", str(ROOT / "configs" / "cifar_cnn.yaml"),
           "--set", f"data.root={root}", "--set", "data.download=false", "--set", f"train.epochs={epochs}",
           "--run-dir", str(run_dir), "-q"]
    if procs > 1:
        cmd += ["--procs", str(procs)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    if res.returncode != 0:
        raise SystemExit(f"{mode} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    info = json.loads((run_dir / "run.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    out = {"mode": mode, "epoch_s": sum(r["seconds"] for r in rows) / len(rows), "wall_s": round(wall, 1),
           "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in load_after],
           "test_accuracy": report["test"]["accuracy"], "run_dir": str(run_dir)}
    dist = info.get("distributed")
    if dist:
        out.update(allreduce_share=dist["allreduce_share"], allreduce_calls=dist["allreduce_calls"],
                   step_s=dist["step_s"], floats_per_call=dist["floats_per_call"], rank_threads=dist["threads"])
    return out


def allreduce_alone(floats: int, iterations: int = 300) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    res = subprocess.run([find_mpiexec(), "-n", "2", sys.executable, "-c", ALLREDUCE_ALONE, str(floats),
                          str(iterations)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(res.stdout + res.stderr)
    return float(res.stdout.split()[-1])


def write_synthetic_cifar(root: Path) -> Path:
    """Random CIFAR-10-sized data in the python layout (``root/cifar-10-batches-py``)."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, 10_000).tolist(),
                 b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return root


def weight_gap(a: str, b: str) -> float:
    wa = load_checkpoint(Path(a) / "checkpoints" / "last")[0]
    wb = load_checkpoint(Path(b) / "checkpoints" / "last")[0]
    return max(float(np.abs(wa[k].astype(np.float64) - wb[k]).max() / np.abs(wb[k]).max()) for k in wb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="folder with cifar-10-python.tar.gz")
    ap.add_argument("--synthetic", type=Path, help="write random CIFAR-10-sized data here and time on it")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if (args.root is None) == (args.synthetic is None):
        ap.error("give --root (the real CIFAR-10) or --synthetic DIR")
    root = str(write_synthetic_cifar(args.synthetic)) if args.synthetic else args.root
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({cores} usable), python "
          f"{platform.python_version()}, data: {'synthetic ' + root if args.synthetic else root}")
    results = []
    order = list(MODES)
    with tempfile.TemporaryDirectory(prefix="trainkit-bench-") as tmp:
        for r in range(args.rounds):
            for mode in order[r % len(order):] + order[:r % len(order)]:
                res = run(mode, root, Path(tmp) / f"{mode}-{r}", args.epochs)
                res["round"] = r
                results.append(res)
                extra = (f"  Allreduce {100 * res['allreduce_share']:.1f}% of a step" if "allreduce_share" in res
                         else "")
                print(f"round {r} {mode}: epoch {res['epoch_s']:.1f} s (wall {res['wall_s']:.0f} s), test accuracy "
                      f"{100 * res['test_accuracy']:.2f}%, load {res['load_before']} -> {res['load_after']}{extra}",
                      flush=True)
        first = {m: next(x for x in results if x["mode"] == m and x["round"] == 0) for m in MODES}
        gap = weight_gap(first["2x1"]["run_dir"], first["1x1"]["run_dir"])
    median = {m: float(np.median([x["epoch_s"] for x in results if x["mode"] == m])) for m in MODES}
    two = [x for x in results if x["mode"] == "2x1"]
    per_step = float(np.median([x["step_s"] / x["allreduce_calls"] for x in two])) * 1e3
    alone = allreduce_alone(two[0]["floats_per_call"] + 3)
    print()
    print(f"median epoch: 1x1 {median['1x1']:.1f} s, 1x2 {median['1x2']:.1f} s, 2x1 {median['2x1']:.1f} s")
    print(f"speed-up over 1x1: 1x2 {median['1x1'] / median['1x2']:.2f}x, 2x1 {median['1x1'] / median['2x1']:.2f}x")
    print(f"Allreduce in training (rank 0, waiting included): "
          f"{100 * float(np.median([x['allreduce_share'] for x in two])):.1f}% of a {per_step:.1f} ms step")
    print(f"Allreduce alone ({two[0]['floats_per_call'] + 3:,} float32, ranks lined up): {alone:.3f} ms = "
          f"{100 * alone / per_step:.1f}% of a 2-rank step")
    print(f"1x1 vs 2x1 (round 0): weights max|diff| = {gap:.2e} x max|w|; test accuracy "
          f"{100 * first['1x1']['test_accuracy']:.2f}% vs {100 * first['2x1']['test_accuracy']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "median_epoch_s": median, "allreduce_alone_ms": alone,
                                         "step_ms_2x1": per_step, "weights_gap_1x1_2x1": gap}, indent=2))


if __name__ == "__main__":
    main()
