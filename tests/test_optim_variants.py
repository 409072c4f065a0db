"""Adagrad, Adadelta, Adamax, NAdam and RAdam (trainkit.optim) against torch.optim.

Randomised (hypothesis) hyper-parameters within their valid ranges, parameter
shapes (0-d included) and parameter groups; 12 steps in float64 compared with
torch 2.13 after every step. Also: defaults, argument checks and state layout
equal torch's, float32 stays float32 in place, and a run resumed from either
serialisation continues bit for bit.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit.autograd.function  # noqa: F401  (engine import order)
from trainkit.autograd import dtypes
from trainkit.autograd.tensor import Tensor
from trainkit.optim import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop

NEW = {"Adagrad": Adagrad, "Adadelta": Adadelta, "Adamax": Adamax, "NAdam": NAdam, "RAdam": RAdam}
ORACLE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    # torch's optimizer scalars (NAdam's mu_product) follow its default dtype; ours follows trainkit's.
    assert torch.get_default_dtype() == torch.float32 and dtypes.get_default_dtype() == np.float32
    return torch


# ------------------------------------------------------------------ strategies
def _unit(lo=0.0, hi=1.0):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


_WD = st.one_of(st.just(0.0), _unit(0.0, 0.5))
_EPS = st.sampled_from([1e-10, 1e-8, 1e-6, 1e-3])
_BETAS = st.tuples(_unit(0.0, 0.99), _unit(0.0, 0.999))

HYPER = {
    "Adagrad": st.fixed_dictionaries({
        "lr": _unit(1e-3, 1.0), "lr_decay": st.one_of(st.just(0.0), _unit(0.0, 0.5)), "weight_decay": _WD,
        "initial_accumulator_value": st.one_of(st.just(0.0), _unit(0.0, 1.0)), "eps": _EPS,
        "maximize": st.booleans()}),
    "Adadelta": st.fixed_dictionaries({
        "lr": _unit(1e-2, 2.0), "rho": _unit(0.0, 1.0), "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
        "weight_decay": _WD, "maximize": st.booleans()}),
    "Adamax": st.fixed_dictionaries({
        "lr": _unit(1e-4, 0.1), "betas": _BETAS, "eps": _EPS, "weight_decay": _WD, "maximize": st.booleans()}),
    "NAdam": st.fixed_dictionaries({
        "lr": _unit(1e-4, 0.1), "betas": _BETAS, "eps": _EPS, "weight_decay": _WD,
        "momentum_decay": st.one_of(st.just(4e-3), _unit(0.0, 0.1)), "decoupled_weight_decay": st.booleans(),
        "maximize": st.booleans()}),
    "RAdam": st.fixed_dictionaries({
        "lr": _unit(1e-4, 0.1), "betas": _BETAS, "eps": _EPS, "weight_decay": _WD,
        "decoupled_weight_decay": st.booleans(), "maximize": st.booleans()}),
}

_SHAPES = st.lists(st.lists(st.integers(1, 4), max_size=3).map(tuple), min_size=1, max_size=4)


@st.composite
def problems(draw, name):
    """Optimizer name, constructor kwargs, parameter groups (shapes + overrides), data seed."""
    kwargs = draw(HYPER[name])
    shapes = draw(_SHAPES)
    n_groups = draw(st.integers(1, min(2, len(shapes))))
    groups = [{"shapes": shapes[i::n_groups]} for i in range(n_groups)]
    if n_groups == 2:
        groups[1]["lr"] = kwargs["lr"] * draw(_unit(0.1, 3.0))
        if draw(st.booleans()):
            groups[1]["weight_decay"] = draw(_unit(0.0, 0.3))
    return kwargs, groups, draw(st.integers(0, 2**32 - 1))


# -------------------------------------------------------------------- runners
def _data(groups, seed, steps, dtype):
    rng = np.random.default_rng(seed)
    shapes = [s for g in groups for s in g["shapes"]]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    # Each parameter misses its gradient at some steps: both libraries must skip it there.
    grads = [[None if rng.random() < 0.15 else rng.standard_normal(s).astype(dtype) for s in shapes]
             for _ in range(steps)]
    return init, grads


def _build(cls, make_param, init, groups, kwargs):
    params = [make_param(a) for a in init]
    it = iter(params)
    pgroups = []
    for g in groups:
        entry = {k: v for k, v in g.items() if k != "shapes"}
        entry["params"] = [next(it) for _ in g["shapes"]]
        pgroups.append(entry)
    return params, cls(pgroups, **kwargs)


def _run_ours(name, kwargs, groups, init, grads):
    params, opt = _build(NEW[name], lambda a: Tensor(a.copy(), requires_grad=True), init, groups, kwargs)
    history = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else Tensor(g.copy())
        opt.step()
        history.append([p._array.copy() for p in params])
    return params, opt, history


def _run_torch(torch, name, kwargs, groups, init, grads):
    params, opt = _build(getattr(torch.optim, name), lambda a: torch.tensor(a.copy(), requires_grad=True),
                         init, groups, kwargs)
    history = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else torch.tensor(g.copy())
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


def _compare_with_torch(torch, name, problem, steps=12):
    kwargs, groups, seed = problem
    init, grads = _data(groups, seed, steps, np.float64)
    _, _, ours = _run_ours(name, kwargs, groups, init, grads)
    theirs = _run_torch(torch, name, kwargs, groups, init, grads)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert x.dtype == np.float64 and x.shape == y.shape
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=f"{name} {kwargs} step {step} param {i}")


@ORACLE
@given(problems("Adagrad"))
def test_adagrad_matches_torch(torch, problem):
    _compare_with_torch(torch, "Adagrad", problem)


@ORACLE
@given(problems("Adadelta"))
def test_adadelta_matches_torch(torch, problem):
    _compare_with_torch(torch, "Adadelta", problem)


@ORACLE
@given(problems("Adamax"))
def test_adamax_matches_torch(torch, problem):
    _compare_with_torch(torch, "Adamax", problem)


@ORACLE
@given(problems("NAdam"))
def test_nadam_matches_torch(torch, problem):
    _compare_with_torch(torch, "NAdam", problem)


@ORACLE
@given(problems("RAdam"))
def test_radam_matches_torch(torch, problem):
    _compare_with_torch(torch, "RAdam", problem)


# Hand-picked corners the random search might take long to hit.
CORNERS = [
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.5, "lr_decay": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1}),
    ("Adadelta", {}),
    ("Adadelta", {"rho": 1.0, "weight_decay": 0.2}),
    ("Adadelta", {"rho": 0.0, "lr": 0.1}),
    ("Adamax", {}),
    ("Adamax", {"betas": (0.0, 0.0), "weight_decay": 0.1}),
    ("NAdam", {}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 0.0}),
    ("RAdam", {}),  # beta2 = 0.999: unrectified for the first 5 steps, rectified after
    ("RAdam", {"betas": (0.9, 0.5)}),  # rho_inf = 3: never rectified
    ("RAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
]


@pytest.mark.parametrize("name,kwargs", CORNERS, ids=[f"{n}-{k}" for n, k in CORNERS])
def test_corner_cases_match_torch_for_20_steps(torch, name, kwargs):
    groups = [{"shapes": [(3, 4), ()]}, {"shapes": [(5,)], "lr": 0.05}]
    _compare_with_torch(torch, name, (kwargs, groups, 7), steps=20)


def test_radam_switches_to_the_rectified_update_after_step_5():
    # With beta2 = 0.999, rho_t first exceeds 5 at step 6 (PyTorch's threshold): steps 1-5 are SGD with
    # momentum and bias correction (lr * m_hat = lr * g for a constant g), step 6 is normalised by sqrt(v_hat).
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = RAdam([p], lr=0.1)
    for step in range(1, 7):
        p.grad = Tensor(np.array([1e3]))
        before = p._array.copy()
        opt.step()
        moved = before - p._array
        if step <= 5:
            assert moved == pytest.approx([100.0], rel=1e-12)
        else:
            assert 0.0 < moved[0] < 0.1


def test_float64_default_dtype_keeps_nadam_mu_product_in_float64(torch):
    previous = dtypes.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    dtypes.set_default_dtype(np.float64)
    try:
        groups = [{"shapes": [(4,), (2, 2)]}]
        _compare_with_torch(torch, "NAdam", ({"lr": 0.01, "momentum_decay": 0.05}, groups, 3), steps=30)
        p = Tensor(np.zeros(2), requires_grad=True)
        opt = NAdam([p])
        p.grad = Tensor(np.ones(2))
        opt.step()
        assert opt.state[p]["mu_product"].dtype == np.float64
    finally:
        torch.set_default_dtype(torch.float32)
        dtypes.set_default_dtype(previous)


def test_nadam_mu_product_rounds_in_float32_like_torch(torch):
    p = Tensor(np.zeros(3), requires_grad=True)
    tp = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt, topt = NAdam([p], momentum_decay=0.0137, betas=(0.93, 0.999)), torch.optim.NAdam(
        [tp], momentum_decay=0.0137, betas=(0.93, 0.999))
    for _ in range(50):
        p.grad = Tensor(np.ones(3))
        tp.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
        topt.step()
    mu = opt.state[p]["mu_product"]
    assert mu.shape == () and mu.dtype == np.float32
    assert float(mu) == topt.state[tp]["mu_product"].item()


# ------------------------------------------------------------ torch's surface
EVERY = ["SGD", "Adam", "AdamW", "RMSprop", "LBFGS", *NEW]


@pytest.mark.parametrize("name", EVERY)
def test_defaults_and_their_order_equal_torch(torch, name):
    import trainkit.optim

    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    tp = torch.zeros(2, requires_grad=True)
    ours = getattr(trainkit.optim, name)([p]).defaults
    theirs = getattr(torch.optim, name)([tp]).defaults
    assert ours == theirs and list(ours) == list(theirs)


@pytest.mark.parametrize("name", list(NEW))
def test_state_dict_layout_equals_torch(torch, name):
    shapes = [(2, 3), (4,)]
    init, grads = _data([{"shapes": shapes}], 0, 3, np.float32)
    grads = [[g if g is not None else np.ones(s, np.float32) for g, s in zip(gs, shapes)] for gs in grads]
    _, opt, _ = _run_ours(name, {}, [{"shapes": shapes}], init, grads)
    tparams, topt = _build(getattr(torch.optim, name), lambda a: torch.tensor(a.copy(), requires_grad=True),
                           init, [{"shapes": shapes}], {})
    for gs in grads:
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g.copy())
        topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert list(sd["param_groups"][0]) == list(tsd["param_groups"][0])
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"] == [0, 1]
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for idx in sd["state"]:
        assert list(sd["state"][idx]) == list(tsd["state"][idx])
        assert sd["state"][idx]["step"] == tsd["state"][idx]["step"].item() == 3.0
        for key, value in tsd["state"][idx].items():
            if key != "step":
                np.testing.assert_allclose(sd["state"][idx][key], value.numpy(), rtol=1e-5, atol=1e-6)


def test_adagrad_state_exists_from_construction_like_torch():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = Adagrad([a], initial_accumulator_value=0.25)
    assert opt.state[a]["step"] == 0.0
    np.testing.assert_array_equal(opt.state[a]["sum"], [0.25, 0.25])
    # A parameter added later is initialised with the constructor's value (not the group's), as torch does.
    b = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 5.0})
    assert b not in opt.state
    b.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_allclose(opt.state[b]["sum"], [1.25, 1.25])


INVALID = [
    ("Adagrad", {"lr": -0.1}, "Invalid learning rate: -0.1"),
    ("Adagrad", {"lr_decay": -1.0}, "Invalid lr_decay value: -1.0"),
    ("Adagrad", {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    ("Adagrad", {"initial_accumulator_value": -1.0}, "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("Adadelta", {"lr": -1.0}, "Invalid learning rate: -1.0"),
    ("Adadelta", {"rho": 1.5}, "Invalid rho value: 1.5"),
    ("Adadelta", {"rho": -0.1}, "Invalid rho value: -0.1"),
    ("Adadelta", {"eps": -1e-6}, "Invalid epsilon value: -1e-06"),
    ("Adadelta", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("Adamax", {"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adamax", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("Adamax", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("NAdam", {"momentum_decay": -0.1}, "Invalid momentum_decay value: -0.1"),
    ("NAdam", {"betas": (-0.1, 0.9)}, "Invalid beta parameter at index 0: -0.1"),
    ("NAdam", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ("RAdam", {"lr": -0.01}, "Invalid learning rate: -0.01"),
    ("RAdam", {"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1: -0.5"),
]


@pytest.mark.parametrize("name,kwargs,message", INVALID, ids=[f"{n}-{k}" for n, k, _ in INVALID])
def test_invalid_arguments_raise_torchs_errors(torch, name, kwargs, message):
    with pytest.raises(ValueError) as ours:
        NEW[name]([Tensor(np.zeros(2, np.float32), requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    assert str(ours.value) == str(theirs.value) == message


@pytest.mark.parametrize("name", [n for n in EVERY if n != "LBFGS"])
def test_engine_keywords_are_accepted_and_differentiable_refused(name):
    import trainkit.optim

    cls = getattr(trainkit.optim, name)
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    extra = {"fused": False} if name in ("SGD", "Adagrad") else {"capturable": True}
    opt = cls([p], foreach=False, maximize=True, **extra)
    assert opt.param_groups[0]["foreach"] is False and opt.param_groups[0]["maximize"] is True
    p.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    assert (p._array > 0).all()  # maximize: moved up the gradient
    with pytest.raises(NotImplementedError, match="differentiable=True is not supported"):
        cls([p], differentiable=True)


def test_adagrad_fused_and_foreach_together_is_refused_like_torch():
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
        Adagrad([Tensor(np.zeros(2, np.float32), requires_grad=True)], fused=True, foreach=True)


# ------------------------------------------------------- dtype and in place
@pytest.mark.parametrize("name", list(NEW))
def test_float32_stays_float32_in_place_and_grads_untouched(name):
    shapes = [(3, 2), (4,), ()]
    init, grads = _data([{"shapes": shapes}], 1, 4, np.float32)
    grads = [[g if g is not None else np.ones(s, np.float32) for g, s in zip(gs, shapes)] for gs in grads]
    params = [Tensor(a.copy(), requires_grad=True) for a in init]
    arrays = [p._array for p in params]
    # numpy float64 hyper-parameters (computed by user code) must not upcast float32 parameters.
    opt = NEW[name](params, lr=np.float64(0.01), weight_decay=np.float64(0.1))
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = Tensor(g.copy())
        opt.step()
        for p, g in zip(params, gs):
            np.testing.assert_array_equal(p.grad._array, g)
    for p, a in zip(params, arrays):
        assert p._array is a and a.dtype == np.float32 and p.grad_fn is None
    for state in opt.state.values():
        for key, value in state.items():
            if isinstance(value, np.ndarray) and key != "mu_product":
                assert value.dtype == np.float32, key
    assert all(not np.array_equal(p._array, a) for p, a in zip(params, init))


ALL = {"SGD": (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True}),
       "Adam": (Adam, {"weight_decay": 0.1, "amsgrad": True}), "AdamW": (AdamW, {}),
       "RMSprop": (RMSprop, {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
       **{n: (c, {"weight_decay": 0.1}) for n, c in NEW.items()}}


@pytest.mark.parametrize("name", list(ALL))
def test_zero_dimensional_parameters_match_torch(torch, name):
    cls, kwargs = ALL[name]
    p = Tensor(np.array(0.5), requires_grad=True)
    tp = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    opt, topt = cls([p], **kwargs), getattr(torch.optim, name)([tp], **kwargs)
    for g in [0.3, -1.2, 2.0, 0.7]:
        p.grad = Tensor(np.array(g))
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        topt.step()
        assert p._array.shape == () and isinstance(p._array, np.ndarray)
        assert p._array.item() == pytest.approx(tp.item(), rel=1e-12, abs=1e-15)


def test_training_loop_converges_with_every_new_optimizer():
    target = np.array([3.0, -1.0, 0.5], np.float32)
    settings_ = {"Adagrad": {"lr": 0.5}, "Adadelta": {"lr": 10.0}, "Adamax": {"lr": 0.1},
                 "NAdam": {"lr": 0.1}, "RAdam": {"lr": 0.1}}
    for name, kw in settings_.items():
        p = Tensor(np.zeros(3, np.float32), requires_grad=True)
        opt = NEW[name]([p], **kw)
        for _ in range(300):
            opt.zero_grad()
            diff = p - Tensor(target)
            (diff * diff).sum().backward()
            opt.step()
        np.testing.assert_allclose(p._array, target, atol=0.05, err_msg=name)


# ---------------------------------------------------------------- resuming
RESUME = [("Adagrad", {"lr_decay": 0.05, "weight_decay": 0.1}), ("Adadelta", {"weight_decay": 0.1}),
          ("Adamax", {"weight_decay": 0.1}), ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
          ("NAdam", {"weight_decay": 0.1}), ("RAdam", {"decoupled_weight_decay": True, "weight_decay": 0.1})]
GROUPS = [{"shapes": [(3, 4), ()]}, {"shapes": [(5,)], "lr": 0.003}]


def _dense_problem(steps):
    init, grads = _data(GROUPS, 11, steps, np.float32)
    shapes = [s for g in GROUPS for s in g["shapes"]]
    return init, [[g if g is not None else np.ones(s, np.float32) for g, s in zip(gs, shapes)] for gs in grads]


@pytest.mark.parametrize("name,kwargs", RESUME, ids=[f"{n}-{k}" for n, k in RESUME])
def test_flat_checkpoint_resumes_bit_for_bit(tmp_path, name, kwargs):
    from safetensors.numpy import load_file, save_file

    init, grads = _dense_problem(12)
    full, _, _ = _run_ours(name, kwargs, GROUPS, init, grads)
    params, opt, _ = _run_ours(name, kwargs, GROUPS, init, grads[:5])

    save_file(opt.state_arrays(), str(tmp_path / "optim.safetensors"))
    (tmp_path / "optim.json").write_text(json.dumps(opt.state_json()))
    resumed, opt2 = _build(NEW[name], lambda a: Tensor(a.copy(), requires_grad=True),
                           [p._array for p in params], GROUPS, {"lr": 0.5})  # options come from the checkpoint
    opt2.load_flat_state(load_file(str(tmp_path / "optim.safetensors")),
                         json.loads((tmp_path / "optim.json").read_text()))
    assert opt2.param_groups[1]["lr"] == 0.003
    for gs in grads[5:]:
        for p, g in zip(resumed, gs):
            p.grad = Tensor(g.copy())
        opt2.step()
    for a, b in zip(resumed, full):
        np.testing.assert_array_equal(a._array, b._array)
    if name == "NAdam":
        mu = opt2.state[resumed[0]]["mu_product"]
        assert mu.shape == () and mu.dtype == np.float32


@pytest.mark.parametrize("name,kwargs", RESUME, ids=[f"{n}-{k}" for n, k in RESUME])
def test_state_dict_resumes_bit_for_bit_and_copies_buffers(name, kwargs):
    init, grads = _dense_problem(10)
    full, _, _ = _run_ours(name, kwargs, GROUPS, init, grads)
    params, opt, _ = _run_ours(name, kwargs, GROUPS, init, grads[:4])
    sd = opt.state_dict()
    resumed, opt2 = _build(NEW[name], lambda a: Tensor(a.copy(), requires_grad=True),
                           [p._array for p in params], GROUPS, {})
    opt2.load_state_dict(sd)
    for gs in grads[4:]:
        for p, g in zip(resumed, gs):
            p.grad = Tensor(g.copy())
        opt2.step()
    for a, b in zip(resumed, full):
        np.testing.assert_array_equal(a._array, b._array)
    # Loading copied the buffers: the source optimizer's state was not advanced by opt2's steps.
    assert sd["state"][0]["step"] == 4.0
    assert all(v is not sd["state"][0][k] for k, v in opt2.state[resumed[0]].items() if isinstance(v, np.ndarray))


def test_nadam_loads_a_scalar_buffer_only_as_a_float_scalar():
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = NAdam([p])
    p.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["mu_product"] = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="mu_product"):
        NAdam([Tensor(np.zeros(2, np.float32), requires_grad=True)]).load_state_dict(sd)


def test_closure_is_called_once_and_its_loss_returned():
    for cls in NEW.values():
        p = Tensor(np.array([1.0, -2.0], np.float32), requires_grad=True)
        opt = cls([p])
        seen = []

        def closure():
            opt.zero_grad()
            loss = (p * p).sum()
            loss.backward()
            seen.append(loss)
            return loss

        out = opt.step(closure)
        assert len(seen) == 1 and out is seen[0], cls.__name__
        # The step used the closure's gradient (2p): both entries moved towards 0.
        assert abs(p._array[0]) < 1.0 and abs(p._array[1]) < 2.0, cls.__name__


def test_nadam_resumes_bit_for_bit_through_the_trainers_checkpoint_files(tmp_path):
    from trainkit.train.checkpoint import load_checkpoint, save_checkpoint

    init, grads = _dense_problem(8)
    full, _, _ = _run_ours("NAdam", {}, GROUPS, init, grads)
    params, opt, _ = _run_ours("NAdam", {}, GROUPS, init, grads[:3])
    # As Trainer._checkpoint_payload / Trainer.restore store and read the optimizer.
    save_checkpoint(tmp_path / "last", {f"p{i}": p._array for i, p in enumerate(params)},
                    {f"optimizer.{k}": v for k, v in opt.state_arrays().items()}, {"optimizer": opt.state_json()})
    model, arrays, meta = load_checkpoint(tmp_path / "last")
    mu = arrays["optimizer.state.0.mu_product"]
    assert mu.shape == () and mu.dtype == np.float32
    resumed, opt2 = _build(NAdam, lambda a: Tensor(a.copy(), requires_grad=True),
                           [model[f"p{i}"] for i in range(len(params))], GROUPS, {})
    opt2.load_flat_state({k[len("optimizer."):]: v for k, v in arrays.items()}, meta["optimizer"])
    for gs in grads[3:]:
        for p, g in zip(resumed, gs):
            p.grad = Tensor(g.copy())
        opt2.step()
    for a, b in zip(resumed, full):
        np.testing.assert_array_equal(a._array, b._array)
