"""Which module recorded which graph nodes: :class:`ModuleTrace`.

The autograd graph knows ops, not layers. While a ``ModuleTrace`` is active,
global module hooks note the graph's creation counter when each module call
starts and ends; a node created in between belongs to that call (the
innermost one). Nothing is added to the engine's hot path: the counter is the
one every recorded node already takes.

    with ModuleTrace(model, names={"loss": loss_fn}) as trace:
        loss = loss_fn(model(x), y)
    dot = make_dot(loss, params=dict(model.named_parameters()), trace=trace, depth=1)
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from trainkit.autograd.function import Op
from trainkit.nn.module import register_module_forward_hook, register_module_forward_pre_hook

__all__ = ["ModuleTrace", "Span"]


@dataclass(eq=False)
class Span:
    """One module call: its name, class, the creation numbers it spans, and its place in the call tree."""

    name: str
    type: str
    start: int
    end: int = -1
    parent: "Span | None" = None
    children: list = field(default_factory=list)
    call: int = 1  # 2, 3... for a module called again (a shared layer)
    has_children: bool = False  # whether the module has sub-modules (a block rather than a layer)

    @property
    def depth(self) -> int:
        """0 for a top-level call (the model, or a loss called on its own), 1 for its children..."""
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def title(self) -> str:
        """``name`` (``name #2`` for a second call of the same module)."""
        return self.name if self.call == 1 else f"{self.name} #{self.call}"


class ModuleTrace:
    """Record the module calls of a forward pass (a context manager).

    Args:
        model: names its sub-modules by their dotted path (the model itself is ``""``).
        names: extra ``{name: module}`` (e.g. the loss function).
    """

    def __init__(self, model=None, names: dict | None = None):
        self._names = {}
        if model is not None:
            for name, m in model.named_modules():
                self._names.setdefault(id(m), name)
        for name, m in (names or {}).items():
            self._names[id(m)] = name
        self.spans: list = []
        self._stack: list = []
        self._calls: dict = {}
        self._handles = []

    def _pre(self, module, args):
        name = self._names.get(id(module), type(module).__name__.lower())
        self._calls[name] = self._calls.get(name, 0) + 1
        parent = self._stack[-1] if self._stack else None
        span = Span(name, type(module).__name__, Op._next_seq(), parent=parent, call=self._calls[name],
                    has_children=any(True for _ in module.children()))
        if parent is not None:
            parent.children.append(span)
        self.spans.append(span)
        self._stack.append(span)

    def _post(self, module, args, output):
        if self._stack:
            self._stack.pop().end = Op._next_seq()

    def __enter__(self) -> "ModuleTrace":
        self._handles = [register_module_forward_pre_hook(self._pre),
                         register_module_forward_hook(self._post, always_call=True)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def scopes(self, ops) -> dict:
        """id(op) -> the innermost :class:`Span` that created it (ops created outside every call are absent)."""
        ordered = sorted(ops, key=lambda op: op._seq)
        seqs = [op._seq for op in ordered]
        out = {}
        for span in sorted(self.spans, key=lambda s: s.start):  # outer calls first, inner ones overwrite
            if span.end < 0:
                continue
            lo, hi = bisect.bisect_right(seqs, span.start), bisect.bisect_left(seqs, span.end)
            for op in ordered[lo:hi]:
                out[id(op)] = span
        return out
