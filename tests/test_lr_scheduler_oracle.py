"""LambdaLR, MultiplicativeLR, ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR and
ChainedScheduler (trainkit.optim.lr_scheduler) against torch.optim.lr_scheduler.

Sequences of 60 steps (lr of every group and the cycled momentum or beta1) must
equal torch's value for value, on hand-picked and on randomised (hypothesis)
arguments; state dicts have torch's keys and a scheduler restored mid-way
continues identically; errors carry torch's messages.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit.autograd.function  # noqa: F401  (engine import order)
from trainkit.autograd.tensor import Tensor
from trainkit.optim import SGD, Adagrad, Adam
from trainkit.optim import lr_scheduler as sched

STEPS = 60


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def make_opt(kind="SGD", lib=None):
    """An optimizer with two groups (lr 0.1 and 0.05), from trainkit or from torch."""
    if lib is None:
        ps = [Tensor(np.zeros(2, np.float32), requires_grad=True) for _ in range(2)]
        cls = {"SGD": SGD, "Adam": Adam, "Adagrad": Adagrad}[kind]
    else:
        ps = [lib.zeros(2, requires_grad=True) for _ in range(2)]
        cls = getattr(lib.optim, kind)
    kw = {"momentum": 0.9} if kind == "SGD" else {}
    return cls([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}], lr=0.1, **kw)


def momentum_of(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def sequence(scheduler, opt, steps=STEPS):
    """(lrs, momentums) before each of ``steps`` scheduler steps."""
    out = []
    for _ in range(steps):
        out.append((list(scheduler.get_last_lr()), momentum_of(opt)))
        assert [g["lr"] for g in opt.param_groups] == out[-1][0]
        opt.step()
        scheduler.step()
    return out


class Halving:
    """A callable object (its state is saved by state_dict, unlike a function's)."""

    def __init__(self, every):
        self.every = every

    def __call__(self, epoch):
        return 0.5 ** (epoch // self.every)


CASES = {
    "LambdaLR": lambda L, o: L.LambdaLR(o, [lambda e: 0.95**e, lambda e: 1 / (e + 1)]),
    "LambdaLR-object": lambda L, o: L.LambdaLR(o, Halving(7)),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, lambda e: 0.9 if e % 3 else 1.1),
    "ConstantLR": lambda L, o: L.ConstantLR(o, factor=0.25, total_iters=7),
    "ConstantLR-default": lambda L, o: L.ConstantLR(o),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, total_iters=40, power=2.5),
    "PolynomialLR-short": lambda L, o: L.PolynomialLR(o, total_iters=12),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=7),
    "CosineAnnealingWarmRestarts-Tmult": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2,
                                                                                     eta_min=1e-3),
    "CyclicLR": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=4, step_size_down=6),
    "CyclicLR-triangular2": lambda L, o: L.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=5,
                                                    mode="triangular2", base_momentum=0.7,
                                                    max_momentum=[0.95, 0.9]),
    "CyclicLR-exp_range": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range",
                                                  gamma=0.97),
    "CyclicLR-scale_fn": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4,
                                                 scale_fn=lambda x: 1 / (1 + 0.1 * x), scale_mode="iterations"),
    "CyclicLR-no-momentum": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2,
                                                    cycle_momentum=False),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler([L.ConstantLR(o, factor=0.1, total_iters=3),
                                                         L.ExponentialLR(o, gamma=0.9)]),
    "SequentialLR-restarts": lambda L, o: L.SequentialLR(
        o, [L.ConstantLR(o, factor=0.2, total_iters=4), L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2)],
        milestones=[6]),
    "SequentialLR-cyclic": lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.CyclicLR(o, 0.01, 0.1, step_size_up=3)],
        milestones=[5]),
    "ChainedScheduler-restarts": lambda L, o: L.ChainedScheduler(
        [L.CosineAnnealingWarmRestarts(o, T_0=10), L.MultiStepLR(o, milestones=[15, 30], gamma=0.5)], o),
}


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")  # torch's "lr_scheduler.step() before optimizer.step()" checks
    return ctx


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("key", list(CASES))
def test_sequence_equals_torch(torch, key, kind):
    opt, topt = make_opt(kind), make_opt(kind, torch)
    ours = sequence(CASES[key](sched, opt), opt)
    ctx = _quiet()
    try:
        theirs = sequence(CASES[key](torch.optim.lr_scheduler, topt), topt)
    finally:
        ctx.__exit__(None, None, None)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"step {step}"


