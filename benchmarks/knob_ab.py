"""In-process A/B of one tuning constant on the throughput benchmark's workloads.

    python benchmarks/knob_ab.py trainkit.autograd.threads.ELEMENTWISE_MIN_BYTES 262144 4194304 \\
        --workloads lenet128,resnet64 --threads 2 --rounds 8

The constant (a module attribute) is set to value A, then B, then A... on
the same model and batches: ``--rounds`` short runs of each, alternating,
so a shared machine's slow spells hit both sides alike. Prints the median
images/s of each value and B's speed relative to A, per workload. trainkit
only (no torch): the ratio B/A is the figure. Not a test.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trainkit  # noqa: E402,F401  (before numpy, as the CLI does)
from throughput import WORKLOADS, calibrate, make_data, set_threads, shared_state, timed, trainkit_stepper  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("knob", help="module.path.NAME of the constant")
    ap.add_argument("a", help="value A (a Python literal)")
    ap.add_argument("b", help="value B (a Python literal)")
    ap.add_argument("--workloads", default="lenet32,lenet128,mlp128,resnet64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=0.6, help="length of one run")
    args = ap.parse_args(argv)
    module_name, name = args.knob.rsplit(".", 1)
    module = importlib.import_module(module_name)
    values = {"A": ast.literal_eval(args.a), "B": ast.literal_eval(args.b)}
    set_threads(args.threads)
    by_key = {w.key: w for w in WORKLOADS}
    print(f"{args.knob}: A = {args.a}, B = {args.b}; {args.threads} threads, {args.rounds} alternating rounds")
    for key in args.workloads.split(","):
        wl = by_key[key]
        xs, ys = (wl.data or make_data)(wl.batch)
        step = trainkit_stepper(wl, shared_state(wl), xs, ys)
        setattr(module, name, values["A"])
        steps = calibrate(step, args.seconds)
        rates = {"A": [], "B": []}
        for r in range(args.rounds):
            for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                setattr(module, name, values[side])
                rates[side].append(wl.batch * steps / timed(step, steps))
        a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
        print(f"  {wl.label:45s} A {a:9,.0f}  B {b:9,.0f} images/s   B/A {b / a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
