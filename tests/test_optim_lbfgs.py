"""L-BFGS (trainkit.optim.LBFGS) against torch.optim.LBFGS.

Rosenbrock and random convex quadratics (hypothesis) over several parameters,
with and without the strong-Wolfe line search, compared step by step in
float64 (iterates, losses, evaluation counts); float32 stays float32; a run
resumed from either serialisation continues bit for bit.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit
from trainkit.autograd.tensor import Tensor
from trainkit.errors import CheckpointError
from trainkit.optim import LBFGS


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# ------------------------------------------------------------------ problems
def rosenbrock(lib, w, v):
    """The Rosenbrock function of the 6 entries of ``w`` (2x2) then ``v`` (2,)."""
    x = lib.cat([w.reshape(-1), v])
    return (100 * (x[1:] - x[:-1] * x[:-1]) ** 2 + (1 - x[:-1]) ** 2).sum()


ROSEN_START = [np.array([[-1.2, 1.0], [-0.5, 0.8]]), np.array([1.5, -0.3])]


def quadratic(lib, A, b):
    """``0.5 x'Ax - b'x`` of ``x`` = the parameters flattened in order."""
    def f(*params):
        x = lib.cat([p.reshape(-1) for p in params])
        return 0.5 * (x * lib.matmul(A, x)).sum() - (b * x).sum()
    return f


class Run:
    """One library's parameters, optimizer and closure for a problem."""

    def __init__(self, lib, opt_cls, init, loss_fn, dtype, nudge=0, **kwargs):
        self.lib = lib
        self.nudge = nudge  # torch only: move every gradient entry one ulp up (1) or down (-1)
        if lib is trainkit:
            self.params = [Tensor(a.astype(dtype), requires_grad=True) for a in init]
        else:
            self.params = [lib.tensor(a.astype(dtype), requires_grad=True) for a in init]
        # A parameter the loss does not use: its gradient stays None, counted as zeros.
        self.params.append(Tensor(np.ones(2, dtype), requires_grad=True) if lib is trainkit
                           else lib.ones(2, dtype=getattr(lib, np.dtype(dtype).name), requires_grad=True))
        self.opt = opt_cls(self.params, **kwargs)
        self.loss_fn = loss_fn

    def closure(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.lib, *self.params[:-1])
        loss.backward()
        if self.nudge:
            for p in self.params[:-1]:
                p.grad.copy_(self.lib.from_numpy(np.nextafter(p.grad.numpy(), self.nudge * np.inf)))
        return loss

    def step(self):
        return self.opt.step(self.closure).item()

    def values(self):
        return [p._array.copy() if isinstance(p, Tensor) else p.detach().numpy().copy() for p in self.params]

    def counters(self):
        s = self.opt.state[self.params[0]]
        return s["func_evals"], s["n_iter"]


def _compare(torch, init, ours_loss, torch_loss, steps, rtol, atol, gap=None, **kwargs):
    """Step both for ``steps`` steps: same iterates and losses (to ``rtol``/``atol``) and the same
    evaluation and iteration counts.

    Rounding differs in the last bit (PyTorch's fused multiply-adds, its dot products' order).
    Rosenbrock's valley amplifies that about 10x per step. Close to a quadratic's minimum the
    two-loop recursion works on differences of tiny gradients, so there the iterates of any two
    implementations part while both converge: with ``gap(values)`` (the distance to the optimal
    loss) given, steps are compared while the gap exceeds 1e-4 of the initial one, then both must
    have converged.
    """
    if gap is not None:
        _assume_torch_is_stable(torch, init, torch_loss, steps, rtol, atol, gap, **kwargs)
    ours = Run(trainkit, LBFGS, init, ours_loss, np.float64, **kwargs)
    theirs = Run(torch, torch.optim.LBFGS, init, torch_loss, np.float64, **kwargs)
    first_gap = gap(ours.values()) if gap is not None else None
    for step in range(steps):
        if gap is not None and gap(ours.values()) <= 1e-4 * first_gap:
            ours.step(), theirs.step()
            assert gap(ours.values()) <= 1e-4 * first_gap and gap(theirs.values()) <= 1e-3 * first_gap
            break
        la, lb = ours.step(), theirs.step()
        assert la == pytest.approx(lb, rel=rtol, abs=atol), f"loss, step {step}"
        for a, b in zip(ours.values(), theirs.values()):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {step}")
        assert ours.counters() == theirs.counters(), f"evaluations/iterations, step {step}"
    np.testing.assert_array_equal(ours.values()[-1], [1.0, 1.0])  # unused parameter untouched
    return ours


