"""``Module``: the base class of every layer, loss and model (PyTorch's ``nn.Module`` subset).

Parameters, buffers and sub-modules are registered when they are assigned as
attributes, which is what lets ``parameters()``, ``state_dict()`` and the
nested ``repr`` walk a model without the user listing anything.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.errors import CheckpointError
from trainkit.nn import hooks as _hooks
from trainkit.nn.hooks import (  # noqa: F401  (torch.nn.modules.module's global hook functions)
    ModuleHooks, register_module_forward_hook, register_module_forward_pre_hook,
    register_module_full_backward_hook, register_module_full_backward_pre_hook,
)
from trainkit.nn.parameter import Parameter

__all__ = ["Module", "StateDictError", "IncompatibleKeys"]

# bound once: Module.__call__ tests them on every call
_hooks_used = _hooks.hooks_used
_gfh, _gfph = _hooks._global_forward_hooks, _hooks._global_forward_pre_hooks
_gbh, _gbph = _hooks._global_backward_hooks, _hooks._global_backward_pre_hooks


class StateDictError(CheckpointError, RuntimeError):
    """A state dict does not fit the module (missing/unexpected keys, shape mismatch).

    It is a :class:`~trainkit.errors.CheckpointError` (the CLI reports it and
    exits with code 2) and a ``RuntimeError``, the type PyTorch raises, so code
    written for PyTorch that catches ``RuntimeError`` keeps working.
    """


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(..., strict=False)`` could not match."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (how nested reprs line up)."""
    first, *rest = text.split("\n")
    if not rest:
        return text
    pad = " " * spaces
    return first + "\n" + "\n".join(pad + line for line in rest)


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _value_array(value) -> np.ndarray:
    """The ndarray inside a state-dict value (Tensor, ndarray, or Python number)."""
    if isinstance(value, Tensor):
        return value._array
    return np.asarray(value)


