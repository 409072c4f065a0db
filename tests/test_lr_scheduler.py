"""Learning-rate schedulers (trainkit.optim.lr_scheduler).

Sequences are checked against hand/closed-form values and, when torch is
installed, against torch.optim.lr_scheduler over 30 steps with two parameter
groups; resumed schedulers must continue with identical lrs.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import trainkit.autograd.function  # noqa: F401  (engine import order)
from trainkit.autograd.tensor import Tensor
from trainkit.optim import SGD, Adam
from trainkit.optim import lr_scheduler as sched

STEPS = 30


def make_opt(kind="SGD", lib=None):
    """An optimizer with two groups (lr 0.1 and 0.05), from trainkit or from torch."""
    if lib is None:
        ps = [Tensor(np.zeros(2, np.float32), requires_grad=True) for _ in range(2)]
        cls = {"SGD": SGD, "Adam": Adam}[kind]
    else:
        ps = [lib.zeros(2, requires_grad=True) for _ in range(2)]
        cls = getattr(lib.optim, kind)
    kw = {"momentum": 0.9} if kind == "SGD" else {}
    return cls([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}], lr=0.1, **kw)


def lr_sequence(scheduler, opt, steps=STEPS):
    """lrs (and the momentum of group 0) before each of ``steps`` scheduler steps."""
    out = []
    for _ in range(steps):
        g = opt.param_groups[0]
        mom = g["betas"][0] if "betas" in g else g.get("momentum")
        out.append((list(scheduler.get_last_lr()), mom))
        opt.step()
        scheduler.step()
    return out


def build(name, opt, lib_sched):
    """Build scheduler ``name`` (SequentialLR built from LinearLR + CosineAnnealingLR)."""
    if name == "SequentialLR":
        warm = lib_sched.LinearLR(opt, start_factor=0.1, total_iters=5)
        cos = lib_sched.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4)
        return lib_sched.SequentialLR(opt, [warm, cos], milestones=[5])
    return getattr(lib_sched, name)(opt, **SCHEDULERS[name])


SCHEDULERS = {
    "StepLR": dict(step_size=7, gamma=0.5),
    "MultiStepLR": dict(milestones=[3, 10, 10, 20], gamma=0.3),
    "ExponentialLR": dict(gamma=0.9),
    "CosineAnnealingLR": dict(T_max=10, eta_min=1e-3),
    "LinearLR": dict(start_factor=0.1, total_iters=8),
    "OneCycleLR": dict(max_lr=1.0, total_steps=STEPS + 1),
    "OneCycleLR-3phase-linear": None,
    "SequentialLR": None,
}
SCHEDULERS["OneCycleLR-3phase-linear"] = dict(max_lr=[1.0, 0.5], total_steps=STEPS + 1, three_phase=True,
                                              anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)


def build_named(key, opt, lib_sched):
    if key == "OneCycleLR-3phase-linear":
        return lib_sched.OneCycleLR(opt, **SCHEDULERS[key])
    return build(key, opt, lib_sched)


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("key", list(SCHEDULERS))
def test_matches_torch(key, kind):
    torch = pytest.importorskip("torch")
    import warnings

    opt, topt = make_opt(kind), make_opt(kind, torch)
    ours = lr_sequence(build_named(key, opt, sched), opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = lr_sequence(build_named(key, topt, torch.optim.lr_scheduler), topt)
    for step, ((lrs, mom), (tlrs, tmom)) in enumerate(zip(ours, theirs)):
        assert lrs == pytest.approx(tlrs, rel=1e-13, abs=0), f"step {step}"
        assert mom == pytest.approx(tmom, rel=1e-13), f"momentum, step {step}"


def lrs_only(key, kind="SGD", steps=STEPS):
    opt = make_opt(kind)
    return [lrs for lrs, _ in lr_sequence(build_named(key, opt, sched), opt, steps)]


def test_step_multistep_exponential_hand_values():
    lrs = lrs_only("StepLR")
    assert [r[0] for r in lrs[:15]] == pytest.approx([0.1] * 7 + [0.05] * 7 + [0.025])
    assert lrs[14][1] == pytest.approx(0.0125)
    lrs = lrs_only("MultiStepLR")
    expected = [0.1 * 0.3 ** sum(m <= e for m in [3, 10, 10, 20]) for e in range(STEPS)]
    assert [r[0] for r in lrs] == pytest.approx(expected, rel=1e-12)
    lrs = lrs_only("ExponentialLR")
    assert [r[1] for r in lrs] == pytest.approx([0.05 * 0.9**e for e in range(STEPS)], rel=1e-12)


def test_cosine_and_linear_follow_closed_forms():
    lrs = lrs_only("CosineAnnealingLR")
    closed = [1e-3 + (0.1 - 1e-3) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(STEPS)]
    assert [r[0] for r in lrs] == pytest.approx(closed, rel=1e-9)
    assert lrs[10][0] == pytest.approx(1e-3) and lrs[20][0] == pytest.approx(0.1)
    lrs = lrs_only("LinearLR")
    closed = [0.05 * (0.1 + 0.9 * min(e, 8) / 8) for e in range(STEPS)]
    assert [r[1] for r in lrs] == pytest.approx(closed, rel=1e-12)


def test_one_cycle_endpoints_and_momentum():
    opt = make_opt("SGD")
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.25)
    assert s.get_last_lr()[0] == pytest.approx(1.0 / 25)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    seq = lr_sequence(s, opt, 100)
    peak = max(range(100), key=lambda i: seq[i][0][0])
    assert peak == 24 and seq[peak][0][0] == pytest.approx(1.0)
    assert seq[peak][1] == pytest.approx(0.85)
    assert seq[99][0][0] == pytest.approx(1.0 / 25 / 1e4)
    assert seq[99][1] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="Tried to step 101 times"):
        s.step()
    adam = make_opt("Adam")
    sched.OneCycleLR(adam, max_lr=0.01, total_steps=10)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)


def test_reduce_lr_on_plateau_hand_sequence():
    opt = make_opt()
    s = sched.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1, min_lr=[0.02, 0.0])
    metrics = [1.0, 0.9] + [0.95] * 11
    seen = []
    for m in metrics:
        s.step(m)
        seen.append(s.get_last_lr())
    # 3 bad epochs after the best (0.9) -> halve at index 4; one cooldown epoch
    # (index 5) does not count, 3 more bad ones -> halve at index 8, and again
    # at index 12, where group 0 stops at its min_lr 0.02.
    assert seen[3] == [0.1, 0.05] and seen[4] == [0.05, 0.025]
    assert seen[7] == [0.05, 0.025] and seen[8] == [0.025, 0.0125]
    assert seen[11] == seen[8] and seen[12] == [0.02, 0.00625]
    mx = sched.ReduceLROnPlateau(make_opt(), mode="max", patience=0, threshold=0.1, threshold_mode="abs")
    mx.step(1.0)
    mx.step(1.05)  # not better by more than 0.1 -> reduce (patience 0)
    assert mx.get_last_lr() == pytest.approx([0.01, 0.005])


@pytest.mark.parametrize("key", [k for k in SCHEDULERS])
def test_resumed_mid_way_gives_identical_lrs(key):
    kind = "Adam" if key.startswith("OneCycle") else "SGD"
    opt = make_opt(kind)
    full = lr_sequence(build_named(key, opt, sched), opt)

    opt1 = make_opt(kind)
    s1 = build_named(key, opt1, sched)
    first = lr_sequence(s1, opt1, 12)
    # Through JSON, as the trainer stores it.
    sched_state = json.loads(json.dumps(s1.state_dict()))
    opt_state = json.loads(json.dumps(opt1.state_json()))

    opt2 = make_opt(kind)
    s2 = build_named(key, opt2, sched)
    opt2.load_flat_state({}, opt_state)
    s2.load_state_dict(sched_state)
    rest = lr_sequence(s2, opt2, STEPS - 12)
    assert first + rest == full


def test_reduce_lr_on_plateau_state_round_trip():
    opt = make_opt()
    s = sched.ReduceLROnPlateau(opt, patience=1)
    for m in [1.0, 2.0]:
        s.step(m)
    state = json.loads(json.dumps(s.state_dict()))
    opt2 = make_opt()
    s2 = sched.ReduceLROnPlateau(opt2, patience=1)
    s2.load_state_dict(state)
    for target in (s, s2):
        target.step(3.0)
    assert s.get_last_lr() == s2.get_last_lr() == pytest.approx([0.01, 0.005])
    assert s2.best == 1.0 and s2.num_bad_epochs == 0


def test_multistep_state_accepts_torch_counter_layout():
    s = sched.MultiStepLR(make_opt(), milestones=[2, 2, 5])
    assert s.state_dict()["milestones"] == [2, 2, 5]
    s.load_state_dict({"milestones": {"3": 1, "7": 2}})
    assert sorted(s.milestones.elements()) == [3, 7, 7]


def test_invalid_arguments():
    opt = make_opt()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sched.StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        sched.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        sched.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="total_steps OR"):
        sched.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        sched.OneCycleLR(opt, max_lr=0.1, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="number of milestones"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 2), sched.StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        sched.SequentialLR(opt, [sched.ReduceLROnPlateau(opt)], milestones=[])
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(make_opt(), step_size=2, last_epoch=3)
    with pytest.raises(ValueError, match="same length"):
        sched.OneCycleLR(opt, max_lr=[0.1], total_steps=5)
