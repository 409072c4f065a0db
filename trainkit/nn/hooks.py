"""Module hooks with PyTorch 2.x's semantics: forward pre-hooks, forward hooks, full backward (pre-)hooks.

:class:`ModuleHooks` gives :class:`~trainkit.nn.Module` its ``register_*``
methods; ``Module.__call__`` goes through :func:`call_with_hooks` only when
some hook (the module's own or a global one) is registered, so a model
without hooks pays a few dict truth tests per call.

Backward hooks follow torch's ``BackwardHook``: the module's tensor inputs
and outputs pass through identity graph nodes
(:func:`trainkit.autograd.hooks.hook_identity`); the output node captures
``grad_output`` (and runs the backward pre-hooks, which may replace it), the
input node calls the full backward hooks with ``(module, grad_input,
grad_output)`` once the gradients of all inputs are known.

The global variants (``register_module_forward_hook`` ...) apply to every
module and run before the module's own hooks, as in ``torch.nn.modules.module``.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

from trainkit.autograd.function import is_grad_enabled
from trainkit.autograd.hooks import RemovableHandle, hook_identity
from trainkit.autograd.tensor import Tensor

__all__ = [
    "ModuleHooks", "BackwardHook", "call_with_hooks", "register_module_forward_pre_hook",
    "register_module_forward_hook", "register_module_full_backward_pre_hook", "register_module_full_backward_hook",
]

# Global hooks (torch.nn.modules.module's): mutated in place, never rebound, so importers may hold them.
_global_forward_pre_hooks: OrderedDict = OrderedDict()
_global_forward_hooks: OrderedDict = OrderedDict()
_global_forward_hooks_with_kwargs: OrderedDict = OrderedDict()
_global_forward_hooks_always_called: OrderedDict = OrderedDict()
_global_backward_pre_hooks: OrderedDict = OrderedDict()
_global_backward_hooks: OrderedDict = OrderedDict()
# True once any module hook (a module's own or a global one) has been registered in this process:
# until then Module.__call__ tests only this flag (the hook dicts once it is set)
hooks_used = [False]


def register_module_forward_pre_hook(hook) -> RemovableHandle:
    """Register ``hook(module, args) -> None | new args`` before every module's forward (debugging, profiling)."""
    hooks_used[0] = True
    handle = RemovableHandle(_global_forward_pre_hooks)
    _global_forward_pre_hooks[handle.id] = hook
    return handle


def register_module_forward_hook(hook, *, with_kwargs: bool = False, always_call: bool = False) -> RemovableHandle:
    """Register ``hook(module, args, output) -> None | new output`` after every module's forward.

    Args:
        with_kwargs: call ``hook(module, args, kwargs, output)`` instead.
        always_call: also call it when forward raised (with ``output=None``).
    """
    hooks_used[0] = True
    handle = RemovableHandle(_global_forward_hooks, extra_dict=_global_forward_hooks_always_called)
    _global_forward_hooks[handle.id] = hook
    if with_kwargs:
        _global_forward_hooks_with_kwargs[handle.id] = True
    if always_call:
        _global_forward_hooks_always_called[handle.id] = True
    return handle


def register_module_full_backward_pre_hook(hook) -> RemovableHandle:
    """Register ``hook(module, grad_output)`` for every module; it runs before the modules' own pre-hooks."""
    hooks_used[0] = True
    handle = RemovableHandle(_global_backward_pre_hooks)
    _global_backward_pre_hooks[handle.id] = hook
    return handle


def register_module_full_backward_hook(hook) -> RemovableHandle:
    """Register ``hook(module, grad_input, grad_output)`` for every module; it runs before their own hooks."""
    hooks_used[0] = True
    handle = RemovableHandle(_global_backward_hooks)
    _global_backward_hooks[handle.id] = hook
    return handle


def any_global_hooks() -> bool:
    """Whether a global module hook is registered."""
    return bool(_global_forward_pre_hooks or _global_forward_hooks or _global_backward_pre_hooks
                or _global_backward_hooks)


def init_hooks(module) -> None:
    """Create a module's (empty) hook dicts, under torch's attribute names."""
    for name in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                 "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_pre_hooks",
                 "_backward_hooks"):
        object.__setattr__(module, name, OrderedDict())