class Module(ModuleHooks):
    """Base class for all layers and models.

    Subclasses call ``super().__init__()`` first, then assign ``Parameter``\\ s,
    sub-modules and buffers (``register_buffer``) as attributes, and define
    ``forward``. Calling the module runs ``forward`` (and the hooks registered
    with the ``register_*_hook`` methods of :class:`~trainkit.nn.hooks.ModuleHooks`).
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ because our own __setattr__ needs these dicts to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        _hooks.init_hooks(self)

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        """The computation; every subclass defines it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        # hooks (nn/hooks.py): until a hook is registered anywhere this costs one flag test
        if _hooks_used[0] and (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
                               or self._backward_pre_hooks or _gfh or _gfph or _gbh or _gbph):
            return _hooks.call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------- registration
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def _check_name(self, name, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a ``None`` placeholder, e.g. ``bias=False``) under ``name``."""
        self._check_init("parameters")
        self._check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(trainkit.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a non-trainable tensor (e.g. BatchNorm's running mean) under ``name``.

        Persistent buffers are saved in ``state_dict()``; non-persistent ones are not.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module under ``name`` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_init("child module")
        self._check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' (trainkit.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._check_init("module")
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif self.__dict__.get("_modules") is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' (Module or None expected)")
            self._modules[name] = None
        elif self.__dict__.get("_buffers") is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: str) -> None:
        """Drop ``name`` from the other registries and the instance dict before registering it.

        The registry named ``keep`` is left alone so that re-assigning an
        attribute keeps its position (and so its place in ``state_dict()``).
        """
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != keep:
                self.__dict__[registry].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(registry, ()):
                del self.__dict__[registry][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__()) + list(self._parameters) + list(self._modules) + list(self._buffers)
        return sorted(set(keys))

    # ---------------------------------------------------------------- traversal
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted_name, module)`` for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """Yield this module and every descendant (each once)."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield ``(name, module)`` for the direct children (each once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        """Yield the direct children."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for mod_prefix, module in mods:
            for name, value in getattr(module, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted_name, Parameter)``; a parameter shared by two layers appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Yield every parameter (what an optimizer is given)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted_name, Tensor)`` for every buffer."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Yield every buffer."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The descendant at dotted path ``target`` (``""`` is this module)."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{part}`")
            module = module._modules[part]
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (e.g. ``"0.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        module = self.get_submodule(mod_path)
        if name not in module._parameters:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}`")
        return module._parameters[name]

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every child (recursively) and then on this module; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics) recursively."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient computation on or off for every parameter (freezing)."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradient of every parameter (to ``None`` by default, as PyTorch 2 does)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad._array[...] = 0

    # ------------------------------------------------------------------- dtypes
    def _cast_floats(self, dtype) -> "Module":
        """Convert every floating parameter/buffer (and gradient) to ``dtype`` in place.

        The Parameter objects stay the same (only their storage changes), so an
        optimizer built before the cast still holds the right objects.
        """
        np_dtype = np.dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if np.issubdtype(t._array.dtype, np.floating):
                t._array = t._array.astype(np_dtype)
                if t.grad is not None:
                    t.grad._array = t.grad._array.astype(np_dtype)
        return self

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64 (e.g. for gradcheck)."""
        return self._cast_floats(np.float64)

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32."""
        return self._cast_floats(np.float32)

    def half(self) -> "Module":
        """Cast floating parameters and buffers to float16."""
        return self._cast_floats(np.float16)

    def type(self, dst_type) -> "Module":
        """Cast every parameter and buffer to ``dst_type`` (PyTorch's ``Module.type``)."""
        np_dtype = np.dtype(getattr(dst_type, "numpy_dtype", dst_type))
        for t in list(self.parameters()) + list(self.buffers()):
            t._array = t._array.astype(np_dtype)
            if t.grad is not None:
                t.grad._array = t.grad._array.astype(np_dtype)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(tensor)``, as in PyTorch; returns self.

        A dtype casts the floating parameters and buffers in place (it must be
        a floating dtype, as in PyTorch). trainkit runs on the CPU only, so
        ``to("cpu")`` / ``to(device("cpu"))`` change nothing and any other
        device raises a RuntimeError.
        """
        from trainkit.autograd.device import parse_to_args

        dtype, _ = parse_to_args(args, kwargs, who="Module.to")
        if dtype is None:
            return self
        np_dtype = np.dtype(getattr(dtype, "numpy_dtype", dtype))
        if np_dtype.kind not in "fc":
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired "
                            f"dtype={dtype}")
        return self._cast_floats(np_dtype)

    def cpu(self) -> "Module":
        """A no-op (trainkit is CPU-only), for PyTorch code that calls it."""
        return self

    def cuda(self, device=None) -> "Module":
        """Always raises: trainkit has no CUDA backend."""
        from trainkit.autograd.device import cpu_only_error

        raise cpu_only_error("cuda" if device is None else device)

    # --------------------------------------------------------------- state dict
    def _save_to_state_dict(self, destination: OrderedDict, prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else Tensor(p._array)
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else Tensor(b._array)

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Name -> Tensor for every parameter then persistent buffer, module by module.

        The tensors share storage with the module and carry no history (as
        PyTorch's ``detach()``); keys and order match PyTorch's for the same model.
        """
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and buffers, in place.

        Values are cast to each target's dtype (a float64 file loads into a
        float32 model as float32). With ``strict=True`` missing and unexpected
        keys are errors; shape mismatches are always errors. All problems are
        reported together in one :class:`StateDictError`. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in own]
        errors: list[str] = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            src = _value_array(state_dict[key])
            dst = target._array
            if src.shape != dst.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {_shape_str(src.shape)} from checkpoint, "
                    f"the shape in current model is {_shape_str(dst.shape)}."
                )
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise StateDictError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(self._get_name(), "\n\t".join(errors))
            )
        # Only copy once everything has been checked, so a failed load changes nothing.
        for key, target in own.items():
            if key in state_dict:
                target._array[...] = _value_array(state_dict[key])
        return IncompatibleKeys(missing, unexpected)

    # --------------------------------------------------------------------- repr
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The one-line description shown inside ``Name(...)``; layers override it."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"
