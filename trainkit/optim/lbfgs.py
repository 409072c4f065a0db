"""L-BFGS with an optional strong-Wolfe line search, as ``torch.optim.LBFGS``.

The algorithm is PyTorch's (itself a port of minFunc through Lua torch's
``optim``), step for step: the same two-loop recursion, the same initial step
length, the same bracketing and zoom phases with cubic interpolation, and the
same stopping tests, so that the iterates agree with PyTorch to float rounding.

Scalars that PyTorch holds as 0-d tensors (dot products, ``ro``, ``H_diag``,
the line search's directional derivatives) are numpy scalars of the
parameters' dtype here, so float32 problems round like PyTorch's too.
"""
from __future__ import annotations

import copy

import numpy as np

from .optimizer import Optimizer, grad_array

__all__ = ["LBFGS"]


def _rdiv(num: float, den):
    """``num / den`` as PyTorch computes a Python number over a 0-d tensor: ``den.reciprocal() * num``.

    Two roundings instead of one; the line search's steps are numpy scalars exactly where
    PyTorch's are tensors, so repeating this keeps the two searches on the same path.
    """
    if isinstance(den, np.generic):
        return np.reciprocal(den) * num
    return num / den


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through ``(x1, f1)``, ``(x2, f2)`` with slopes ``g1``, ``g2``, clamped to ``bounds``.

    Falls back to the middle of the bounds when the cubic has no real minimiser.
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - _rdiv(3 * (f1 - f2), x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Line search for a step ``t`` along ``d`` satisfying the strong Wolfe conditions.

    ``obj_func(x, t, d)`` returns the loss and flat gradient at ``x + t * d``.
    Returns ``(f_new, g_new, t, evaluations)``.
    """
    d_norm = np.abs(d).max()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # Bracket an interval containing a point satisfying the Wolfe criteria.
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # Extrapolate.
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    # PyTorch tests ``==``; ``>=`` also covers a budget that was spent before the search began.
    if ls_iter >= max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Zoom: shrink the bracket until a point satisfies the conditions.
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])

        # Too close to an end of the bracket (or outside it) twice in a row, or at an end:
        # move to 0.1 of the bracket's length away from the nearest end.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not met, or not below the lowest point: the new point is the high end.
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # The old high end becomes the new low end.
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """L-BFGS (limited-memory BFGS), PyTorch's algorithm.

    Each :meth:`step` runs up to ``max_iter`` quasi-Newton iterations and calls
    ``closure`` (which must zero the gradients, compute the loss, call
    ``backward`` and return the loss) as often as the iterations and the line
    search need.

    Args:
        params: iterable of parameters (a single group: L-BFGS has no
            per-parameter options).
        lr: learning rate, the step length tried first (default 1).
        max_iter: iterations per :meth:`step` (default 20).
        max_eval: closure evaluations per :meth:`step` (default
            ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is at most this
            (default 1e-7).
        tolerance_change: stop when the loss or the parameters change less
            than this (default 1e-9).
        history_size: number of curvature pairs kept (default 100).
        line_search_fn: None (fixed step ``lr``) or ``"strong_wolfe"``.

    The state (held, as in PyTorch, under the first parameter) has
    ``func_evals``, ``n_iter``, the direction ``d``, the step ``t``, the
    history ``old_dirs``/``old_stps``/``ro``, ``H_diag``, ``prev_flat_grad``,
    ``prev_loss`` and the work list ``al``. The flat vectors hold every
    parameter's entries in order; the memory needed is about
    ``(2 * history_size + 2)`` times the parameters'.
    """

    def __init__(
        self,
        params,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # ----------------------------------------------------------- flat vectors
    @property
    def _params(self) -> list:
        return self.param_groups[0]["params"]

    def _numel(self) -> int:
        return sum(p._array.size for p in self._params)

    def _gather_flat_grad(self) -> np.ndarray:
        """All gradients as one new vector (zeros for parameters without one)."""
        views = [
            np.zeros(p._array.size, dtype=p._array.dtype) if p.grad is None else grad_array(p).reshape(-1)
            for p in self._params
        ]
        return np.concatenate(views)

    def _add_grad(self, step_size, update: np.ndarray) -> None:
        """``p += step_size * update[p's slice]`` for every parameter, in place."""
        offset = 0
        for p in self._params:
            arr = p._array
            n = arr.size
            seg = update[offset:offset + n].reshape(arr.shape)
            np.add(arr, np.multiply(seg, step_size, out=np.empty_like(arr)), out=arr)
            offset += n

    def _clone_param(self) -> list[np.ndarray]:
        return [p._array.copy() for p in self._params]

    def _set_param(self, params_data: list[np.ndarray]) -> None:
        for p, data in zip(self._params, params_data, strict=True):
            np.copyto(p._array, data)

    def _directional_evaluate(self, closure, x, t, d):
        """Loss and flat gradient at ``x + t * d``; the parameters are put back to ``x``."""
        self._add_grad(t, d)
        loss = float(self._eval_closure(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # -------------------------------------------------------------------- step
    def step(self, closure):  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the loss of the first closure call."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step() needs a closure that clears the gradients, computes the loss, "
                            "calls backward() and returns the loss")
        if len(self.param_groups) != 1:
            raise AssertionError(f"Expected exactly one param_group, but got {len(self.param_groups)}")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        # L-BFGS's state is global; PyTorch files it under the first parameter.
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = self._eval_closure(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        if opt_cond:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # ------------------------------------------------ descent direction
            if state["n_iter"] == 1:
                d = np.negative(flat_grad)
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = np.subtract(flat_grad, prev_flat_grad)
                s = np.multiply(d, t)
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)

                # Two-loop recursion: d = -H g, with H the L-BFGS inverse-Hessian estimate.
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = np.negative(flat_grad)
                tmp = np.empty_like(q)
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    np.add(q, np.multiply(old_dirs[i], -al[i], out=tmp), out=q)
                d = r = np.multiply(q, H_diag, out=q)
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    np.add(r, np.multiply(old_stps[i], al[i] - be_i, out=tmp), out=r)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                np.copyto(prev_flat_grad, flat_grad)
            prev_loss = loss

            # ------------------------------------------------------ step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                )
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    # Not after the last iteration: in a stochastic setting that evaluation is wasted.
                    loss = float(self._eval_closure(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # ------------------------------------------------------ stop tests
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(np.multiply(d, t)).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    # ------------------------------------------------------------ state dict
    def _cast_state(self, p, name: str, value):
        """Check and copy a saved entry: flat vectors hold all parameters' entries, scalars stay scalars."""
        if isinstance(value, list):
            return [self._cast_state(p, name, v) for v in value]
        if isinstance(value, np.ndarray) or hasattr(value, "_array"):
            arr = value._array if hasattr(value, "_array") else value
            dtype = p._array.dtype
            if name in ("d", "prev_flat_grad", "old_dirs", "old_stps"):
                numel = self._numel()
                if arr.shape != (numel,):
                    raise ValueError(f"LBFGS state {name!r} has shape {tuple(arr.shape)}, expected ({numel},) "
                                     "(all parameters' entries)")
                return np.array(arr, dtype=dtype, copy=True)
            if arr.ndim != 0:
                raise ValueError(f"LBFGS state {name!r} must be a scalar, got shape {tuple(arr.shape)}")
            # PyTorch's 0-d tensors: a scalar of the parameters' dtype.
            return dtype.type(arr[()])
        return copy.deepcopy(value)
