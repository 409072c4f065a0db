"""Optimizers (trainkit.optim) and gradient clipping (trainkit.nn.utils).

Each optimizer is checked against a float64 hand computation of its textbook
rule and, when torch is installed, against torch.optim with identical initial
parameters and gradients.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import trainkit.autograd.function  # noqa: F401  (engine import order)
from trainkit.autograd.tensor import Tensor
from trainkit.errors import CheckpointError
from trainkit.nn.utils import clip_grad_norm_, clip_grad_value_
from trainkit.optim import SGD, Adam, AdamW, Optimizer, RMSprop

SHAPES = [(3, 4), (5,)]


def make_problem(seed=0, steps=6, shapes=SHAPES):
    """Fixed initial parameters and a fixed gradient sequence (float32)."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    return init, grads


def params_from(init):
    return [Tensor(a.copy(), requires_grad=True) for a in init]


def set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())


def run(opt_cls, kwargs, init, grads):
    params = params_from(init)
    opt = opt_cls(params, **kwargs)
    history = []
    for gs in grads:
        set_grads(params, gs)
        opt.step()
        history.append([p._array.copy() for p in params])
    return params, opt, history


# ----------------------------------------------------------------- references
def ref_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    p = p.astype(np.float64)
    buf = None
    out = []
    for g in grads:
        g = g.astype(np.float64) * (-1 if maximize else 1)
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def ref_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - betas[0] ** t)
        v_hat = (vmax if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p = p.astype(np.float64)
    v = np.zeros_like(p)
    gavg = np.zeros_like(p)
    buf = np.zeros_like(p)
    out = []
    for g in grads:
        g = g.astype(np.float64) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            gavg = alpha * gavg + (1 - alpha) * g
            avg = np.sqrt(v - gavg * gavg) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


CASES = [
    (SGD, dict(lr=0.1), ref_sgd),
    (SGD, dict(lr=0.1, momentum=0.9), ref_sgd),
    (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, dampening=0.2), ref_sgd),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), ref_sgd),
    (SGD, dict(lr=0.1, momentum=0.5, maximize=True), ref_sgd),
    (Adam, dict(lr=0.01), ref_adam),
    (Adam, dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1), ref_adam),
    (Adam, dict(lr=0.01, amsgrad=True), ref_adam),
    (AdamW, dict(lr=0.01), lambda p, g, **k: ref_adam(p, g, decoupled=True, weight_decay=1e-2, **k)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True), lambda p, g, **k: ref_adam(p, g, decoupled=True, **k)),
    (RMSprop, dict(lr=0.01), ref_rmsprop),
    (RMSprop, dict(lr=0.01, momentum=0.9, weight_decay=0.1), ref_rmsprop),
    (RMSprop, dict(lr=0.01, centered=True), ref_rmsprop),
    (RMSprop, dict(lr=0.01, centered=True, momentum=0.5, alpha=0.9), ref_rmsprop),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw, _ in CASES]


@pytest.mark.parametrize("opt_cls,kwargs,ref", CASES, ids=IDS)
def test_matches_hand_computation(opt_cls, kwargs, ref):
    init, grads = make_problem()
    _, _, history = run(opt_cls, kwargs, init, grads)
    for i in range(len(init)):
        expected = ref(init[i], [g[i] for g in grads], **kwargs)
        for step, exp in enumerate(expected):
            got = history[step][i]
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, exp, rtol=2e-5, atol=2e-6, err_msg=f"step {step}")


@pytest.mark.parametrize("opt_cls,kwargs,ref", CASES, ids=IDS)
def test_matches_torch(opt_cls, kwargs, ref):
    torch = pytest.importorskip("torch")
    init, grads = make_problem(seed=1, steps=8)
    params, _, history = run(opt_cls, kwargs, init, grads)
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    topt = getattr(torch.optim, opt_cls.__name__)(tparams, **kwargs)
    for step, gs in enumerate(grads):
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g.copy())
        topt.step()
        for got, tp in zip(history[step], tparams):
            np.testing.assert_allclose(got, tp.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=f"step {step}")


def test_sgd_momentum_first_step_uses_gradient_as_buffer():
    p = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = Tensor(np.array([1.0, 1.0], np.float32))
        opt.step()
    # step 1: buf = g = 1 -> p = 0.9; step 2: buf = 0.9 + 1 = 1.9 -> p = 0.9 - 0.19
    np.testing.assert_allclose(p._array, [0.71, 1.71], rtol=1e-6)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.9, 1.9], rtol=1e-6)


def test_adam_first_step_moves_by_lr_times_sign():
    p = Tensor(np.array([1.0, 1.0, 1.0], np.float32), requires_grad=True)
    p.grad = Tensor(np.array([3.0, -0.5, 1e-3], np.float32))
    Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p._array, [0.9, 1.1, 0.9], rtol=1e-5)