def _assume_torch_is_stable(torch, init, torch_loss, steps, rtol, atol, gap, **kwargs):
    """Skip (hypothesis ``assume``) a problem on which torch itself parts from its own path when its
    gradients move by one ulp: there the result is decided by rounding (a near-tie in the line search
    or the curvature test), and no other implementation can be expected to follow."""
    from hypothesis import assume

    runs = [Run(torch, torch.optim.LBFGS, init, torch_loss, np.float64, nudge=k, **kwargs) for k in (0, 1, -1)]
    first_gap = gap(runs[0].values())
    for _ in range(steps):
        if gap(runs[0].values()) <= 1e-4 * first_gap:
            break
        for run in runs:
            run.step()
        for other in runs[1:]:
            assume(other.counters() == runs[0].counters())
            assume(all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(other.values(), runs[0].values())))


@pytest.mark.parametrize("kwargs", [
    {"line_search_fn": "strong_wolfe"},
    {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 7},
    {"line_search_fn": "strong_wolfe", "max_eval": 9, "tolerance_change": 1e-6},
    {"lr": 0.01, "history_size": 4},
    {"lr": 0.002, "max_iter": 5, "max_eval": 3},
], ids=["wolfe", "wolfe-short-history", "wolfe-eval-budget", "fixed-step", "fixed-step-eval-budget"])
def test_rosenbrock_matches_torch(torch, kwargs):
    ours = _compare(torch, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v),
                    lambda lib, w, v: rosenbrock(torch, w, v), steps=8, rtol=1e-7,
                    atol=1e-7, **kwargs)
    if kwargs == {"line_search_fn": "strong_wolfe"}:  # 8 x 20 iterations: at the minimum
        final = np.concatenate([a.reshape(-1) for a in ours.values()[:-1]])
        np.testing.assert_allclose(final, np.ones(6), atol=1e-4)


@st.composite
def quadratics(draw):
    n_params = draw(st.integers(1, 3))
    shapes = [draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple)) for _ in range(n_params)]
    seed = draw(st.integers(0, 2**32 - 1))
    kwargs = {
        # Not 0.1 with A = I (any 1-d problem): the curvature test |g_new.d| <= 0.9 |g.d| is then an exact tie
        # at the first trial step, decided by the last bit of rounding.
        "lr": draw(st.sampled_from([1.0, 0.5, 0.25])),
        "history_size": draw(st.integers(1, 8)),
        "max_iter": draw(st.integers(1, 8)),
        "line_search_fn": draw(st.sampled_from([None, "strong_wolfe"])),
    }
    if draw(st.booleans()):
        kwargs["max_eval"] = draw(st.integers(1, 20))
    return shapes, seed, kwargs, draw(st.floats(1.0, 50.0))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(quadratics())
def test_random_quadratics_match_torch(torch, case):
    shapes, seed, kwargs, condition = case
    rng = np.random.default_rng(seed)
    n = sum(int(np.prod(s)) for s in shapes)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.geomspace(1.0, condition, n)) @ q.T
    b = rng.standard_normal(n)
    init = [rng.standard_normal(s) for s in shapes]
    ours_loss = quadratic(trainkit, Tensor(A), Tensor(b))
    torch_loss = quadratic(torch, torch.tensor(A), torch.tensor(b))
    f_opt = -0.5 * b @ np.linalg.solve(A, b)

    def gap(values):
        x = np.concatenate([v.reshape(-1) for v in values[:-1]])
        return 0.5 * x @ A @ x - b @ x - f_opt

    _compare(torch, init, lambda lib, *ps: ours_loss(*ps), lambda lib, *ps: torch_loss(*ps), steps=4, rtol=1e-9,
             atol=1e-10, gap=gap, **kwargs)


