"""Pictures of what trainkit computes: the recorded autograd graph (``make_dot``) and ``trainkit graph``.

    from trainkit.viz import ModuleTrace, make_dot

    with ModuleTrace(model) as trace:            # optional: clusters per module, repeated blocks collapsed
        loss = loss_fn(model(x), y)
    dot = make_dot(loss, params=dict(model.named_parameters()), trace=trace)
    dot.save("step.dot")                          # DOT text, always available
    dot.render("step", format="svg")              # step.svg, needs Graphviz's `dot` program
"""
from .dot import Dot, GraphvizNotFound
from .make import make_dot
from .trace import ModuleTrace

__all__ = ["make_dot", "Dot", "GraphvizNotFound", "ModuleTrace"]
