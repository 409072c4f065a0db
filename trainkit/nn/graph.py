"""``GraphModule``: a model of named nodes evaluated in a fixed order (the YAML graph form)."""
from __future__ import annotations

from trainkit.nn.container import ModuleDict, ModuleList
from trainkit.nn.module import Module

__all__ = ["GraphModule", "INPUT"]

#: The name by which graph nodes refer to the model's input.
INPUT = "input"


class GraphModule(Module):
    """A model of named nodes evaluated in a fixed order.

    Args:
        nodes: ``(name, module, input names)`` in an order where every input
            comes earlier (or is ``"input"``). An input ``"lstm.h_n"`` reads a
            named output of a multi-output node (see ``outputs``).
        output: the node (or ``node.output``) whose value ``forward`` returns.
        outputs: for multi-output nodes, ``name -> {output name: index path into
            the module's result}``; the node's own name then stands for its first
            output.

    Each module is a child under its node name, so ``state_dict()`` keys are
    ``stem.weight``, ``bn1.running_mean``, ... A dotted name (a copy of a
    repeated block, ``blocks.3.attn``) nests the module in containers as
    PyTorch models nest them (a ``ModuleList`` for numbered children, a
    ``ModuleDict`` for named ones), so its keys are ``blocks.3.attn.in_proj_weight``.
    The evaluation order is fixed here, so ``forward`` does no checks and no sorting.
    """

    def __init__(self, nodes: list[tuple[str, Module, list[str]]], output: str,
                 outputs: dict[str, dict[str, tuple]] | None = None):
        super().__init__()
        for name, module, _ in nodes:
            self._place(name, module)
        object.__setattr__(self, "_order", tuple((name, tuple(ins)) for name, _, ins in nodes))
        object.__setattr__(self, "_output", output)
        # node -> ((value key, index path), ...): the first entry's key is the node's own name.
        picks = {name: tuple([(name, next(iter(paths.values())))]
                             + [(f"{name}.{out}", path) for out, path in paths.items()])
                 for name, paths in (outputs or {}).items()}
        object.__setattr__(self, "_picks", picks)

    def _place(self, name: str, module: Module) -> None:
        """Register ``module`` at the dotted path ``name``, creating the containers on the way."""
        parts = name.split(".")
        owner: Module = self
        for part, child in zip(parts[:-1], parts[1:]):
            nxt = owner._modules.get(part)
            if nxt is None:
                nxt = ModuleList() if child.isdigit() else ModuleDict()
                owner.add_module(part, nxt)
            owner = nxt
        owner.add_module(parts[-1], module)

    @property
    def output_name(self) -> str:
        """The node whose value is the model's output."""
        return self._output

    @property
    def node_inputs(self) -> dict[str, tuple[str, ...]]:
        """Node name -> names of its inputs, in evaluation order."""
        return dict(self._order)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        values = {INPUT: input}
        modules = self._modules
        picks = self._picks
        for name, ins in self._order:
            module = modules[name] if name in modules else self.get_submodule(name)
            if len(ins) == 1:
                out = module(values[ins[0]])
            else:
                out = module(*[values[i] for i in ins])
            values[name] = out
            if picks and name in picks:
                for key, path in picks[name]:
                    value = out
                    for i in path:
                        value = value[i]
                    values[key] = value
        return values[self._output]