def _wavy(seed: int, n: int):
    """A smooth non-convex function of ``n`` variables (sines of random projections plus a bowl) and its gradient."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 5))
    a, b, c = rng.uniform(0.1, 2, k), rng.uniform(0.5, 6, k), rng.uniform(0, 6.3, k)
    w, q = rng.standard_normal((k, n)), rng.uniform(0, 0.5)

    def fg(x):
        z = w @ x * b + c
        return float((a * np.sin(z)).sum() + 0.5 * q * x @ x), w.T @ (a * b * np.cos(z)) + q * x
    return fg, rng.standard_normal(n)


def _same_search(r1, r2, rel=1e-8) -> bool:
    f1, g1, t1, n1 = r1
    f2, g2, t2, n2 = r2
    g2 = g2.numpy() if hasattr(g2, "numpy") else g2
    return (n1 == n2 and abs(float(t1) - float(t2)) <= rel * max(1.0, abs(float(t2)))
            and abs(f1 - f2) <= rel * max(1.0, abs(f2)) and np.allclose(g1, g2, rtol=rel, atol=rel))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.sampled_from([0.01, 0.1, 1.0, 3.0, 10.0]),
       st.sampled_from([2, 3, 25]), st.sampled_from([1e-9, 1e-4, 1e-2, 1.0]))
def test_strong_wolfe_line_search_matches_torch(torch, seed, n, t0, max_ls, tolerance_change):
    """Every branch of the bracketing and zoom phases (cubic steps outside the bracket, no real
    minimiser, insufficient progress at either end, tiny bracket, budget spent) against torch's."""
    from hypothesis import assume

    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe
    from trainkit.optim.lbfgs import _strong_wolfe

    fg, x0 = _wavy(seed, n)
    f0, g0 = fg(x0)
    d = -g0

    def torch_search(nudge):
        def obj(x, t, d):
            f, g = fg(x + float(t) * d.numpy())
            return f, torch.from_numpy(np.nextafter(g, nudge * np.inf) if nudge else g)
        td, tg = torch.from_numpy(d), torch.from_numpy(g0)
        return torch_strong_wolfe(obj, x0, t0, td, f0, tg, tg.dot(td), max_ls=max_ls,
                                  tolerance_change=tolerance_change)

    reference = torch_search(0)
    # Where moving torch's own gradients by one ulp changes its result, the search is decided by
    # rounding (an interpolation on a near-tie): no implementation can be expected to agree there.
    assume(_same_search(torch_search(1), reference) and _same_search(torch_search(-1), reference))
    ours = _strong_wolfe(lambda x, t, d: fg(x + t * d), x0, t0, d, f0, g0, g0.dot(d), max_ls=max_ls,
                         tolerance_change=tolerance_change)
    assert _same_search(ours, reference), (ours[2:], reference[2:])


def test_quadratic_is_solved_with_the_line_search():
    rng = np.random.default_rng(0)
    n = 7
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.geomspace(1.0, 100.0, n)) @ q.T
    b = rng.standard_normal(n)
    loss = quadratic(trainkit, Tensor(A), Tensor(b))
    run = Run(trainkit, LBFGS, [np.zeros((3, 2)), np.zeros(1)], lambda lib, *ps: loss(*ps), np.float64,
              line_search_fn="strong_wolfe", max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-16)
    run.step()
    x = np.concatenate([a.reshape(-1) for a in run.values()[:-1]])
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-6, atol=1e-8)


