"""The :class:`Optimizer` base class: parameter groups, per-parameter state, serialisation.

Mirrors ``torch.optim.Optimizer``: parameters are organised in ``param_groups``
(each a dict holding ``"params"`` plus its own options such as ``lr``), and
``state`` maps each parameter to a dict of its buffers (momentum, moments, step
count). Optimizer state buffers are plain ndarrays of the parameter's dtype;
updates mutate ``p._array`` in place, so no autograd graph is ever built.

Two serialisations are offered:

* :meth:`Optimizer.state_dict` / :meth:`Optimizer.load_state_dict` in PyTorch's
  shape, ``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``;
* a flat, pickle-free pair for checkpoints: :meth:`Optimizer.state_arrays`
  (``{"state.3.exp_avg": ndarray}``, ready for safetensors) and
  :meth:`Optimizer.state_json` (everything else, JSON-able), loaded back with
  :meth:`Optimizer.load_flat_state`. A resumed optimizer continues bit for bit.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from typing import Any, Callable

import numpy as np

from trainkit.autograd.threads import elementwise as _par

__all__ = ["Optimizer", "required", "check_engine_flags", "grad_array", "l2_gradient"]


class _RequiredParameter:
    """Singleton marking an option that has no default and must be given (like torch's)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

# Format version of the flat (safetensors + JSON) serialisation.
_FLAT_FORMAT = 1


class _ParamState(MutableMapping):
    """Per-parameter state keyed by parameter identity.

    Tensors compare elementwise and may not be hashable, so keys are held by
    ``id``; a missing key yields a fresh empty dict, like torch's
    ``defaultdict(dict)``.
    """

    def __init__(self) -> None:
        self._data: dict[int, tuple[Any, dict]] = {}

    def __getitem__(self, param) -> dict:
        entry = self._data.get(id(param))
        if entry is None:
            entry = (param, {})
            self._data[id(param)] = entry
        return entry[1]

    def __setitem__(self, param, value: dict) -> None:
        self._data[id(param)] = (param, value)

    def __delitem__(self, param) -> None:
        del self._data[id(param)]

    def __contains__(self, param) -> bool:
        return id(param) in self._data

    def __iter__(self) -> Iterator:
        return (p for p, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"_ParamState({len(self)} parameters)"


def _is_tensor(obj) -> bool:
    # Duck-typed so this module does not depend on the engine's import order.
    return hasattr(obj, "_array") and hasattr(obj, "grad")


def grad_array(p) -> np.ndarray:
    """The ndarray behind ``p.grad`` (a Tensor by contract; an ndarray is tolerated)."""
    g = p.grad
    return g._array if hasattr(g, "_array") else np.asarray(g)


def l2_gradient(g: np.ndarray, param: np.ndarray, weight_decay: float) -> np.ndarray:
    """``g + weight_decay * param`` in a new array (PyTorch's ``grad.add(param, alpha=weight_decay)``).

    A new array because ``g`` may be the user's ``.grad``, which a step must leave untouched.
    """
    out = _par(np.multiply, param, weight_decay, out=np.empty_like(param))  # _par: large arrays on the pool
    return _par(np.add, g, out, out=out)


def check_engine_flags(differentiable: bool = False, **_accepted) -> None:
    """Validate the keywords PyTorch uses to pick an implementation (``foreach``, ``fused``,
    ``capturable``, ``differentiable``).

    trainkit has one implementation per optimizer: the per-parameter loop PyTorch itself
    runs on CPU. ``foreach``, ``fused`` and ``capturable`` (CUDA-graph capture) therefore
    change nothing and are accepted so that PyTorch programs run unchanged.
    ``differentiable=True`` asks for gradients *through* the update, which an optimizer
    that writes parameter arrays in place outside autograd cannot give: it is refused
    rather than silently ignored.
    """
    if differentiable:
        raise NotImplementedError(
            "differentiable=True is not supported: trainkit optimizers update the parameter arrays in place, "
            "outside autograd, so no gradient can flow through optimizer.step()"
        )


def _is_array_list(value) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(isinstance(v, np.ndarray) for v in value)


def _to_json(value):
    """Convert an option/state value to a JSON-able form (tuples become lists)."""
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Optimizer:
    """Base class of all optimizers (PyTorch's ``torch.optim.Optimizer``).

    Args:
        params: an iterable of Tensors, or of dicts each defining a parameter
            group (``{"params": [...], "lr": 0.1, ...}``); options missing from a
            group are filled from ``defaults``.
        defaults: the default value of every option of this optimizer.

    Subclasses implement :meth:`step`, typically as a loop over
    ``self.param_groups`` that skips parameters whose ``grad`` is None.
    """

    #: State entries held as 0-d arrays in their own dtype (not the parameter's), as PyTorch
    #: keeps NAdam's ``mu_product``: a resumed run must repeat their rounding exactly.
    _scalar_buffers: frozenset[str] = frozenset()

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: MutableMapping = _ParamState()
        self.param_groups: list[dict[str, Any]] = []

        if _is_tensor(params) or isinstance(params, np.ndarray):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got {type(params).__name__}"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group (a dict with ``"params"`` and optional options).

        Useful when fine-tuning: unfreeze layers and hand them to the optimizer
        with their own learning rate.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if _is_tensor(params):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        for p in params:
            if not _is_tensor(p):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
        group = dict(param_group)
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)

        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # -------------------------------------------------------------------- step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters.

        With ``set_to_none=True`` (the default, as in PyTorch) ``p.grad`` becomes
        None, which frees memory and lets :meth:`step` skip the parameter;
        otherwise the existing gradient arrays are zeroed in place.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    grad_array(p)[...] = 0

    def _gradients(self, group: dict):
        """``(p, p's array, gradient array)`` for each parameter of ``group`` that has a gradient.

        With ``maximize`` the gradient is negated into a new array (``.grad`` stays untouched).
        """
        maximize = bool(group.get("maximize", False))
        for p in group["params"]:
            if p.grad is None:
                continue
            g = grad_array(p)
            yield p, p._array, (np.negative(g) if maximize else g)

    def step(self, closure: Callable[[], Any] | None = None):
        """Perform one optimization step; ``closure`` re-evaluates the loss and returns it."""
        raise NotImplementedError

    def _eval_closure(self, closure):
        """Run ``closure`` with gradient recording on (it calls ``backward``)."""
        if closure is None:
            return None
        from trainkit.autograd.function import enable_grad

        with enable_grad():
            return closure()

    # -------------------------------------------------------------- state dict
    def _param_index(self) -> list:
        """All parameters in group order; a parameter's index is its position here."""
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout.

        ``{"state": {i: {...}}, "param_groups": [{..., "params": [i, ...]}]}``
        where ``i`` numbers parameters across groups in order. Arrays are
        references to the live buffers, as in PyTorch; copy them (or use
        :meth:`state_arrays`) before mutating.
        """
        params = self._param_index()
        index = {id(p): i for i, p in enumerate(params)}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state produced by :meth:`state_dict` (possibly of another instance).

        The number of groups and of parameters per group must match. Floating
        point buffers are copied and cast to their parameter's dtype; the
        ``step`` count is kept as a number.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group {i} that doesn't match "
                    f"the size of optimizer's group ({len(sg['params'])} vs {len(g['params'])} parameters)"
                )
        id_map = {}
        for g, sg in zip(self.param_groups, saved_groups):
            for saved_idx, p in zip(sg["params"], g["params"]):
                id_map[int(saved_idx)] = p

        new_state = _ParamState()
        for key, values in state_dict["state"].items():
            p = id_map.get(int(key))
            if p is None:
                continue
            new_state[p] = {name: self._cast_state(p, name, v) for name, v in values.items()}
        self.state = new_state

        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            group = {k: copy.deepcopy(v) for k, v in sg.items() if k != "params"}
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
            group["params"] = g["params"]
            new_groups.append(group)
        self.param_groups = new_groups

    def _cast_state(self, p, name: str, value):
        """Copy a saved state entry, casting float buffers to the parameter's dtype.

        ``step`` becomes a number; entries named in ``_scalar_buffers`` stay 0-d arrays
        of their saved dtype; lists are cast element by element.
        """
        if name == "step":
            return float(np.asarray(value))
        if isinstance(value, list):
            return [self._cast_state(p, name, v) for v in value]
        if isinstance(value, np.ndarray) or hasattr(value, "_array"):
            arr = value._array if hasattr(value, "_array") else value
            if name in self._scalar_buffers:
                if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.floating):
                    raise ValueError(f"buffer {name!r} must be a floating-point scalar, got shape "
                                     f"{tuple(arr.shape)} and dtype {arr.dtype}")
                return np.array(arr, copy=True)
            # Every buffer of these optimizers is shaped like its parameter; a mismatch (a damaged or
            # foreign checkpoint) would otherwise load silently and fail later inside step().
            if arr.shape != p._array.shape:
                raise ValueError(f"buffer {name!r} has shape {tuple(arr.shape)} but its parameter has "
                                 f"shape {tuple(p._array.shape)}")
            dtype = p._array.dtype if np.issubdtype(arr.dtype, np.floating) else arr.dtype
            return np.array(arr, dtype=dtype, copy=True)
        return copy.deepcopy(value)

    # ------------------------------------------------- flat (checkpoint) form
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every array buffer of the state as ``{"state.<index>.<name>": ndarray}``.

        A list of arrays (L-BFGS's history) gives ``state.<index>.<name>.<i>`` per item.
        The arrays are copies, contiguous, ready for ``safetensors.numpy.save``.
        Non-array entries (step counts, options) are in :meth:`state_json`.
        """
        out = {}
        for idx, entries in self.state_dict()["state"].items():
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    out[f"state.{idx}.{name}"] = np.array(value, order="C", copy=True)  # keeps 0-d arrays 0-d
                elif _is_array_list(value):
                    for i, item in enumerate(value):
                        out[f"state.{idx}.{name}.{i}"] = np.array(item, order="C", copy=True)
        return out

    def state_json(self) -> dict[str, Any]:
        """The non-array part of the state, JSON-able (pair with :meth:`state_arrays`)."""
        sd = self.state_dict()
        state = {}
        for idx, entries in sd["state"].items():
            scalars = {}
            arrays = []
            array_lists = {}
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    arrays.append(name)
                elif _is_array_list(value):
                    array_lists[name] = len(value)
                else:
                    scalars[name] = _to_json(value)
            state[str(idx)] = {"scalars": scalars, "arrays": arrays}
            if array_lists:
                state[str(idx)]["array_lists"] = array_lists
        groups = [{k: _to_json(v) for k, v in g.items()} for g in sd["param_groups"]]
        return {
            "format": _FLAT_FORMAT,
            "optimizer": type(self).__name__,
            "state": state,
            "param_groups": groups,
        }

    def load_flat_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state_arrays` + :meth:`state_json`.

        Raises :class:`trainkit.errors.CheckpointError` when the two parts do not
        fit together or belong to another optimizer type.
        """
        from trainkit.errors import CheckpointError

        if meta.get("format") != _FLAT_FORMAT:
            raise CheckpointError(f"optimizer state: unsupported format {meta.get('format')!r}")
        if meta.get("optimizer") != type(self).__name__:
            raise CheckpointError(
                f"optimizer state was saved by {meta.get('optimizer')}, cannot load it into {type(self).__name__}"
            )
        try:
            state = self._unflatten_state(arrays, meta["state"])
        except CheckpointError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A damaged or foreign state file: its shape, not this model, is wrong.
            raise CheckpointError(f"optimizer state is malformed: {type(exc).__name__}: {exc}") from None
        try:
            self.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        except ValueError as exc:
            raise CheckpointError(f"optimizer state does not match this model: {exc}") from None
        except (AttributeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"optimizer state is malformed: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _unflatten_state(arrays: dict[str, np.ndarray], meta_state: dict) -> dict[int, dict]:
        """PyTorch's ``state`` layout from the flat arrays and the JSON entries naming them."""
        from trainkit.errors import CheckpointError

        def array(key: str) -> np.ndarray:
            if key not in arrays:
                raise CheckpointError(f"optimizer state: array {key!r} is missing")
            return arrays[key]

        state = {}
        for idx, entry in meta_state.items():
            values = dict(entry["scalars"])
            for name in entry["arrays"]:
                values[name] = array(f"state.{idx}.{name}")
            for name, length in entry.get("array_lists", {}).items():
                values[name] = [array(f"state.{idx}.{name}.{i}") for i in range(int(length))]
            state[int(idx)] = values
        return state

    # ------------------------------------------------------------------ repr
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

