"""Module hooks (forward pre/post, full backward pre/post, global variants) against PyTorch 2.x.

One model is written once against PyTorch's API and built from either library's ``nn``: residual
blocks (both operand orders), a layer called twice (fan-out of a module), a module with a tensor that
needs no grad and a Python number among its inputs, and a module returning a tuple whose second
output may go unused. Every module logs every hook call; the oracle compares the sequence of calls,
the None entries and shapes of their arguments and the gradient values, also when a hook replaces a
gradient.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit as tk
import trainkit.nn as tnn
from trainkit.nn.module import register_module_forward_hook, register_module_forward_pre_hook

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch oracle not installed")
W = 5


def build(nn, depth: int, shortcut_first: bool, use_second: bool):
    """The test model from library ``nn`` (trainkit.nn or torch.nn)."""

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(W, W), nn.Tanh(), nn.Linear(W, W))
            self.act = nn.Tanh()

        def forward(self, x):
            return self.act(x + self.f(x)) if shortcut_first else self.act(self.f(x) + x)

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(W, W)

        def forward(self, x, scale, offset):
            return self.lin(x) * scale + offset

    class Split(nn.Module):
        def forward(self, x):
            return x.tanh(), x.sigmoid()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(4, W)
            self.blocks = nn.Sequential(*[Residual() for _ in range(depth)])
            self.shared = nn.Linear(W, W)
            self.two = TwoInputs()
            self.split = Split()
            self.head = nn.Linear(W, 3)

        def forward(self, x, scale):
            h = self.blocks(self.inp(x))
            h = self.shared(self.shared(h).tanh())
            a, b = self.split(self.two(h, scale, 0.5))
            return self.head(a + b if use_second else a)

    return Net()


def _pair(depth, shortcut_first, use_second):
    ours = build(tnn, depth, shortcut_first, use_second).double()
    theirs = build(torch.nn, depth, shortcut_first, use_second).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def _desc(values):
    """Arguments of a hook as comparable data: None, a shape, or a Python value."""
    out = []
    for v in values if isinstance(values, tuple) else (values,):
        if v is None:
            out.append(None)
        elif hasattr(v, "shape") and hasattr(v, "detach"):
            out.append(("tensor", tuple(v.shape)))
        else:
            out.append(v)
    return tuple(out)


def _arrays(values):
    return [None if v is None else v.detach().numpy().copy() for v in values]


def _instrument(model, log, modify=None):
    """A hook of each kind on every module; ``modify=(name, kind)`` makes one hook scale its gradients."""
    handles = []
    for name, m in model.named_modules():
        def fpre(mod, args, name=name):
            log.append(("forward_pre", name, _desc(args), None))

        def fwd(mod, args, out, name=name):
            log.append(("forward", name, _desc(out), None))

        def bpre(mod, grad_output, name=name):
            log.append(("backward_pre", name, _desc(grad_output), _arrays(grad_output)))
            if modify == (name, "backward_pre"):
                return tuple(None if g is None else g * 0.5 for g in grad_output)
            return None

        def bwd(mod, grad_input, grad_output, name=name):
            log.append(("backward", name, (_desc(grad_input), _desc(grad_output)),
                        _arrays(grad_input) + _arrays(grad_output)))
            if modify == (name, "backward"):
                return tuple(None if g is None else g * 3.0 for g in grad_input)
            return None

        handles += [m.register_forward_pre_hook(fpre), m.register_forward_hook(fwd),
                    m.register_full_backward_pre_hook(bpre), m.register_full_backward_hook(bwd)]
    return handles


def _step(ns, model, x, x_requires_grad, scale, log, modify):
    _instrument(model, log, modify)
    xt = ns.tensor(x, requires_grad=x_requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both libraries warn when no input of a module requires grad
        out = model(xt, ns.tensor(scale))
        (out * out).sum().backward()
    grads = {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
    return grads, (None if xt.grad is None else xt.grad.detach().numpy().copy())


MODULE_NAMES = ["", "inp", "blocks", "blocks.0", "blocks.0.f", "blocks.0.f.0", "blocks.0.act", "shared", "two",
                "two.lin", "split", "head"]


@needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(1, 2), shortcut_first=st.booleans(), use_second=st.booleans(),
       x_requires_grad=st.booleans(),
       modify=st.one_of(st.none(), st.tuples(st.sampled_from(MODULE_NAMES), st.sampled_from(["backward", "backward_pre"]))),
       seed=st.integers(0, 100))
def test_module_hooks_fire_in_torch_order_with_torch_arguments(depth, shortcut_first, use_second, x_requires_grad,
                                                             modify, seed):
    ours, theirs = _pair(depth, shortcut_first, use_second)
    rng = np.random.default_rng(seed)
    x, scale = rng.standard_normal((2, 4)), rng.uniform(0.5, 1.5, (2, W))
    log_ours, log_theirs = [], []
    grads_ours, xg_ours = _step(tk, ours, x, x_requires_grad, scale, log_ours, modify)
    grads_theirs, xg_theirs = _step(torch, theirs, x, x_requires_grad, scale, log_theirs, modify)
    assert [e[:3] for e in log_ours] == [e[:3] for e in log_theirs]
    for a, b in zip(log_ours, log_theirs):
        for u, v in zip(a[3] or [], b[3] or []):
            assert (u is None) == (v is None), a[:2]
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12, err_msg=str(a[:2]))
    for n in grads_theirs:
        np.testing.assert_allclose(grads_ours[n], grads_theirs[n], rtol=1e-9, atol=1e-12, err_msg=n)
    assert (xg_ours is None) == (xg_theirs is None)
    if xg_ours is not None:
        np.testing.assert_allclose(xg_ours, xg_theirs, rtol=1e-9, atol=1e-12)


def _forward_semantics(nn, ns):
    """Forward hooks changing inputs and outputs, kwargs, prepend, always_call: the log and the result."""
    log = []

    class Affine(nn.Module):
        def forward(self, x, *, shift=0.0):
            if shift == "boom":
                raise ValueError("boom")
            return x * 2 + shift

    m = Affine()
    h_pre = m.register_forward_pre_hook(lambda mod, args: (log.append("pre"), (args[0] + 1,))[1])
    m.register_forward_pre_hook(lambda mod, args, kwargs: (log.append(("pre_kw", dict(kwargs))),
                                                           (args, {"shift": kwargs.get("shift", 0.0) + 10}))[1],
                                with_kwargs=True)
    m.register_forward_pre_hook(lambda mod, args: log.append("pre_first"), prepend=True)
    m.register_forward_hook(lambda mod, args, out: (log.append("fwd"), out * 10)[1])
    m.register_forward_hook(lambda mod, args, kwargs, out: log.append(("fwd_kw", dict(kwargs))), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, out: log.append(("always", out)), always_call=True)
    x = ns.tensor([1.0, 2.0])
    first = m(x, shift=1.0).tolist()
    h_pre.remove()
    second = m(x).tolist()
    with pytest.raises(ValueError, match="boom"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"shift": "boom"}), with_kwargs=True)
            m(x)
    return log, first, second


def test_forward_hooks_change_inputs_and_outputs():
    log, first, second = _forward_semantics(tnn, tk)
    # ((x + 1) * 2 + (1 + 10)) * 10, then without the +1 pre-hook: (x * 2 + 10) * 10
    assert first == [150.0, 170.0] and second == [120.0, 140.0]
    assert log[:5] == ["pre_first", "pre", ("pre_kw", {"shift": 1.0}), "fwd", ("fwd_kw", {"shift": 11.0})]
    assert log[-1] == ("always", None)  # called with output None when forward raised


@needs_torch
def test_forward_hook_semantics_match_torch():
    ours = _forward_semantics(tnn, tk)
    theirs = _forward_semantics(torch.nn, torch)
    norm = [e if not (isinstance(e, tuple) and hasattr(e[1], "tolist")) else (e[0], e[1].tolist()) for e in ours[0]]
    norm_t = [e if not (isinstance(e, tuple) and hasattr(e[1], "tolist")) else (e[0], e[1].tolist())
              for e in theirs[0]]
    assert norm == norm_t and ours[1:] == theirs[1:]


def test_global_hooks_run_before_module_hooks_and_are_removable():
    log = []
    lin = tnn.Linear(2, 2)
    lin.register_forward_hook(lambda m, a, o: log.append("own"))
    g1 = register_module_forward_hook(lambda m, a, o: log.append(("global", type(m).__name__)))
    g2 = register_module_forward_pre_hook(lambda m, a: log.append("global_pre"))
    try:
        lin(tk.ones(1, 2))
    finally:
        g1.remove()
        g2.remove()
    lin(tk.ones(1, 2))
    assert log == ["global_pre", ("global", "Linear"), "own", "own"]


def test_backward_hook_handles_remove_and_context_manager():
    lin = tnn.Linear(3, 1)
    calls = []
    with lin.register_full_backward_hook(lambda m, gi, go: calls.append("bwd")):
        lin(tk.ones(2, 3, requires_grad=True)).sum().backward()
    lin(tk.ones(2, 3, requires_grad=True)).sum().backward()
    assert calls == ["bwd"]


def test_backward_hook_wrong_length_is_an_error():
    lin = tnn.Linear(3, 1)
    lin.register_full_backward_hook(lambda m, gi, go: (None, None))
    with pytest.raises(RuntimeError, match="invalid number of grad_input, got 2, but expected 1"):
        lin(tk.ones(2, 3, requires_grad=True)).sum().backward()


def test_modules_without_hooks_record_no_extra_nodes():
    lin = tnn.Linear(3, 1)
    assert lin(tk.ones(2, 3, requires_grad=True)).grad_fn.name() == "LinearBackward0"
    h = lin.register_full_backward_hook(lambda m, gi, go: None)
    assert lin(tk.ones(2, 3, requires_grad=True)).grad_fn.name() == "BackwardHookFunctionBackward"
    h.remove()
    assert lin(tk.ones(2, 3, requires_grad=True)).grad_fn.name() == "LinearBackward0"
