"""Run the whole gradient-check table (what ``trainkit gradcheck`` prints)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainkit.autograd.gradcheck import check_gradients

from .cases import CheckCase, cases


@dataclass
class CaseOutcome:
    """One row of the gradcheck table."""

    name: str
    kind: str
    shapes: str
    max_abs: float
    max_rel: float
    passed: bool
    ms: float
    message: str


def _shapes(inputs) -> str:
    return ", ".join("x".join(map(str, getattr(t, "shape", ()))) or "scalar" for t in inputs)


def run_case(case: CheckCase, seed: int = 0) -> CaseOutcome:
    """Gradient-check one case on fresh float64 inputs; errors count as failures."""
    inputs = case.make_inputs(np.random.default_rng(seed))
    try:
        r = check_gradients(case.fn, inputs, atol=case.atol, rtol=case.rtol, fast_mode=case.fast)
    except Exception as exc:  # a crashing op is a failed check, reported in the table
        return CaseOutcome(case.name, case.kind, _shapes(inputs), float("nan"), float("nan"), False, 0.0,
                           f"{type(exc).__name__}: {exc}")
    return CaseOutcome(case.name, case.kind, _shapes(inputs), r.max_abs, r.max_rel, r.passed, r.seconds * 1e3,
                       r.message)


def select(op: str | None = None) -> list[CheckCase]:
    """Cases whose name contains ``op`` (all when None)."""
    return [c for name, c in sorted(cases().items(), key=lambda kv: (kv[1].kind, kv[0]))
            if op is None or op.lower() in name.lower()]
