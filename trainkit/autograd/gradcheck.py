"""Numerical gradient checking: analytic gradients against central differences in float64."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .function import Op, enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Analytic and numerical gradients disagree."""


@dataclass
class GradcheckResult:
    """Outcome of one gradient check (used by ``trainkit gradcheck``'s table)."""

    passed: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    message: str = ""
    seconds: float = 0.0
    ops: set = field(default_factory=set)


def _outputs(out) -> list:
    """The float tensors of a result, nested tuples included (an LSTM's ``(output, (h_n, c_n))``)."""
    if isinstance(out, Tensor):
        return [out]
    return [t for o in out if isinstance(o, (Tensor, tuple, list)) for t in _outputs(o) if t.dtype.kind == "f"]


def _graph_ops(outs) -> set:
    """Names of the op classes in the graph behind ``outs``."""
    seen, names, stack = set(), set(), [o.grad_fn for o in outs if o.grad_fn is not None]
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        names.add(type(op).__name__)
        for t in getattr(op, "inputs", None) or ():
            if t.grad_fn is not None:
                stack.append(t.grad_fn)
    return names


def check_gradients(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                    seed: int = 0, fast_mode: bool = False) -> GradcheckResult:
    """Compare the vector-Jacobian product of ``fn`` with central differences.

    A fixed random cotangent ``v`` per output makes one backward pass give
    ``vᵀJ`` for every input, which is compared element by element with
    ``(f(x+eps) - f(x-eps)) · v / 2eps``. With ``fast_mode`` (PyTorch's option)
    all inputs are instead moved together along three random directions ``u``,
    comparing ``vᵀJu`` with ``(f(x+eps*u) - f(x-eps*u)) · v / 2eps``: six
    evaluations in all instead of two per element, for large composite layers.
    """
    start = time.perf_counter()
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    # a non-leaf input would receive no .grad: check a leaf copy of it instead
    inputs = tuple(Tensor(t._array.copy(), requires_grad=True) if isinstance(t, Tensor) and t.grad_fn is not None
                   else t for t in inputs)
    targets = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in targets:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}, not float64; the check will be imprecise",
                          stacklevel=3)
    rng = np.random.default_rng(seed)
    with enable_grad():
        outs = _outputs(fn(*inputs))
    ops = _graph_ops(outs)
    vs = [rng.standard_normal(o.shape) for o in outs]

    def project(os):
        return sum(float((o._array.astype(np.float64) * v).sum()) for o, v in zip(os, vs))

    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    total = None
    for o, v in zip(outs, vs):
        if o.requires_grad:
            term = (o * Tensor(v.astype(o.dtype))).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    worst = GradcheckResult(True, ops=ops)
    if fast_mode:
        _check_directions(fn, inputs, targets, project, eps, atol, rtol, rng, worst)
        targets = []
    for i in targets:
        t = inputs[i]
        if not t._array.flags.c_contiguous:
            t._array = np.ascontiguousarray(t._array)
        analytic = np.zeros(t.shape) if t.grad is None else t.grad._array.astype(np.float64)
        numeric = np.zeros(t.shape)
        flat = t._array.reshape(-1)
        with no_grad():
            for k in range(flat.size):
                orig = flat[k]
                flat[k] = orig + eps
                fp = project(_outputs(fn(*inputs)))
                flat[k] = orig - eps
                fm = project(_outputs(fn(*inputs)))
                flat[k] = orig
                numeric.reshape(-1)[k] = (fp - fm) / (2 * eps)
        err = np.abs(analytic - numeric)
        rel = err / np.maximum(np.abs(numeric), 1e-12)
        worst.max_abs = max(worst.max_abs, float(err.max(initial=0.0)))
        worst.max_rel = max(worst.max_rel, float(np.where(err > atol, rel, 0).max(initial=0.0)))
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any() and worst.passed:
            k = int(np.argmax(np.where(bad, err, -1)))
            idx = np.unravel_index(k, t.shape) if t.shape else ()
            worst.passed = False
            worst.message = (
                f"Jacobian mismatch for input {i} at element {tuple(int(j) for j in idx)}: "
                f"analytic {analytic.reshape(-1)[k]:.8g}, numerical {numeric.reshape(-1)[k]:.8g}; "
                f"max abs error {float(err.max()):.3g}, max rel error {float(rel.max()):.3g} "
                f"(atol={atol}, rtol={rtol})"
            )
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    worst.seconds = time.perf_counter() - start
    return worst


def _check_directions(fn, inputs, targets, project, eps, atol, rtol, rng, worst, directions: int = 3) -> None:
    """fast_mode: ``vᵀJu`` against central differences along random directions ``u`` of all inputs at once."""
    arrays = [inputs[i] for i in targets]
    analytic = [np.zeros(t.shape) if t.grad is None else t.grad._array.astype(np.float64) for t in arrays]
    bases = [t._array.copy() for t in arrays]
    with no_grad():
        for d in range(directions):
            us = [rng.standard_normal(t.shape) for t in arrays]
            norm = max(float(np.sqrt(sum((u * u).sum() for u in us))), 1e-12)
            values = []
            for sign in (1, -1):
                for t, base, u in zip(arrays, bases, us):
                    t._array[...] = base + sign * eps * u / norm
                values.append(project(_outputs(fn(*inputs))))
            for t, base in zip(arrays, bases):
                t._array[...] = base
            numeric = (values[0] - values[1]) / (2 * eps)
            exact = sum(float((g * u).sum()) for g, u in zip(analytic, us)) / norm
            err = abs(exact - numeric)
            worst.max_abs = max(worst.max_abs, err)
            if err > atol:
                worst.max_rel = max(worst.max_rel, err / max(abs(numeric), 1e-12))
            if err > atol + rtol * abs(numeric) and worst.passed:
                worst.passed = False
                worst.message = (f"Jacobian mismatch along random direction {d} of all inputs at once (fast mode): "
                                 f"analytic {exact:.8g}, numerical {numeric:.8g} (atol={atol}, rtol={rtol})")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool = False) -> bool:
    """Check ``fn``'s gradients for every input that requires grad (PyTorch's ``gradcheck``).

    Passes when ``|analytic - numeric| <= atol + rtol * |numeric|`` everywhere
    (``fast_mode``: along three random directions of all inputs instead of every element).
    On failure raises :class:`GradcheckError` naming the input, the worst element,
    both values and the max errors — or returns False if ``raise_exception`` is False.
    """
    result = check_gradients(fn, inputs, eps, atol, rtol, fast_mode=fast_mode)
    if not result.passed and raise_exception:
        raise GradcheckError(result.message)
    return result.passed


def all_op_classes() -> set:
    """Names of every engine Op subclass (the gradient-check table must cover them all)."""
    names, stack = set(), list(Op.__subclasses__())
    while stack:
        c = stack.pop()
        stack.extend(c.__subclasses__())
        if not c.__name__.startswith("_"):
            names.add(c.__name__)
    return names