@pytest.mark.parametrize("key", list(CASES))
def test_state_dict_has_torchs_keys(torch, key):
    opt, topt = make_opt("SGD"), make_opt("SGD", torch)
    s = CASES[key](sched, opt)
    ctx = _quiet()
    try:
        ts = CASES[key](torch.optim.lr_scheduler, topt)
        for _ in range(3):
            s.step()
            ts.step()
    finally:
        ctx.__exit__(None, None, None)
    ours, theirs = s.state_dict(), ts.state_dict()
    # torch also records its warning bookkeeping (_get_lr_called_within_step); the rest is the same.
    assert set(ours) == set(theirs) - {"_get_lr_called_within_step"}
    for k in ("last_epoch", "base_lrs", "_last_lr", "T_i", "T_cur", "max_lrs", "total_size", "lr_lambdas"):
        if k in theirs:
            assert ours[k] == theirs[k], k


@pytest.mark.parametrize("key", list(CASES))
def test_restored_mid_way_continues_identically(key):
    kind = "Adam" if "yclic" in key else "SGD"
    opt = make_opt(kind)
    full = sequence(CASES[key](sched, opt), opt)

    opt1 = make_opt(kind)
    s1 = CASES[key](sched, opt1)
    first = sequence(s1, opt1, 23)
    # Through JSON, as the trainer stores both.
    sched_state = json.loads(json.dumps(s1.state_dict()))
    opt_state = json.loads(json.dumps(opt1.state_json()))
    if key == "LambdaLR-object":
        assert sched_state["lr_lambdas"] == [{"every": 7}, {"every": 7}]
    elif "lr_lambdas" in sched_state:
        assert sched_state["lr_lambdas"] == [None, None]  # functions are not saved, as in torch

    opt2 = make_opt(kind)
    s2 = CASES[key](sched, opt2)
    opt2.load_flat_state({}, opt_state)
    s2.load_state_dict(sched_state)
    assert first + sequence(s2, opt2, STEPS - 23) == full


def test_callable_object_state_is_restored_into_the_new_scheduler():
    opt = make_opt()
    s = sched.LambdaLR(opt, Halving(7))
    s.lr_lambdas[0].every = 3
    state = s.state_dict()
    s2 = sched.LambdaLR(make_opt(), [Halving(7), Halving(7)])
    s2.load_state_dict(state)
    assert [fn.every for fn in s2.lr_lambdas] == [3, 3]
    assert "lr_lambdas" in state  # loading left the caller's dict whole


