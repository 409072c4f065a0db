"""Hooks on the autograd graph, with PyTorch's semantics.

Three kinds of hook exist, as in torch 2.x:

* tensor hooks, ``t.register_hook(fn)``: ``fn(grad) -> Tensor | None`` runs
  when the gradient of ``t`` is complete (summed over all its consumers) and
  may replace it. On a non-leaf they are stored on ``t.grad_fn`` and run just
  before that node's backward; on a leaf they run before the gradient is
  accumulated into ``.grad`` (:class:`LeafHooks`, with the post-accumulate
  hooks).
* node pre-hooks, ``grad_fn.register_prehook(fn)``: ``fn(grad_outputs)``,
  after the tensor hooks and ``retain_grad``.
* node hooks, ``grad_fn.register_hook(fn)``: ``fn(grad_inputs, grad_outputs)``
  after the node's backward; a returned tuple replaces ``grad_inputs``.

The engine (:func:`trainkit.autograd.function.run_backward`) only looks at a
node's ``_hooks`` attribute, None unless something was registered, so a graph
without hooks runs exactly as before. Module backward hooks build on the
identity node of :func:`hook_identity` (torch's ``BackwardHookFunction``).
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from .function import Op

__all__ = ["RemovableHandle", "NodeHooks", "LeafHooks", "hook_identity", "node_hooks"]


class RemovableHandle:
    """A handle that removes the hook it was returned for (``torch.utils.hooks.RemovableHandle``).

    Args:
        hooks_dict: the dict holding the hook under ``handle.id``.
        extra_dict: a dict or a list of dicts whose entry under the same id is
            removed too (e.g. the ``with_kwargs`` flags).

    Usable as a context manager: the hook is removed on exit.
    """

    id: int
    next_id: int = 0

    def __init__(self, hooks_dict: Any, *, extra_dict: Any = None) -> None:
        # weak references: a handle kept by the user must not keep a module's hook dicts alive
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        if isinstance(extra_dict, dict):
            self.extra_dict_ref: tuple = (weakref.ref(extra_dict),)
        elif isinstance(extra_dict, list):
            self.extra_dict_ref = tuple(weakref.ref(d) for d in extra_dict)
        else:
            self.extra_dict_ref = ()

    def remove(self) -> None:
        """Remove the hook (a no-op when it is already gone)."""
        for ref in (self.hooks_dict_ref,) + self.extra_dict_ref:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _hook_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _grad_array(value, like: np.ndarray, fn, what: str = "value") -> np.ndarray:
    """The ndarray of a hook's returned gradient, checked like torch checks it."""
    from .tensor import Tensor

    arr = value._array if isinstance(value, Tensor) else np.asarray(value)
    if arr.shape != like.shape:
        raise RuntimeError(f"hook '{_hook_name(fn)}' has changed the size of {what}")
    if arr.dtype != like.dtype:
        raise RuntimeError(f"hook '{_hook_name(fn)}' has changed the type of {what}")
    return arr


class Packed:
    """The gradients of a node with several outputs, as one value the engine can sum.

    trainkit's engine keeps one gradient per node; the identity node behind
    module backward hooks has one output per wrapped tensor, so its gradient
    is a list with a slot per output (None where no gradient arrived).
    """

    __slots__ = ("grads",)

    def __init__(self, grads: list):
        self.grads = grads

    def __add__(self, other: "Packed") -> "Packed":
        return Packed([a if b is None else b if a is None else a + b for a, b in zip(self.grads, other.grads)])


def _tensors_of(grads) -> tuple:
    from .tensor import Tensor

    return tuple(None if g is None else Tensor(g) for g in grads)


class NodeHooks:
    """Hooks attached to one graph node and to the tensor it produced.

    Attributes:
        tensor: hooks registered on the node's output tensor, ``fn(grad)``.
        retain: a weak reference to the output tensor when it ``retain_grad()``\\ s.
        pre: node pre-hooks, ``fn(grad_outputs)``.
        post: node hooks, ``fn(grad_inputs, grad_outputs)``.
    """

    __slots__ = ("tensor", "retain", "pre", "post")

    def __init__(self):
        self.tensor: OrderedDict = OrderedDict()
        self.retain = None
        self.pre: OrderedDict = OrderedDict()
        self.post: OrderedDict = OrderedDict()

    def before(self, gy):
        """Run the tensor hooks, fill a retained ``.grad``, run the pre-hooks; returns the gradient to use."""
        from .tensor import Tensor

        packed = isinstance(gy, Packed)
        for fn in list(self.tensor.values()):
            r = fn(Tensor(gy))
            if r is not None:
                gy = _grad_array(r, gy, fn)
        if self.retain is not None:
            t = self.retain()
            if t is not None:
                # torch runs the retains_grad hook after all other tensor hooks, on their result
                t.grad = Tensor(gy.copy()) if t.grad is None else Tensor(t.grad._array + gy)
        for fn in list(self.pre.values()):
            outs = _tensors_of(gy.grads) if packed else (Tensor(gy),)
            r = fn(outs)
            if r is not None:
                gy = _replace(outs, r, fn, packed, "grad_output")
        return gy

    def after(self, gxs, gy):
        """Run the node hooks on ``(grad_inputs, grad_outputs)``; returns the gradients to pass on."""
        packed = isinstance(gy, Packed)
        gouts = _tensors_of(gy.grads) if packed else _tensors_of((gy,))
        for fn in list(self.post.values()):
            gins = _tensors_of(gxs)
            r = fn(gins, gouts)
            if r is not None:
                gxs = _replace(gins, r, fn, True, "grad_input").grads
        return gxs


