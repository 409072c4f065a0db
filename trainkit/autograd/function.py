"""Graph nodes and the reverse-mode engine.

Each differentiable operation is an :class:`Op` subclass with ``forward`` on
ndarrays and ``backward`` returning one ndarray (or None) per input, in the
spirit of DeZero. ``Op.apply`` records a node only when gradients are enabled
and some input requires them, so inference and data batches cost nothing.
:func:`backward` walks the graph in reverse topological order without
recursion and frees each node's saved arrays as soon as it has been used.

:class:`Function` is PyTorch's user-facing contract (``forward(ctx, ...)`` /
``backward(ctx, ...)`` with ``ctx.save_for_backward``) built on the same engine.
"""
from __future__ import annotations

import functools
import itertools
import operator

import numpy as np

_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations are currently recorded for backward."""
    return _grad_enabled


class _GradMode:
    """Context manager and decorator setting whether operations are recorded."""

    _mode = True

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Disable graph recording inside a ``with`` block or a decorated function."""

    _mode = False


class enable_grad(_GradMode):
    """Re-enable graph recording, e.g. inside a ``no_grad`` block."""

    _mode = True


class set_grad_enabled(_GradMode):
    """Enable or disable graph recording according to ``mode``."""

    def __init__(self, mode: bool):
        self._mode = bool(mode)


def sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Reduce a broadcast gradient ``g`` back to ``shape`` by summing broadcast axes."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(shape)
    return g


class Op:
    """One differentiable operation: a node of the graph.

    Subclasses implement ``forward(*arrays) -> ndarray`` and
    ``backward(grad_output) -> tuple`` with one entry per input (None where no
    gradient is needed; ``self.needs[i]`` says whether input i needs one).
    ``self.needs`` is set before ``forward`` runs and is None when no node
    will be recorded (no_grad, or no input requires grad): forward may then
    skip saving anything for backward. Whatever ``forward`` stores on
    ``self`` is freed after backward.
    """

    inputs: tuple | None
    needs: tuple | None = None
    # --- hooks and graph introspection (trainkit/autograd/hooks.py, graph.py) -----------------
    # ``_seq`` numbers nodes in creation order: backward runs them newest first, torch's order.
    # ``_hooks`` stays None unless a hook is registered, so the engine pays one attribute test.
    _seq: int = -1
    _hooks = None
    _next_seq = staticmethod(itertools.count().__next__)

    def name(self) -> str:
        """PyTorch's name for this node, e.g. ``'AddBackward0'`` (see :mod:`trainkit.autograd.graph`)."""
        from .graph import node_name
        return node_name(self)

    @property
    def next_functions(self) -> tuple:
        """``((node, 0), ...)`` per input: its grad_fn, an ``AccumulateGrad`` for a leaf needing grad, else None."""
        from .graph import next_functions
        return next_functions(self)

    @property
    def metadata(self) -> dict:
        """A dict for the user's own annotations of this node."""
        return self.__dict__.setdefault("_metadata", {})

    def register_hook(self, fn):
        """Call ``fn(grad_inputs, grad_outputs)`` after this node's backward; a returned tuple replaces grad_inputs."""
        from .hooks import RemovableHandle, node_hooks
        d = node_hooks(self).post
        handle = RemovableHandle(d)
        d[handle.id] = fn
        return handle

    def register_prehook(self, fn):
        """Call ``fn(grad_outputs)`` before this node's backward; a returned tuple replaces grad_outputs."""
        from .hooks import RemovableHandle, node_hooks
        d = node_hooks(self).pre
        handle = RemovableHandle(d)
        d[handle.id] = fn
        return handle
    # ------------------------------------------------------------------------------------------

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run the op on Tensors and record it when a gradient will be needed."""
        op = cls(**kwargs) if kwargs else cls()
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    op.needs = tuple(x.requires_grad for x in inputs)
                    y = op.forward(*[x._array for x in inputs])
                    op.inputs = inputs
                    op._seq = _next_seq()
                    return Tensor._from_op(y, op)
        return Tensor(op.forward(*[t._array for t in inputs]))

    def __repr__(self) -> str:
        return f"<{self.name()}>"


_next_seq = Op._next_seq


def _toposort(root_op: Op) -> list:
    """Ops reachable from ``root_op`` in the order backward runs them: newest first.

    Every op is created after the ops that produced its inputs, so decreasing
    creation number is a topological order (each op comes before all ops
    feeding it). It is also the order of PyTorch's engine (its ready queue
    picks the highest sequence number), so hooks fire in torch's order.
    An iterative walk: a 10,000-op chain does not hit the recursion limit.
    """
    seen = {id(root_op)}
    nodes = [root_op]
    stack = [root_op]
    while stack:
        op = stack.pop()
        inputs = getattr(op, "inputs", None)
        if inputs is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward(). Specify retain_graph=True if you need "
                "to backward through the graph a second time."
            )
        for t in inputs:
            parent = t.grad_fn
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                nodes.append(parent)
                stack.append(parent)
    nodes.sort(key=_creation, reverse=True)
    return nodes


_creation = operator.attrgetter("_seq")


def _plan_leaf_hooks(order: list, start: int, inputs: tuple) -> dict:
    """For leaves with hooks: id(op) -> the leaves whose last consumer (in ``order[start:]``) is that op.

    torch accumulates a leaf's gradient once, after all its consumers ran, so
    its hooks see the sum; the engine buffers such a leaf's gradient until then.
    ``inputs`` are those of ``order[start]``, whose own attributes are cleared.
    """
    def hooked_leaves(k):
        for t in (inputs if k == start else getattr(order[k], "inputs", ())):
            if t.grad_fn is None and t._hooks is not None and t.requires_grad:
                yield t

    last = {}
    for k in range(start, len(order)):
        for t in hooked_leaves(k):
            last[id(t)] = k
    # in the last consumer's input order: the order torch's engine queues the leaves' AccumulateGrad nodes
    flush: dict = {}
    for k in sorted(set(last.values())):
        leaves = flush.setdefault(id(order[k]), [])
        for t in hooked_leaves(k):
            if last.get(id(t)) == k:  # its last consumer (an earlier one must not drop it)
                del last[id(t)]
                leaves.append(t)
    return flush


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d out / d root) to every leaf that requires grad."""
    if root.grad_fn is None:  # a leaf: its gradient is the seed itself
        if root._hooks is not None:
            root._hooks.accumulate(root, grad)
        else:
            root.grad = Tensor(grad.copy()) if root.grad is None else Tensor(root.grad._array + grad)
        return
    order = _toposort(root.grad_fn)
    grads = {id(root.grad_fn): grad}
    flush = pending = None  # leaves with hooks (see _plan_leaf_hooks); None while there are none
    for op in order:
        gy = grads.pop(id(op), None)
        inputs = op.inputs
        if gy is None:
            if not retain_graph:
                op.__dict__.clear()
            if flush is not None and id(op) in flush:
                _flush_leaves(flush.pop(id(op)), pending)
            continue
        hooks = op._hooks
        if hooks is not None:
            gy = hooks.before(gy)
        gxs = op.backward(gy)
        if hooks is not None and hooks.post:
            gxs = hooks.after(gxs, gy)
        if not retain_graph:
            op.__dict__.clear()  # free saved arrays as soon as this node is done
            if hooks is not None:
                op._hooks = hooks  # torch keeps a node's hooks (and retains_grad) after backward
        for t, g in zip(inputs, gxs):
            if g is None or not t.requires_grad:
                continue
            parent = t.grad_fn
            if parent is None:
                if t._hooks is not None:
                    if flush is None:
                        flush, pending = _plan_leaf_hooks(order, order.index(op), inputs), {}
                    prev = pending.get(id(t))
                    pending[id(t)] = (t, g if prev is None else prev[1] + g)
                    continue
                if t.grad is None:
                    # copy when g may alias an array that another leaf also receives
                    t.grad = Tensor(g if g.dtype == t._array.dtype else g.astype(t._array.dtype))
                    if g is gy or g.base is not None:
                        t.grad._array = t.grad._array.copy()
                else:
                    t.grad._array += g
            else:
                key = id(parent)
                prev = grads.get(key)
                grads[key] = g if prev is None else prev + g
        if flush is not None and id(op) in flush:
            _flush_leaves(flush.pop(id(op)), pending)
    if pending:  # leaves that got a hook while backward ran were not planned for
        _flush_leaves([t for t, _ in list(pending.values())], pending)