# ----------------------------------------------------------------- randomised
@st.composite
def random_schedulers(draw):
    kind = draw(st.sampled_from(["ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "CyclicLR"]))
    if kind == "ConstantLR":
        kw = {"factor": draw(st.floats(0.01, 1.0)), "total_iters": draw(st.integers(0, 70))}
    elif kind == "PolynomialLR":
        kw = {"total_iters": draw(st.integers(1, 70)), "power": draw(st.floats(0.1, 4.0))}
    elif kind == "CosineAnnealingWarmRestarts":
        kw = {"T_0": draw(st.integers(1, 20)), "T_mult": draw(st.integers(1, 3)),
              "eta_min": draw(st.floats(0.0, 0.01))}
    else:
        kw = {"base_lr": draw(st.floats(1e-4, 0.05)), "max_lr": draw(st.floats(0.05, 1.0)),
              "step_size_up": draw(st.integers(1, 15)),
              "step_size_down": draw(st.one_of(st.none(), st.integers(1, 15))),
              "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
              "gamma": draw(st.floats(0.8, 1.0)), "base_momentum": draw(st.floats(0.5, 0.85)),
              "max_momentum": draw(st.floats(0.85, 0.99))}
    return kind, kw, draw(st.sampled_from(["SGD", "Adam"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_schedulers())
def test_random_arguments_equal_torch(torch, case):
    kind, kw, opt_kind = case
    opt, topt = make_opt(opt_kind), make_opt(opt_kind, torch)
    ours = sequence(getattr(sched, kind)(opt, **kw), opt)
    ctx = _quiet()
    try:
        theirs = sequence(getattr(torch.optim.lr_scheduler, kind)(topt, **kw), topt)
    finally:
        ctx.__exit__(None, None, None)
    assert ours == theirs


# ---------------------------------------------------------- epoch arguments
@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_with_fractional_epochs_equal_torch(torch, T_mult):
    opt, topt = make_opt(), make_opt("SGD", torch)
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=T_mult, eta_min=0.001)
    ts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=3, T_mult=T_mult, eta_min=0.001)
    iters = 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # step(epoch) is the documented use here: no deprecation warning
        for epoch in range(12):
            for i in range(iters):
                s.step(epoch + i / iters)
                ts.step(epoch + i / iters)
                assert s.get_last_lr() == ts.get_last_lr()
                assert (s.last_epoch, s.T_i, s.T_cur) == (ts.last_epoch, ts.T_i, ts.T_cur)
        # Jumping back and forth also works as in torch.
        for epoch in [40, 2.5, 0, 17.25]:
            s.step(epoch)
            ts.step(epoch)
            assert s.get_last_lr() == ts.get_last_lr()
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        s.step(-1)


def test_warm_restarts_hand_values():
    opt = make_opt()
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    lrs = [lr for lr, _ in sequence(s, opt, 8)]
    # Periods of 2, then 4: restarts (back to the initial lr) at epochs 2 and 6.
    expected = [0.1, 0.05, 0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2,
                0.1, None]
    for e in range(7):
        assert lrs[e][0] == pytest.approx(expected[e], rel=1e-12)


@pytest.mark.parametrize("name,kw", [("ConstantLR", {"factor": 0.5, "total_iters": 4}),
                                     ("PolynomialLR", {"total_iters": 10, "power": 2.0})])
def test_step_with_epoch_uses_the_closed_form_like_torch(torch, name, kw):
    opt, topt = make_opt(), make_opt("SGD", torch)
    s = getattr(sched, name)(opt, **kw)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [3, 4, 9, 1, 12, 0]:
            s.step(epoch)
            ts.step(epoch)
            assert s.get_last_lr() == ts.get_last_lr()


def test_polynomial_and_constant_hand_values():
    o = make_opt()
    lrs = [lr[0] for lr, _ in sequence(sched.PolynomialLR(o, total_iters=4, power=2.0), o, 7)]
    assert lrs == pytest.approx([0.1, 0.1 * (3 / 4) ** 2, 0.1 * (2 / 4) ** 2, 0.1 * (1 / 4) ** 2, 0.0, 0.0, 0.0],
                                rel=1e-12, abs=1e-15)
    o = make_opt()
    lrs = [lr[1] for lr, _ in sequence(sched.ConstantLR(o, factor=0.5, total_iters=3), o, 5)]
    assert lrs == pytest.approx([0.025, 0.025, 0.025, 0.05, 0.05], rel=1e-12)


def test_cyclic_lr_cycles_adams_beta1_and_keeps_beta2():
    opt = make_opt("Adam")
    s = sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2)
    seq = sequence(s, opt, 5)
    assert [lr[0] for lr, _ in seq] == pytest.approx([0.01, 0.055, 0.1, 0.055, 0.01], rel=1e-12)
    assert [m[0] for _, m in seq] == pytest.approx([0.9, 0.85, 0.8, 0.85, 0.9], rel=1e-12)
    assert all(g["betas"][1] == 0.999 for g in opt.param_groups)
    assert opt.param_groups[0]["initial_lr"] == 0.01 and opt.param_groups[0]["max_momentum"] == 0.9


def test_cyclic_lr_custom_scale_fn_is_not_saved_but_an_object_state_is():
    opt = make_opt()
    s = sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 0.5)
    state = s.state_dict()
    assert state["_scale_fn_custom"] is None and "_scale_fn_ref" not in state
    json.dumps(state)
    obj = sched.CyclicLR(make_opt(), base_lr=0.01, max_lr=0.1, scale_fn=Halving(2))
    obj._scale_fn_custom.every = 5
    state = obj.state_dict()
    assert state["_scale_fn_custom"] == {"every": 5}
    fresh = sched.CyclicLR(make_opt(), base_lr=0.01, max_lr=0.1, scale_fn=Halving(2))
    fresh.load_state_dict(state)
    assert fresh._scale_fn_custom.every == 5 and state["_scale_fn_custom"] == {"every": 5}
    builtin = sched.CyclicLR(make_opt(), base_lr=0.01, max_lr=0.1)
    with pytest.raises(ValueError, match="custom scale_fn"):
        builtin.load_state_dict(state)


# -------------------------------------------------------------------- errors
ERRORS = [
    ("ConstantLR factor", lambda L, o: L.ConstantLR(o, factor=1.5), ValueError),
    ("MultiplicativeLR not callable", lambda L, o: L.MultiplicativeLR(o, 0.9), TypeError),
    ("LambdaLR count", lambda L, o: L.LambdaLR(o, [lambda e: 1.0]), ValueError),
    ("MultiplicativeLR count", lambda L, o: L.MultiplicativeLR(o, [lambda e: 1.0] * 3), ValueError),
    ("warm restarts T_0", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=0), ValueError),
    ("warm restarts float T_0", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2.0), ValueError),
    ("warm restarts T_mult", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError),
    ("warm restarts eta_min", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"), ValueError),
    ("cyclic mode", lambda L, o: L.CyclicLR(o, 0.01, 0.1, mode="square"), ValueError),
    ("cyclic max_lr count", lambda L, o: L.CyclicLR(o, 0.01, [0.1, 0.2, 0.3]), ValueError),
    ("cyclic momentum count", lambda L, o: L.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]), ValueError),
    ("cyclic not an optimizer", lambda L, o: L.CyclicLR(object(), 0.01, 0.1), TypeError),
    ("chained empty", lambda L, o: L.ChainedScheduler([]), ValueError),
    ("chained plateau", lambda L, o: L.ChainedScheduler([L.ReduceLROnPlateau(o)]), ValueError),
    ("chained no optimizer", lambda L, o: L.ChainedScheduler([L.ConstantLR(o), object()]), TypeError),
]


@pytest.mark.parametrize("name,build,exc", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_equal_torchs(torch, name, build, exc):
    with pytest.raises(exc) as ours:
        build(sched, make_opt())
    with pytest.raises(exc) as theirs:
        build(torch.optim.lr_scheduler, make_opt("SGD", torch))
    assert str(ours.value).splitlines()[0] == str(theirs.value).splitlines()[0]


def test_cyclic_needs_momentum_and_chained_one_optimizer(torch):
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
        sched.CyclicLR(make_opt("Adagrad"), 0.01, 0.1)
    sched.CyclicLR(make_opt("Adagrad"), 0.01, 0.1, cycle_momentum=False)
    a, b = make_opt(), make_opt()
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        sched.ChainedScheduler([sched.ConstantLR(a), sched.ConstantLR(b)])


def test_new_schedulers_are_in_the_lr_scheduler_namespace():
    import trainkit.optim.lr_scheduler as ns

    for name in ["LambdaLR", "MultiplicativeLR", "ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts",
                 "CyclicLR", "ChainedScheduler"]:
        assert name in ns.__all__ and issubclass(getattr(ns, name), ns.LRScheduler)
