"""PyTorch as an oracle: run one function in trainkit and in torch on the same arrays and compare.

``check_against_torch(ours, theirs, arrays)`` feeds float arrays (copies) to both
functions, compares every tensor output, then backpropagates the same random
cotangent through both and compares the gradient of every input that asked for
one. torch is imported on first use only: it is a test-time reference, never a
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