def _replace(current: tuple, result, fn, packed: bool, what: str):
    """A hook's returned tuple of gradients as arrays (a Packed when the node has several)."""
    if not isinstance(result, (tuple, list)):
        result = (result,)
    if len(result) != len(current):
        raise RuntimeError(f"hook '{_hook_name(fn)}' has returned an incorrect number of values "
                           f"(got {len(result)}, but expected {len(current)})")
    arrays = []
    for old, new in zip(current, result):
        if new is None:
            arrays.append(None)
        elif old is None:
            from .tensor import Tensor
            arrays.append(new._array if isinstance(new, Tensor) else np.asarray(new))
        else:
            arrays.append(_grad_array(new, old._array, fn, what))
    return Packed(arrays) if packed else arrays[0]


def node_hooks(op) -> NodeHooks:
    """The hook record of graph node ``op``, created on first use."""
    hooks = op.__dict__.get("_hooks")
    if hooks is None:
        hooks = NodeHooks()
        op._hooks = hooks
    return hooks


class LeafHooks:
    """Hooks of a leaf tensor: ``pre`` before accumulation into ``.grad``, ``post`` after it."""

    __slots__ = ("pre", "post")

    def __init__(self):
        self.pre: OrderedDict = OrderedDict()
        self.post: OrderedDict = OrderedDict()

    def accumulate(self, t, g: np.ndarray) -> None:
        """Run the hooks around adding ``g`` (the leaf's complete gradient) to ``t.grad``."""
        from .tensor import Tensor

        for fn in list(self.pre.values()):
            r = fn(Tensor(g))
            if r is not None:
                g = _grad_array(r, g, fn)
        if g.dtype != t._array.dtype:
            g = g.astype(t._array.dtype)
        if t.grad is None:
            t.grad = Tensor(np.array(g, copy=True))
        else:
            t.grad._array += g
        for fn in list(self.post.values()):
            fn(t)


def leaf_hooks(t) -> LeafHooks:
    """The hook record of leaf tensor ``t``, created on first use."""
    if t._hooks is None:
        t._hooks = LeafHooks()
    return t._hooks


# ----------------------------------------------------------------------------- tensor-level API
def register_tensor_hook(t, hook) -> RemovableHandle:
    """``Tensor.register_hook``: see the module docstring."""
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    d = leaf_hooks(t).pre if t.grad_fn is None else node_hooks(t.grad_fn).tensor
    handle = RemovableHandle(d)
    d[handle.id] = hook
    return handle


def register_post_accumulate_grad_hook(t, hook) -> RemovableHandle:
    """``Tensor.register_post_accumulate_grad_hook``: ``hook(tensor)`` after ``.grad`` was updated."""
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if t.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    d = leaf_hooks(t).post
    handle = RemovableHandle(d)
    d[handle.id] = hook
    return handle


def retain_grad(t) -> None:
    """``Tensor.retain_grad``: keep ``.grad`` of a non-leaf after backward (a no-op on leaves)."""
    if not t.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if t.grad_fn is not None:
        node_hooks(t.grad_fn).retain = weakref.ref(t)


def retains_grad(t) -> bool:
    """Whether ``t`` is a non-leaf whose ``.grad`` is kept."""
    op = t.grad_fn
    if op is None:
        return False
    hooks = op.__dict__.get("_hooks")
    return hooks is not None and hooks.retain is not None and hooks.retain() is t


# ----------------------------------------------------------------------------- the identity node
def hook_identity(tensors):
    """Pass ``tensors`` through one identity node (torch's ``BackwardHookFunction``).

    Returns ``(outputs, node)``: ``outputs`` are new tensors with the same
    storage, those that require grad depending on ``node``; hooks registered on
    ``node`` see the gradients of all of them at once. Tensors that do not
    require grad are returned as they are (torch marks them non-differentiable).
    """
    from .tensor import Tensor

    node = _HookIdentity()
    needs = tuple(t.requires_grad for t in tensors)
    node.needs = needs
    node.inputs = tuple(tensors)
    node._seq = Op._next_seq()
    # the selects hold the carrier, the carrier holds the node: no reference cycle
    carrier = Tensor._from_op(np.empty(0), node)
    outs = []
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            outs.append(t)
            continue
        sel = _HookSelect(node, i, len(tensors), t)
        sel.needs = (True,)
        sel.inputs = (carrier,)
        sel._seq = Op._next_seq()
        outs.append(Tensor._from_op(t._array, sel))
    return outs, node


class _HookIdentity(Op):
    """The identity node of :func:`hook_identity`: its gradient is a :class:`Packed`, one slot per input."""

    def name(self) -> str:
        return "BackwardHookFunctionBackward"

    def backward(self, gy: Packed):
        # torch's BackwardHookFunction is a custom Function: a missing output gradient is materialised as
        # zeros, also for the tensors that need no grad (hooks see them; the engine passes them nowhere)
        return tuple(g if g is not None else np.zeros_like(t._array) for g, t in zip(gy.grads, self.inputs))


class _HookSelect(Op):
    """Output ``index`` of a :class:`_HookIdentity` node (torch's node has several outputs; ours one each)."""

    def __init__(self, node: _HookIdentity, index: int, n: int, source):
        self.node, self.index, self.n, self.source = node, index, n, source

    def name(self) -> str:
        return "BackwardHookFunctionBackward"

    def backward(self, gy):
        grads = [None] * self.n
        grads[self.index] = gy
        return (Packed(grads),)
