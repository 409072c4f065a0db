"""``trainkit graph CONFIG``: the autograd graph of one training step of a config's model and loss.

The model is built as ``trainkit train`` builds it (in training mode, so
dropout and batch norm record what a training step records) and run on a
batch of 2 random samples of the config's input shape, with random targets
that fit the loss; the loss's graph is drawn with
:func:`~trainkit.viz.make_dot`, one cluster per layer, repeated blocks
collapsed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.errors import TrainkitError

from trainkit.viz.dot import Dot, GraphvizNotFound, render_text
from trainkit.viz.make import make_dot
from trainkit.viz.trace import ModuleTrace

__all__ = ["step_graph", "graph_command"]


def _target(loss_type: str, out: Tensor, rng: np.random.Generator) -> Tensor:
    """A random target of the right kind for ``loss_type`` and the model's output."""
    shape = out.shape
    if loss_type in ("cross_entropy", "nll"):
        classes = shape[1] if len(shape) > 1 else 2
        return Tensor(rng.integers(0, classes, size=(shape[0],) + tuple(shape[2:])).astype(np.int64))
    if loss_type == "bce_with_logits":
        return Tensor(rng.uniform(size=shape).astype(out.dtype))
    return Tensor(rng.standard_normal(shape).astype(out.dtype))


def step_graph(config_path, overrides=(), *, backward: bool = False, depth: int | None = None, batch: int = 2,
               show_attrs: bool = False, show_saved: bool = False) -> Dot:
    """The DOT graph of one training step (forward and loss) of the config at ``config_path``.

    Raises:
        ConfigError: the config is invalid (as for ``trainkit train``).
    """
    from trainkit.assemble.components import build_loss
    from trainkit.assemble.prepare import prepare_model

    config, model, shape = prepare_model(config_path, overrides)
    loss_fn = build_loss(config)
    model.train()
    rng = np.random.default_rng(0)
    if config.resolved.task == "language_model":  # token ids in, a next token per position as the target
        vocab = min((m.num_embeddings for m in model.modules() if isinstance(getattr(m, "num_embeddings", None), int)),
                    default=1)
        x = Tensor(rng.integers(0, vocab, size=(batch,) + tuple(shape)).astype(np.int64))
    else:
        x = Tensor(rng.standard_normal((batch,) + tuple(shape)).astype(np.float32))
    with ModuleTrace(model, names={"loss": loss_fn}) as trace:
        out = model(x)
        if config.resolved.task == "language_model":
            target = Tensor(rng.integers(0, out.shape[-1], size=tuple(out.shape[:-1])).astype(np.int64))
        else:
            target = _target(config["loss"]["type"], out, rng)
        loss = loss_fn(out, target)
    params = {**dict(model.named_parameters()), "input": x}
    return make_dot(loss, params=params, trace=trace, depth=depth, backward=backward, show_attrs=show_attrs,
                    show_saved=show_saved)


def _write(path: Path, text: str) -> None:
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise TrainkitError(f"cannot write '{path}': {e.strerror or e}") from None


def graph_command(config_path, overrides=(), *, output: Path | None = None, svg: Path | None = None,
                  png: Path | None = None, backward: bool = False, depth: int | None = None) -> list[str]:
    """Run ``trainkit graph``: write the DOT text, render the pictures; returns the lines to print.

    The DOT goes to ``output``, else next to the first picture (``g.svg`` -> ``g.dot``), else to
    stdout. It is written before anything is rendered, so it exists even when Graphviz is missing.

    Raises:
        GraphvizNotFound: a picture was asked for and ``dot`` is not installed (exit code 2).
        TrainkitError: bad config, unwritable path, an unknown picture suffix.
    """
    if depth is not None and depth < 0:
        raise TrainkitError(f"--depth must be 0 or more, not {depth}")
    pictures = [(p, kind) for p, kind in ((svg, "svg"), (png, "png")) if p is not None]
    dot = step_graph(config_path, overrides, backward=backward, depth=depth)
    lines = []
    dot_path = output if output is not None else (pictures[0][0].with_suffix(".dot") if pictures else None)
    if dot_path is None:
        sys.stdout.write(dot.source)
    else:
        _write(dot_path, dot.source)
        lines.append(f"wrote {dot_path}")
    for path, kind in pictures:
        try:
            render_text(dot.source, path, kind)
        except GraphvizNotFound:
            raise GraphvizNotFound(
                f"cannot render {kind.upper()} '{path}': the Graphviz 'dot' program is not on PATH; install "
                f"Graphviz (e.g. 'apt install graphviz') and run 'dot -T{kind} {dot_path} -o {path}'"
                + (f" (the DOT text is in {dot_path})" if dot_path is not None else "")) from None
        lines.append(f"wrote {path}")
    return lines
