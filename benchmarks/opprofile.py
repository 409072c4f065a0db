"""Per-op timing of a trainkit training step (used by throughput.py's profile).

The timing wrappers are installed on the op classes only while the
:func:`op_timing` block runs, never in the engine's hot path.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from collections import defaultdict

from trainkit.autograd.function import Op


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
def op_timing(clock=time.perf_counter):
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
            t0 = clock()
            try:
                return fn(self, *args, **kwargs)
            finally:
                s = stats[(phase, type(self).__name__)]
                s[0] += clock() - t0
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


def profile_step(step, steps: int = 30, clock=time.perf_counter):
    """Per-phase and per-op times (ms per step, median over ``steps``) of a trainkit training stepper.

    ``step`` is a training stepper of throughput.py (it carries its model,
    optimizer, loss and batches). Medians rather than means keep a shared
    machine's bursts of load from dominating the breakdown; the phases therefore
    need not add up exactly.
    """
    model, opt, crit, bx, by = step.model, step.opt, step.crit, step.bx, step.by
    nb = len(bx)
    for i in range(3):
        step(i)
    phases = defaultdict(list)
    per_op = defaultdict(list)
    calls = {}
    with op_timing(clock) as stats:
        for i in range(steps):
            stats.clear()
            t0 = clock()
            opt.zero_grad()
            loss = crit(model(bx[i % nb]), by[i % nb])
            t1 = clock()
            loss.backward()
            t2 = clock()
            opt.step()
            t3 = clock()
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