def test_updates_are_in_place_float32_and_build_no_graph():
    init, grads = make_problem()
    params = params_from(init)
    arrays = [p._array for p in params]
    # A numpy float64 lr (e.g. computed by user code) must not upcast float32 parameters.
    opts = [SGD(params, lr=np.float64(0.1), momentum=0.9, weight_decay=np.float64(0.01))]
    for opt in opts + [Adam(params, lr=np.float64(0.01)), RMSprop(params), AdamW(params)]:
        set_grads(params, grads[0])
        opt.step()
    for p, a in zip(params, arrays):
        assert p._array is a and a.dtype == np.float32
        assert p.grad_fn is None and p.is_leaf
        assert p.grad._array.dtype == np.float32
    for opt in opts:
        for state in opt.state.values():
            assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


def test_gradient_is_not_modified_by_step():
    init, grads = make_problem()
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)),
                        (Adam, dict(weight_decay=0.1)), (RMSprop, dict(weight_decay=0.1, centered=True))]:
        params = params_from(init)
        opt = opt_cls(params, **kw)
        for _ in range(2):
            set_grads(params, grads[0])
            opt.step()
            for p, g in zip(params, grads[0]):
                np.testing.assert_array_equal(p.grad._array, g)


def test_params_without_grad_are_skipped():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float32), requires_grad=True)
    for opt in [SGD([a, b], lr=0.1, momentum=0.9), Adam([a, b]), RMSprop([a, b])]:
        a.grad = Tensor(np.ones(2, np.float32))
        b.grad = None
        opt.step()
        np.testing.assert_array_equal(b._array, [1.0, 1.0])
        assert b not in opt.state and a in opt.state


def test_zero_grad():
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = Tensor(np.ones(3, np.float32))
    g = p.grad._array
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad._array is g
    np.testing.assert_array_equal(g, 0)
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_have_their_own_options():
    a = Tensor(np.zeros(2, np.float32), requires_grad=True)
    b = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    a.grad = Tensor(np.ones(2, np.float32))
    b.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_allclose(a._array, [-0.1, -0.1], rtol=1e-6)
    np.testing.assert_allclose(b._array, [-1.0, -1.0], rtol=1e-6)
    c = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt.add_param_group({"params": c, "lr": 0.5})
    assert opt.param_groups[2]["params"] == [c] and opt.param_groups[2]["momentum"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda ps: SGD(ps, lr=-1), "Invalid learning rate: -1"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda ps: SGD(ps, lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda ps: SGD(ps, lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (lambda ps: Adam(ps, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda ps: Adam(ps, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda ps: AdamW(ps, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
        (lambda ps: RMSprop(ps, alpha=-0.1), "Invalid alpha value: -0.1"),
        (lambda ps: SGD([], lr=0.1), "empty parameter list"),
    ],
)
def test_invalid_arguments_raise_like_torch(make, message):
    params = [Tensor(np.zeros(2, np.float32), requires_grad=True)]
    with pytest.raises(ValueError, match=message):
        make(params)


def test_single_tensor_instead_of_iterable_is_a_type_error():
    with pytest.raises(TypeError, match="iterable of Tensors"):
        SGD(Tensor(np.zeros(2, np.float32), requires_grad=True), lr=0.1)


def test_closure_is_evaluated_and_its_loss_returned():
    p = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    opt = SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((p - 3.0) * (p - 3.0)).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    # gradient 2 * (p - 3) = [-4, -2]
    np.testing.assert_allclose(p._array, [1.4, 2.2], rtol=1e-6)


def test_training_loop_with_backward_converges():
    target = np.array([3.0, -1.0, 0.5], np.float32)
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1)), (RMSprop, dict(lr=0.05))]:
        p = Tensor(np.zeros(3, np.float32), requires_grad=True)
        opt = opt_cls([p], **kw)
        for _ in range(200):
            opt.zero_grad()
            diff = p - Tensor(target)
            (diff * diff).sum().backward()
            opt.step()
        np.testing.assert_allclose(p._array, target, atol=0.05, err_msg=opt_cls.__name__)


# ------------------------------------------------------------- serialisation
RESUME_CASES = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
]


@pytest.mark.parametrize("opt_cls,kwargs", RESUME_CASES, ids=[c.__name__ for c, _ in RESUME_CASES])
def test_state_dict_round_trip_resumes_identically(opt_cls, kwargs):
    init, grads = make_problem(steps=6)
    ref_params, _, _ = run(opt_cls, kwargs, init, grads)

    params, opt, _ = run(opt_cls, kwargs, init, grads[:3])
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][0]["lr"] == kwargs["lr"]
    # A fresh optimizer on copies of the mid-way parameters continues bit for bit.
    resumed = params_from([p._array for p in params])
    opt2 = opt_cls(resumed, lr=123.0)  # options come from the state dict
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for gs in grads[3:]:
        set_grads(resumed, gs)
        opt2.step()
    for a, b in zip(resumed, ref_params):
        np.testing.assert_array_equal(a._array, b._array)
    # Loading copies the buffers: stepping the original does not touch the copy's state.
    assert all(
        v is not sd["state"][0][k] for k, v in opt2.state[resumed[0]].items() if isinstance(v, np.ndarray)
    )


