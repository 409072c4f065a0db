"""PyTorch as an oracle: run one function in trainkit and in torch on the same arrays and compare.

``check_against_torch(ours, theirs, arrays)`` feeds float arrays (copies) to both
functions, compares every tensor output, then backpropagates the same random
cotangent through both and compares the gradient of every input that asked for
one. ``check_module_against_torch(ours, theirs, args)`` does the same for a layer and
its PyTorch twin (state dict keys and shapes, nested outputs, input and parameter
gradients). torch is imported on first use only: it is a test-time reference, never a
dependency of trainkit.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from trainkit.autograd.tensor import Tensor


def _flat(out) -> list:
    """The tensor outputs of a result (a tensor, or a tuple/list of them and other values)."""
    if isinstance(out, (tuple, list)):
        return [o for o in out if _is_tensor(o)]
    return [out]


def _is_tensor(o) -> bool:
    return isinstance(o, Tensor) or type(o).__name__ == "Tensor"


def _np(t) -> np.ndarray:
    if isinstance(t, Tensor):
        return t._array
    return t.detach().numpy()


def check_against_torch(ours: Callable, theirs: Callable, arrays: Sequence, grad: Sequence[bool] | None = None,
                        rtol: float = 1e-7, atol: float = 1e-10, seed: int = 0, check_dtype: bool = True) -> None:
    """Assert that ``ours(*tensors)`` and ``theirs(*torch_tensors)`` agree in values, dtypes and gradients.

    ``arrays`` are numpy arrays (or non-array arguments passed as they are);
    ``grad[i]`` says whether input i requires grad (default: every float array).
    Raises AssertionError naming the output or input that differs.
    """
    import torch

    arrays = [np.asarray(a) if isinstance(a, np.generic) else a for a in arrays]
    if grad is None:
        grad = [isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays]
    ours_in, theirs_in = [], []
    for a, g in zip(arrays, grad):
        if isinstance(a, np.ndarray):
            ours_in.append(Tensor(a.copy(), requires_grad=bool(g)))
            theirs_in.append(torch.tensor(a.copy(), requires_grad=bool(g)))
        else:
            ours_in.append(a)
            theirs_in.append(a)
    out_ours, out_theirs = _flat(ours(*ours_in)), _flat(theirs(*theirs_in))
    assert len(out_ours) == len(out_theirs), f"{len(out_ours)} outputs, torch gives {len(out_theirs)}"
    for k, (o, t) in enumerate(zip(out_ours, out_theirs)):
        a, b = _np(o), _np(t)
        assert a.shape == b.shape, f"output {k}: shape {a.shape}, torch {b.shape}"
        if check_dtype:
            assert a.dtype == b.dtype, f"output {k}: dtype {a.dtype}, torch {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {k}")
    if not any(grad):
        return
    rng = np.random.default_rng(seed)
    loss_ours, loss_theirs = None, None
    for o, t in zip(out_ours, out_theirs):
        if getattr(t, "requires_grad", False) and t.dtype.is_floating_point:
            cot = rng.standard_normal(tuple(t.shape))
            lo = (o * Tensor(cot.astype(_np(o).dtype))).sum()
            lt = (t * torch.from_numpy(cot).to(t.dtype)).sum()
            loss_ours = lo if loss_ours is None else loss_ours + lo
            loss_theirs = lt if loss_theirs is None else loss_theirs + lt
    if loss_theirs is None:
        return
    loss_theirs.backward()
    if loss_ours.requires_grad:
        loss_ours.backward()
    for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
        if not grad[i]:
            continue
        gb = None if b.grad is None else b.grad.numpy()
        ga = None if a.grad is None else a.grad._array
        if gb is None:
            assert ga is None or not ga.any(), f"input {i}: gradient where torch has none"
            continue
        assert ga is not None, f"input {i}: no gradient, torch has one"
        if check_dtype:
            assert ga.dtype == gb.dtype, f"input {i}: gradient dtype {ga.dtype}, torch {gb.dtype}"
        np.testing.assert_allclose(ga, gb, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def _leaves(value) -> list:
    """The tensors of a nested result ``(output, (h_n, c_n))``, depth first, skipping None and non-tensors."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value] if _is_tensor(value) else []