class ModuleHooks:
    """The hook registration methods of :class:`~trainkit.nn.Module` (PyTorch's signatures)."""

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``.

        It may return new positional arguments (a single value is wrapped in a
        tuple). With ``with_kwargs=True`` it is called as ``hook(module, args,
        kwargs)`` and may return ``(new_args, new_kwargs)``. ``prepend=True``
        runs it before the hooks already registered (global hooks still first).
        Returns a handle whose ``remove()`` unregisters it.
        """
        hooks_used[0] = True
        handle = RemovableHandle(self._forward_pre_hooks, extra_dict=self._forward_pre_hooks_with_kwargs)
        self._forward_pre_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        if prepend:
            self._forward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``; a returned value replaces the output.

        ``with_kwargs=True`` calls ``hook(module, args, kwargs, output)``;
        ``always_call=True`` also calls it when forward raises (the error is
        re-raised after); ``prepend=True`` runs it before the hooks already
        registered. Returns a handle whose ``remove()`` unregisters it.
        """
        hooks_used[0] = True
        handle = RemovableHandle(self._forward_hooks,
                                 extra_dict=[self._forward_hooks_with_kwargs, self._forward_hooks_always_called])
        self._forward_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:
            self._forward_hooks_always_called[handle.id] = True
        if prepend:
            self._forward_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradients w.r.t. the module's outputs are known.

        ``grad_output`` is a tuple (None for non-Tensor outputs); a returned
        tuple of the same length replaces it for the rest of backward.
        """
        hooks_used[0] = True
        handle = RemovableHandle(self._backward_pre_hooks)
        self._backward_pre_hooks[handle.id] = hook
        if prepend:
            self._backward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` when the gradients w.r.t. the module's inputs are known.

        ``grad_input`` has one entry per positional argument of the call (None
        for non-Tensors and inputs that do not require grad); a returned tuple
        of the same length replaces it. When no input requires grad the hook
        fires with the output gradients and an all-None ``grad_input``. As in
        torch, ``forward`` then receives (and the caller gets back) new tensors
        sharing the storage of the originals.
        """
        hooks_used[0] = True
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        if prepend:
            self._backward_hooks.move_to_end(handle.id, last=False)
        return handle


class BackwardHook:
    """Connects a module call's input and output gradients to its full backward (pre-)hooks."""

    def __init__(self, module, user_hooks: list, user_pre_hooks: list):
        self.module, self.user_hooks, self.user_pre_hooks = module, user_hooks, user_pre_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = -1
        self.input_tensors_index = self.output_tensors_index = None

    @staticmethod
    def _pack_with_none(indices, values, size) -> tuple:
        res = [None] * size
        for idx, val in zip(indices, values):
            res[idx] = val
        return tuple(res)

    @staticmethod
    def _unpack_none(indices, values) -> tuple:
        return tuple(values[idx] for idx in indices)

    def _set_user_hook(self, node) -> None:
        def hook(grad_input, _):
            if self.grad_outputs is None:  # the gradient reached the inputs without passing the outputs
                return None
            res = self._pack_with_none(self.input_tensors_index, grad_input, self.n_inputs)
            for user_hook in self.user_hooks:
                out = user_hook(self.module, res, self.grad_outputs)
                if out is None:
                    continue
                if len(out) != len(res):
                    raise RuntimeError("Backward hook returned an invalid number of grad_input, "
                                       f"got {len(out)}, but expected {len(res)}")
                res = out
            self.grad_outputs = None
            return self._unpack_none(self.input_tensors_index, res)

        node.register_hook(hook)

    def _apply_on_tensors(self, fn, args):
        tensors_idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        tensors = [args[i] for i in tensors_idx]
        if not (any(t.requires_grad for t in tensors) and is_grad_enabled()):
            return args, None
        new_tensors, node = hook_identity(tensors)
        fn(node)
        arg_list = list(args)
        for idx, val in zip(tensors_idx, new_tensors):
            arg_list[idx] = val
        return (tuple(arg_list) if type(args) is tuple else type(args)(*arg_list)), tensors_idx

    def setup_input_hook(self, args):
        """Wrap the positional tensor inputs; the full backward hooks fire on their gradients."""
        res, input_idx = self._apply_on_tensors(self._set_user_hook, args)
        self.n_inputs = len(args)
        self.input_tensors_index = input_idx
        return res

    def setup_output_hook(self, args):
        """Wrap the output tensors; their gradients feed the pre-hooks and become ``grad_output``."""
        def fn(node) -> None:
            def hook(_, grad_output):
                self.grad_outputs = self._pack_with_none(self.output_tensors_index, grad_output, self.n_outputs)
                for user_pre_hook in self.user_pre_hooks:
                    new = user_pre_hook(self.module, self.grad_outputs)
                    if new is None:
                        continue
                    if len(new) != len(self.grad_outputs):
                        raise RuntimeError("Backward pre hook returned an invalid number of grad_output, "
                                           f"got {len(new)}, but expected {len(self.grad_outputs)}")
                    self.grad_outputs = new
                local_grad_outputs = self.grad_outputs
                if self.input_tensors_index is None:  # no input requires grad: fire the hooks here
                    warnings.warn("Full backward hook is firing when gradients are computed with respect to "
                                  "module outputs since no inputs require gradients.", stacklevel=2)
                    grad_inputs = self._pack_with_none([], [], self.n_inputs)
                    for user_hook in self.user_hooks:
                        res = user_hook(self.module, grad_inputs, self.grad_outputs)
                        if res is not None and not (isinstance(res, tuple) and all(el is None for el in res)):
                            raise RuntimeError("Backward hook for Modules where no input requires gradient should "
                                               "always return None or None for all gradients.")
                    self.grad_outputs = None
                return tuple(local_grad_outputs[i] for i in self.output_tensors_index)

            node.register_hook(hook)

        is_tuple = isinstance(args, tuple)
        if not is_tuple:
            args = (args,)
        res, output_idx = self._apply_on_tensors(fn, args)
        self.n_outputs = len(args)
        self.output_tensors_index = output_idx
        return res if is_tuple else res[0]