@pytest.mark.parametrize("opt_cls,kwargs", RESUME_CASES, ids=[c.__name__ for c, _ in RESUME_CASES])
def test_flat_state_through_safetensors_and_json(tmp_path, opt_cls, kwargs):
    from safetensors.numpy import load_file, save_file

    init, grads = make_problem(steps=6)
    ref_params, _, _ = run(opt_cls, kwargs, init, grads)
    params, opt, _ = run(opt_cls, kwargs, init, grads[:3])

    arrays = opt.state_arrays()
    assert all(k.startswith("state.") for k in arrays)
    save_file(arrays, str(tmp_path / "optim.safetensors"))
    (tmp_path / "optim.json").write_text(json.dumps(opt.state_json()))

    resumed = params_from([p._array for p in params])
    opt2 = opt_cls(resumed, lr=1.0)
    opt2.load_flat_state(load_file(str(tmp_path / "optim.safetensors")),
                         json.loads((tmp_path / "optim.json").read_text()))
    assert opt2.param_groups[0].get("betas", (0, 0)).__class__ is tuple
    for gs in grads[3:]:
        set_grads(resumed, gs)
        opt2.step()
    for a, b in zip(resumed, ref_params):
        np.testing.assert_array_equal(a._array, b._array)


def test_flat_state_mismatches_are_checkpoint_errors():
    init, grads = make_problem(steps=1)
    _, opt, _ = run(Adam, {}, init, grads)
    arrays, meta = opt.state_arrays(), opt.state_json()
    other = SGD(params_from(init), lr=0.1)
    with pytest.raises(CheckpointError, match="saved by Adam"):
        other.load_flat_state(arrays, meta)
    fewer = Adam(params_from(init[:1]))
    with pytest.raises(CheckpointError, match="does not match"):
        fewer.load_flat_state(arrays, meta)
    del arrays["state.1.exp_avg"]
    with pytest.raises(CheckpointError, match="state.1.exp_avg"):
        Adam(params_from(init)).load_flat_state(arrays, meta)


def test_load_state_dict_group_size_mismatch():
    init, grads = make_problem(steps=1)
    _, opt, _ = run(SGD, dict(lr=0.1, momentum=0.9), init, grads)
    with pytest.raises(ValueError, match="doesn't match the size"):
        SGD(params_from(init[:1]), lr=0.1).load_state_dict(opt.state_dict())


def test_optimizer_base_is_abstract_and_repr_lists_groups():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    with pytest.raises(NotImplementedError):
        Optimizer([p], {"lr": 0.1}).step()
    assert "lr: 0.1" in repr(SGD([p], lr=0.1))


# --------------------------------------------------------------- clipping
def _grad_params(arrays):
    ps = []
    for a in arrays:
        p = Tensor(np.zeros_like(a), requires_grad=True)
        p.grad = Tensor(a.copy())
        ps.append(p)
    return ps


def test_clip_grad_norm_scales_to_max_norm():
    ps = _grad_params([np.array([3.0, 0.0], np.float32), np.array([[4.0]], np.float32)])
    total = clip_grad_norm_(ps, max_norm=1.0)
    assert isinstance(total, Tensor) and total._array.dtype == np.float32
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(ps[0].grad._array, [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(ps[1].grad._array, [[0.8]], rtol=1e-5)
    # Under the limit: unchanged (up to the 1e-6 in the denominator).
    total = clip_grad_norm_(ps, max_norm=10.0)
    assert total.item() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(ps[0].grad._array, [0.6, 0.0], rtol=1e-5)


def test_clip_grad_norm_inf_norm_skips_none_and_errors_on_nonfinite():
    ps = _grad_params([np.array([-3.0, 1.0], np.float32), np.array([2.0], np.float32)])
    ps.append(Tensor(np.zeros(2, np.float32), requires_grad=True))  # no grad
    total = clip_grad_norm_(ps, max_norm=1.5, norm_type=math.inf)
    assert total.item() == pytest.approx(3.0)
    np.testing.assert_allclose(ps[0].grad._array, [-1.5, 0.5], rtol=1e-5)
    assert ps[2].grad is None
    assert clip_grad_norm_([ps[2]], 1.0).item() == 0.0
    bad = _grad_params([np.array([np.inf, 1.0], np.float32)])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(4, 5), (7,), (2, 3, 3)]]
    ps = _grad_params(arrays)
    tps = []
    for a in arrays:
        tp = torch.zeros(a.shape, requires_grad=True)
        tp.grad = torch.tensor(a.copy())
        tps.append(tp)
    total = clip_grad_norm_(ps, 0.7, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, 0.7, norm_type=norm_type)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-6)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad._array, tp.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_value_clamps_in_place():
    ps = _grad_params([np.array([-3.0, 0.2, 5.0], np.float32)])
    g = ps[0].grad._array
    assert clip_grad_value_(ps[0], 1.0) is None
    assert ps[0].grad._array is g
    np.testing.assert_array_equal(g, np.array([-1.0, 0.2, 1.0], np.float32))