def _convert(value, make, grad: bool, made: list):
    """``value`` with every ndarray turned into a tensor by ``make``; float ones (grad) are recorded in ``made``."""
    if isinstance(value, (tuple, list)):
        return type(value)(_convert(v, make, grad, made) for v in value)
    if isinstance(value, dict):
        return {k: _convert(v, make, grad, made) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        needs = grad and value.dtype.kind == "f"
        t = make(value.copy(), needs)
        if needs:
            made.append(t)
        return t
    return value


def check_module_against_torch(ours, theirs, args: Sequence = (), kwargs: dict | None = None, *,
                               rtol: float = 1e-6, atol: float = 1e-8, seed: int = 0, grad: bool = True) -> None:
    """Assert that a trainkit module and its PyTorch twin agree: state dict, outputs and every gradient.

    ``ours``' state dict must have the keys (in order) and shapes of ``theirs``' and is
    loaded into it; then both run on the same ``args``/``kwargs`` (numpy arrays,
    possibly nested in tuples such as an LSTM's ``(h_0, c_0)``; float arrays require
    grad when ``grad``), every tensor of the (nested) results is compared, a shared
    random cotangent is backpropagated, and the gradients of every float input and
    every parameter are compared. Run both modules in the mode you want (eval, or
    dropout 0) before calling.
    """
    import torch

    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd), f"state dict keys {list(ours_sd)}, torch {list(theirs_sd)}"
    for k in ours_sd:
        assert tuple(ours_sd[k].shape) == tuple(theirs_sd[k].shape), \
            f"{k}: shape {tuple(ours_sd[k].shape)}, torch {tuple(theirs_sd[k].shape)}"
    theirs.load_state_dict({k: torch.from_numpy(np.array(_np(v), copy=True)) for k, v in ours_sd.items()})
    kwargs = kwargs or {}
    ours_in: list = []
    theirs_in: list = []
    ours_args = _convert(list(args), lambda a, g: Tensor(a, requires_grad=g), grad, ours_in)
    ours_kw = _convert(kwargs, lambda a, g: Tensor(a, requires_grad=g), grad, ours_in)
    theirs_args = _convert(list(args), lambda a, g: torch.tensor(a, requires_grad=g), grad, theirs_in)
    theirs_kw = _convert(kwargs, lambda a, g: torch.tensor(a, requires_grad=g), grad, theirs_in)
    out_ours, out_theirs = _leaves(ours(*ours_args, **ours_kw)), _leaves(theirs(*theirs_args, **theirs_kw))
    assert len(out_ours) == len(out_theirs), f"{len(out_ours)} outputs, torch gives {len(out_theirs)}"
    for k, (o, t) in enumerate(zip(out_ours, out_theirs)):
        a, b = _np(o), _np(t)
        assert a.shape == b.shape, f"output {k}: shape {a.shape}, torch {b.shape}"
        assert a.dtype == b.dtype, f"output {k}: dtype {a.dtype}, torch {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {k}")
    rng = np.random.default_rng(seed)
    loss_ours = loss_theirs = None
    for o, t in zip(out_ours, out_theirs):
        if t.requires_grad and t.dtype.is_floating_point:
            cot = rng.standard_normal(tuple(t.shape))
            lo = (o * Tensor(cot.astype(_np(o).dtype))).sum()
            lt = (t * torch.from_numpy(cot).to(t.dtype)).sum()
            loss_ours = lo if loss_ours is None else loss_ours + lo
            loss_theirs = lt if loss_theirs is None else loss_theirs + lt
    if loss_theirs is None:
        return
    loss_theirs.backward()
    if loss_ours.requires_grad:
        loss_ours.backward()
    pairs = [(f"input {i}", a, b) for i, (a, b) in enumerate(zip(ours_in, theirs_in))]
    params = dict(ours.named_parameters())
    pairs += [(name, params[name], p) for name, p in theirs.named_parameters()]
    for what, a, b in pairs:
        gb = None if b.grad is None else b.grad.numpy()
        ga = None if a.grad is None else a.grad._array
        if gb is None:
            assert ga is None or not ga.any(), f"{what}: gradient where torch has none"
            continue
        assert ga is not None, f"{what}: no gradient, torch has one"
        np.testing.assert_allclose(ga, gb, rtol=rtol, atol=atol, err_msg=f"gradient of {what}")