def call_with_hooks(module, args: tuple, kwargs: dict):
    """``module(*args, **kwargs)`` with its hooks and the global ones, in torch's order."""
    result = None
    called_always = set()

    def inner():
        nonlocal result, args, kwargs
        backward_pre_hooks = [*_global_backward_pre_hooks.values(), *module._backward_pre_hooks.values()]
        full_backward_hooks = [*_global_backward_hooks.values(), *module._backward_hooks.values()]
        for hook_id, hook in (*_global_forward_pre_hooks.items(), *module._forward_pre_hooks.items()):
            if hook_id in module._forward_pre_hooks_with_kwargs:
                res = hook(module, args, kwargs)
                if res is not None:
                    if isinstance(res, tuple) and len(res) == 2:
                        args, kwargs = res
                    else:
                        raise RuntimeError("forward pre-hook must return None or a tuple "
                                           f"of (new_args, new_kwargs), but got {res}.")
            else:
                res = hook(module, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        bw_hook = None
        if full_backward_hooks or backward_pre_hooks:
            bw_hook = BackwardHook(module, full_backward_hooks, backward_pre_hooks)
            args = bw_hook.setup_input_hook(args)
        result = module.forward(*args, **kwargs)
        for hook_id, hook in (*_global_forward_hooks.items(), *module._forward_hooks.items()):
            if hook_id in module._forward_hooks_always_called or hook_id in _global_forward_hooks_always_called:
                called_always.add(hook_id)
            if hook_id in module._forward_hooks_with_kwargs or hook_id in _global_forward_hooks_with_kwargs:
                res = hook(module, args, kwargs, result)
            else:
                res = hook(module, args, result)
            if res is not None:
                result = res
        if bw_hook is not None:
            if not isinstance(result, (Tensor, tuple)):
                warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of "
                              f"Tensors but received {type(result)}", stacklevel=3)
            result = bw_hook.setup_output_hook(result)
        return result

    try:
        return inner()
    except Exception:
        # the always_call hooks that did not run yet run now; their own errors must not hide forward's
        always = [(i, h, False) for i, h in _global_forward_hooks.items() if i in _global_forward_hooks_always_called]
        always += [(i, h, i in module._forward_hooks_with_kwargs) for i, h in module._forward_hooks.items()
                   if i in module._forward_hooks_always_called]
        for hook_id, hook, kw in always:
            if hook_id in called_always:
                continue
            try:
                res = hook(module, args, kwargs, result) if kw else hook(module, args, result)
                if res is not None:
                    result = res
            except Exception as e:
                warnings.warn("module forward hook with ``always_call=True`` raised an exception that was "
                              f"silenced as another error was raised in forward: {e}", stacklevel=2)
        raise