def _flush_leaves(leaves: list, pending: dict) -> None:
    """Accumulate the buffered gradients of hooked leaves whose last consumer has run."""
    for t in leaves:
        entry = pending.pop(id(t), None)
        if entry is not None:
            t._hooks.accumulate(t, entry[1])


class FunctionCtx:
    """The ``ctx`` object passed to a user :class:`Function`'s forward and backward."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        """Keep tensors for use in backward (read them back as ``ctx.saved_tensors``)."""
        self.saved_tensors = tensors


class _FunctionNode(Op):
    """Graph node wrapping a user-defined :class:`Function`."""

    def __init__(self, fn_cls, ctx, positions):
        self.fn_cls, self.ctx, self.positions = fn_cls, ctx, positions

    def name(self) -> str:
        return f"{self.fn_cls.__name__}Backward"

    def backward(self, gy):
        grads = self.fn_cls.backward(self.ctx, Tensor(gy))
        if not isinstance(grads, tuple):
            grads = (grads,)
        out = []
        for pos, t in zip(self.positions, self.inputs):
            g = grads[pos] if pos < len(grads) else None
            if g is None:
                out.append(None)
                continue
            g = g._array if isinstance(g, Tensor) else np.asarray(g)
            if g.shape != t._array.shape:
                raise RuntimeError(
                    f"Function {self.fn_cls.__name__}.backward returned a gradient of shape "
                    f"{tuple(g.shape)} for input {pos}, expected {tuple(t._array.shape)}"
                )
            out.append(g)
        return tuple(out)


class Function:
    """Base class for user-defined differentiable operations (PyTorch's contract).

    Subclass with static ``forward(ctx, *args)`` (runs without recording) and
    ``backward(ctx, *grad_outputs)`` returning one gradient per forward argument
    (None allowed), then call ``MyFn.apply(*args)``.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx()
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        tensors = tuple(args[i] for i in positions)
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            out = cls.forward(ctx, *args)
        if not isinstance(out, Tensor):
            out = Tensor(np.asarray(out))
        if _grad_enabled and any(t.requires_grad for t in tensors):
            node = _FunctionNode(cls, ctx, positions)
            node.inputs = tensors
            node.needs = tuple(t.requires_grad for t in tensors)
            node._seq = _next_seq()
            return Tensor._from_op(out._array, node)
        return out


from .tensor import Tensor  # noqa: E402  (Tensor needs Op; Op.apply needs Tensor)