def test_float32_stays_float32_in_place_and_converges():
    run = Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), np.float32,
              line_search_fn="strong_wolfe")
    arrays = [p._array for p in run.params]
    for _ in range(10):
        run.step()
    for p, a in zip(run.params, arrays):
        assert p._array is a and a.dtype == np.float32 and p.grad_fn is None
    state = run.opt.state[run.params[0]]
    assert state["d"].dtype == np.float32 and state["prev_flat_grad"].dtype == np.float32
    assert all(h.dtype == np.float32 for h in state["old_dirs"] + state["old_stps"])
    # torch's 0-d float32 tensors are float32 scalars here.
    assert isinstance(state["H_diag"], np.float32) and all(isinstance(r, np.float32) for r in state["ro"])
    final = np.concatenate([a.reshape(-1) for a in run.values()[:-1]])
    np.testing.assert_allclose(final, np.ones(6), atol=1e-2)


def test_stops_at_once_when_the_gradient_is_below_tolerance(torch):
    for lib, cls in [(trainkit, LBFGS), (torch, torch.optim.LBFGS)]:
        rosen = (lambda lib_, w, v, lib=lib: rosenbrock(lib, w, v))
        run = Run(lib, cls, ROSEN_START, rosen, np.float64, tolerance_grad=1e6)
        loss = run.step()
        x = np.concatenate([a.reshape(-1) for a in ROSEN_START])
        assert loss == pytest.approx((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())
        assert run.counters() == (1, 0)
        np.testing.assert_array_equal(run.values()[0], ROSEN_START[0])


# ------------------------------------------------------------- state dicts
def test_state_dict_layout_equals_torch(torch):
    runs = [Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), np.float64,
                line_search_fn="strong_wolfe", max_iter=4),
            Run(torch, torch.optim.LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(torch, w, v), np.float64,
                line_search_fn="strong_wolfe", max_iter=4)]
    for run in runs:
        run.step()
        run.step()
    sd, tsd = runs[0].opt.state_dict(), runs[1].opt.state_dict()
    assert list(sd["state"]) == list(tsd["state"]) == [0]
    assert list(sd["state"][0]) == list(tsd["state"][0])
    assert sd["param_groups"] == tsd["param_groups"] == [{
        "lr": 1, "max_iter": 4, "max_eval": 5, "tolerance_grad": 1e-7, "tolerance_change": 1e-9,
        "history_size": 100, "line_search_fn": "strong_wolfe", "params": [0, 1, 2]}]
    s, t = sd["state"][0], tsd["state"][0]
    assert len(s["old_dirs"]) == len(t["old_dirs"]) and len(s["al"]) == len(t["al"]) == 100
    np.testing.assert_allclose(s["d"], t["d"].numpy(), rtol=1e-9, atol=1e-12)


def _resume_case(tmp_path, dtype, kwargs, via):
    def make():
        return Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), dtype, **kwargs)

    full = make()
    losses = [full.step() for _ in range(6)]

    first = make()
    assert [first.step() for _ in range(3)] == losses[:3]
    second = make()
    for p, a in zip(second.params, first.values()):
        np.copyto(p._array, a)
    if via == "flat":
        from safetensors.numpy import load_file, save_file

        save_file(first.opt.state_arrays(), str(tmp_path / "optim.safetensors"))
        (tmp_path / "optim.json").write_text(json.dumps(first.opt.state_json()))
        second.opt.load_flat_state(load_file(str(tmp_path / "optim.safetensors")),
                                   json.loads((tmp_path / "optim.json").read_text()))
    else:
        second.opt.load_state_dict(first.opt.state_dict())
    assert [second.step() for _ in range(3)] == losses[3:]
    for a, b in zip(second.values(), full.values()):
        np.testing.assert_array_equal(a, b)
    assert second.counters() == full.counters()


@pytest.mark.parametrize("via", ["flat", "state_dict"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{"line_search_fn": "strong_wolfe", "max_iter": 3, "history_size": 2},
                                    {"lr": 0.01, "max_iter": 4}], ids=["wolfe", "fixed"])
def test_resumes_bit_for_bit(tmp_path, dtype, kwargs, via):
    _resume_case(tmp_path, dtype, kwargs, via)


def test_flat_state_names_history_arrays_and_refuses_mismatches():
    run = Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), np.float64,
              line_search_fn="strong_wolfe", max_iter=3)
    run.step()
    run.step()
    arrays, meta = run.opt.state_arrays(), run.opt.state_json()
    n_hist = len(run.opt.state[run.params[0]]["old_dirs"])
    assert n_hist >= 2
    names = {"state.0.d", "state.0.prev_flat_grad", "state.0.old_dirs.0", f"state.0.old_stps.{n_hist - 1}"}
    assert names <= set(arrays)
    assert meta["state"]["0"]["array_lists"] == {"old_dirs": n_hist, "old_stps": n_hist}
    json.dumps(meta)  # everything else is JSON

    missing = dict(arrays)
    del missing[f"state.0.old_dirs.{n_hist - 1}"]
    with pytest.raises(CheckpointError, match="old_dirs"):
        LBFGS(Run(trainkit, LBFGS, ROSEN_START, None, np.float64).params).load_flat_state(missing, meta)
    # The same state does not fit a model with other parameter sizes.
    other = [Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(2), requires_grad=True),
             Tensor(np.zeros(2), requires_grad=True)]
    with pytest.raises(CheckpointError, match="does not match"):
        LBFGS(other).load_flat_state(arrays, meta)


# -------------------------------------------------------------------- errors
def test_errors_match_torch(torch):
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"LBFGS doesn't support per-parameter options \(parameter groups\)"):
        LBFGS([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        LBFGS([a], lr=-1)
    assert LBFGS([a], max_iter=7).defaults == torch.optim.LBFGS([torch.zeros(2, requires_grad=True)],
                                                                  max_iter=7).defaults
    opt = LBFGS([a], line_search_fn="backtracking")

    def closure():
        opt.zero_grad()
        loss = ((a - 1.0) * (a - 1.0)).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)
    with pytest.raises(TypeError, match="needs a closure"):
        LBFGS([a]).step(None)


def test_resumes_bit_for_bit_through_the_trainers_checkpoint_files(tmp_path):
    from trainkit.train.checkpoint import load_checkpoint, save_checkpoint

    def make():
        return Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), np.float32,
                   line_search_fn="strong_wolfe", max_iter=3, history_size=4)

    full = make()
    for _ in range(5):
        full.step()
    first = make()
    for _ in range(2):
        first.step()
    # As Trainer._checkpoint_payload / Trainer.restore store and read the optimizer.
    save_checkpoint(tmp_path / "last", {f"p{i}": a for i, a in enumerate(first.values())},
                    {f"optimizer.{k}": v for k, v in first.opt.state_arrays().items()},
                    {"optimizer": first.opt.state_json()})
    model, arrays, meta = load_checkpoint(tmp_path / "last")
    second = make()
    for i, p in enumerate(second.params):
        np.copyto(p._array, model[f"p{i}"])
    second.opt.load_flat_state({k[len("optimizer."):]: v for k, v in arrays.items()}, meta["optimizer"])
    for _ in range(3):
        second.step()
    for a, b in zip(second.values(), full.values()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", [
    lambda m: m["state"]["0"].update(array_lists=["old_dirs"]),
    lambda m: m["state"]["0"].update(array_lists={"old_dirs": "many"}),
    lambda m: m["state"].update({"x": {"scalars": {}, "arrays": []}}),
    lambda m: m["state"]["0"].pop("arrays"),
    lambda m: m["param_groups"][0].update(params=7),
    lambda m: m.update(state=[1, 2]),
], ids=["lists-not-a-mapping", "length-not-a-number", "index-not-a-number", "no-arrays", "params-not-a-list",
        "state-not-a-mapping"])
def test_malformed_flat_state_is_a_checkpoint_error(damage):
    run = Run(trainkit, LBFGS, ROSEN_START, lambda lib, w, v: rosenbrock(trainkit, w, v), np.float64,
              line_search_fn="strong_wolfe", max_iter=3)
    run.step()
    run.step()
    arrays, meta = run.opt.state_arrays(), json.loads(json.dumps(run.opt.state_json()))
    damage(meta)
    fresh = Run(trainkit, LBFGS, ROSEN_START, None, np.float64)
    with pytest.raises(CheckpointError, match="malformed|does not match"):
        fresh.opt.load_flat_state(arrays, meta)
