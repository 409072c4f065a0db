"""Layer declarations: YAML name, arguments, the shape-filled argument and the shape rule.

A layer class declares itself with :func:`layer` and carries its shape rule as
a static method::

    @layer("linear", input_arg="in_features", input_dim=-1,
           args={"in_features": Int(lo=1), "out_features": Int(lo=1)},
           example=Example((2, 4), {"out_features": 3}))
    class Linear(Module):
        ...
        @staticmethod
        def infer_shape(args, x):
            if len(x) != 1: raise ShapeProblem("linear needs (features,) input per sample")
            return Inferred(x[:-1] + (args["out_features"],), macs=..., params=...)

The rule maps per-sample input shapes (no batch dimension) and the complete
arguments (defaults filled in) to an :class:`Inferred`: the output shape,
multiply-adds and parameter and buffer counts per sample, all without building
the layer. That is what lets the config stage check a model, and a memory
budget, before anything is allocated. A rule reads input sizes from the shapes,
not from the shape-filled argument (the builder fills that after the rule
accepted the input). A layer without a rule cannot be declared, unless it asks
for ``trial_shape=True``: then its output shape is found by building it and
running it once on a zero batch of one sample (what undeclared custom layers
get; it allocates, so declare a rule where you can).

Merge layers (``inputs="many"``) take two or more inputs, a layer with a fixed
count (``inputs=2``: a transformer decoder's target and memory) exactly that
many; their rule gets one shape per input. A layer with several outputs (an LSTM's ``(output, (h, c))``)
names them in ``outputs={"output": (0,), "h_n": (1, 0)}`` (index paths into its
forward result); its rule returns the first as ``shape`` and all of them in
``Inferred.outputs``; a graph node reads one as ``inputs: lstm.h_n``.
``onnx`` is the layer's ONNX export rule, ``onnx(layer, g, *input_names) -> output name(s)``
(``g``: :class:`trainkit.onnx.builder.OnnxGraph`; the built-in rules are in
:mod:`trainkit.nn.onnx_rules`). A layer without one cannot be exported by ``trainkit export``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .core import Argument, Declaration, DeclarationError, Registry, constructor, first_line, read_arguments
from .spec import REQUIRED, AnyOf, Int, ListOf, Raw, Str

__all__ = ["Example", "Inferred", "LayerDeclaration", "LAYERS", "ShapeProblem", "Shape", "fmt", "layer",
           "register_layer", "pair", "need_rank", "need_image", "window", "batched_dim", "numel", "same_shape",
           "SIZE", "PADDING", "CONV_PADDING"]

Shape = tuple  # per-sample shape, e.g. (3, 32, 32)

#: The argument names that, when a constructor has one, take the input size (undeclared custom layers).
INPUT_ARG_NAMES = {"in_features": -1, "in_channels": 0, "num_features": 0}


#: A kernel, window or image size: one integer for both sides, or [height, width].
SIZE = AnyOf((Int(lo=1), ListOf(Int(lo=1), length=2)), "an integer >= 1 or a list [height, width]")
#: Zero padding on each side: one integer for both sides, or [height, width].
PADDING = AnyOf((Int(lo=0), ListOf(Int(lo=0), length=2)), "an integer >= 0 or a list [height, width]")
#: A convolution's padding, which may also be 'same' or 'valid'.
CONV_PADDING = AnyOf((Int(lo=0), ListOf(Int(lo=0), length=2), Str(("same", "valid"), "padding")),
                     "an integer >= 0, a list [height, width], 'same' or 'valid'")


class ShapeProblem(Exception):
    """A layer (or transform) cannot take its input: ``key`` is the argument at fault, or None.

    ``problems`` holds ``(message, key)`` pairs; :meth:`several` raises more than one at once.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.problems: list[tuple[str, str | None]] = [(message, key)]

    @classmethod
    def several(cls, problems: list[tuple[str, str | None]]) -> "ShapeProblem":
        """One exception carrying every ``(message, key)`` of ``problems`` (at least one)."""
        out = cls(*problems[0])
        out.problems = list(problems)
        return out


@dataclass(frozen=True)
class Inferred:
    """What a shape rule gives for one sample: output shape, multiply-adds, parameter/buffer counts.

    ``outputs`` names every output of a multi-output layer (``shape`` is the first).
    """

    shape: Shape
    macs: int = 0
    params: int = 0
    buffers: int = 0
    outputs: Mapping[str, Shape] | None = None


@dataclass(frozen=True)
class Example:
    """A small call of a layer for its gradient check and docs: batched ``input`` shape(s) and ``args``.

    ``input`` is a shape, a tuple of shapes (merge layers), or ``f(rng) -> arrays``
    for inputs that are not standard normal floats; ``train`` is the mode it runs
    in; ``name`` labels a variant (default: the class name); ``fast`` checks the
    gradients along random directions (PyTorch's gradcheck ``fast_mode``) instead
    of element by element, for composite layers with many parameters.
    """

    input: Any = (3, 4)
    args: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    train: bool = True
    fast: bool = False


@dataclass(eq=False)
class LayerDeclaration(Declaration):
    """A declared layer (see the module docstring for each attribute's role)."""

    input_arg: str | None = None
    input_dim: Any = None
    inputs: Any = 1
    rule: Callable | None = field(default=None, repr=False)
    outputs: Mapping[str, tuple] | None = None
    example: Example | None = None
    onnx: Callable | None = field(default=None, repr=False)
    checked: bool = True
    overrides: dict = field(default_factory=dict)
    excluded: tuple = ()  # constructor arguments kept out of YAML on purpose (``exclude=``)

    @property
    def trial(self) -> bool:
        """True when the output shape comes from a trial run instead of a rule."""
        return self.rule is None

    @property
    def merges(self) -> bool:
        """True for layers that take two or more inputs (merge layers, or a fixed count such as a decoder's 2)."""
        return self.inputs != 1

    def complete(self, args: Mapping) -> dict:
        """``args`` with every default filled in (what the shape rule reads)."""
        return {**self.defaults(), **args}

    def infer(self, args: Mapping, *shapes: Shape) -> Inferred:
        """The shape rule on complete arguments; raises ShapeProblem."""
        out = self.rule(self.complete(args), *[tuple(s) for s in shapes])
        if not isinstance(out, Inferred):
            raise DeclarationError(f"layer '{self.name}': infer_shape returned {type(out).__name__}, "
                                   "not an Inferred")
        return out

    def input_value(self, shape: Shape):
        """The value of the shape-filled argument for a per-sample input ``shape``."""
        if callable(self.input_dim):
            return self.input_dim(tuple(shape))
        return shape[self.input_dim if self.input_dim is not None else 0]


LAYERS = Registry("layer", "layer type")


def _rule_of(cls) -> Callable | None:
    rule = getattr(cls, "infer_shape", None)
    return rule if callable(rule) else None


def layer(name: str, *, args=None, defaults=None, exclude=(), docs=None, check=None, input_arg: str | None = None,
          input_dim=None, inputs=1, outputs=None, example: Example | None = None, onnx=None,
          trial_shape: bool = False, doc: str | None = None):
    """Class decorator: declare a Module class as the YAML layer ``name`` (see the module docstring).

    Args:
        name: the snake_case YAML name.
        args: value specs of constructor arguments whose annotation does not say enough.
        defaults: trainkit's defaults where PyTorch's would surprise (softmax's ``dim: 1``).
        exclude: constructor arguments YAML may not set (``dtype`` always).
        docs: one line per argument where the class docstring's ``Args:`` has none.
        check: ``check(args, path, checker)``, a cross-argument check.
        input_arg: the argument the builder fills from the input shape (``in_features``).
        input_dim: which per-sample dimension gives it (-1 last, 0 channels), or a
            function of the per-sample shape (a LayerNorm's ``[shape[-1]]``).
        inputs: 1, ``"many"`` for merge layers (two or more inputs), or an exact count such as 2
            (a transformer decoder's target and memory).
        outputs: names of a multi-output layer's outputs -> index paths into its result.
        example: the call its gradient check and docs use (default: no arguments, input (3, 4)).
        onnx: the ONNX export rule, ``onnx(layer, g, *input_names) -> output name(s)``.
        trial_shape: no shape rule: find the output by running the layer once (custom layers).
    """
    def decorate(cls):
        LAYERS.add(_make_layer(name, cls, args=args, defaults=defaults, exclude=exclude, docs=docs, check=check,
                               input_arg=input_arg, input_dim=input_dim, inputs=inputs, outputs=outputs,
                               example=example, onnx=onnx, trial_shape=trial_shape, doc=doc))
        return cls
    return decorate


def _make_layer(name, cls, *, args=None, defaults=None, exclude=(), docs=None, check=None, input_arg=None,
                input_dim=None, inputs=1, outputs=None, example=None, onnx=None, trial_shape=False, doc=None,
                checked=True) -> LayerDeclaration:
    where = f"layer '{name}' ({getattr(cls, '__qualname__', cls)})"
    rule = _rule_of(cls)
    if rule is None and not trial_shape:
        raise DeclarationError(f"{where} has no shape rule: give it a static method "
                               "infer_shape(args, *input_shapes) -> Inferred (or declare trial_shape=True "
                               "to find its shape by running it once)")
    if not (inputs in (1, "many") or (type(inputs) is int and inputs >= 2)):
        raise DeclarationError(f"{where}: inputs must be 1, 'many' or a count >= 2, not {inputs!r}")
    if checked:
        arguments = read_arguments("layer", name, cls, args=args, defaults=defaults, exclude=exclude, docs=docs)
    else:
        arguments = _unchecked_arguments(cls)
    if input_arg is not None and input_arg not in arguments:
        raise DeclarationError(f"{where}: input_arg '{input_arg}' is not one of its arguments")
    if input_arg is not None and input_dim is None:
        input_dim = INPUT_ARG_NAMES.get(input_arg, 0)
    required = [k for k, a in arguments.items() if a.default is REQUIRED and k != input_arg]
    if example is None:
        if required and checked and not trial_shape:
            raise DeclarationError(f"{where}: give example=Example(input_shape, {{...}}) with its required "
                                   f"argument(s) {', '.join(required)} (its gradient check runs it)")
        example = Example() if not trial_shape else None
    overrides = dict(defaults or {})
    return LayerDeclaration("layer", name, cls, arguments, doc or first_line(cls.__doc__), check, input_arg,
                            input_dim, inputs, None if trial_shape else rule, dict(outputs) if outputs else None,
                            example, onnx, checked, overrides, tuple(exclude))


def _unchecked_arguments(cls) -> dict[str, Argument]:
    """A custom class's arguments by name only: YAML values go to its constructor as written."""
    sig = constructor(cls)
    out = {}
    for p in (sig.parameters.values() if sig is not None else ()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("dtype", "device"):
            continue
        out[p.name] = Argument(p.name, Raw(), REQUIRED if p.default is p.empty else p.default)
    return out


def accepts_any_keyword(cls) -> bool:
    """Whether ``cls``'s constructor takes ``**kwargs`` (then any YAML argument name is passed on)."""
    sig = constructor(cls)
    return sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def custom_declaration(name: str, cls, input_arg: str | None = None, input_dim=None) -> LayerDeclaration:
    """A declaration for an undeclared ``module:Class`` layer: trial shapes, argument names from the signature."""
    if input_arg is None:
        input_arg, input_dim = guess_input_arg(cls)
    return _make_layer(name, cls, input_arg=input_arg, input_dim=input_dim, trial_shape=_rule_of(cls) is None,
                       checked=False)


def guess_input_arg(cls) -> tuple[str | None, int | None]:
    """The constructor argument of ``cls`` that takes the input size, by its conventional name."""
    sig = constructor(cls)
    params = sig.parameters if sig is not None else {}
    for arg, dim in INPUT_ARG_NAMES.items():
        if arg in params:
            return arg, dim
    return None, None


def register_layer(name: str, *, input_arg: str | None = None, input_dim: int | None = None, onnx=None):
    """Class decorator: make an ``nn.Module`` subclass usable in YAML as ``name`` (user code).

    The short form of :func:`layer` for your own layers: arguments go to the
    constructor as written, the input size fills ``input_arg`` (default: an
    ``in_features``/``in_channels``/``num_features`` argument), and the output
    shape comes from the class's ``infer_shape`` when it has one, else from one
    trial run on a zero batch of one sample. ``onnx`` is its ONNX export rule,
    ``onnx(layer, g, *input_names) -> output name(s)`` (a ``to_onnx(self, g, *inputs)``
    method of the class serves as well; see :mod:`trainkit.onnx`).

    Example::

        @trainkit.register_layer("residual")
        class Residual(nn.Module):
            def __init__(self, in_channels, hidden=16): ...
    """
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum() or not name[0].isalpha() \
            or name != name.lower():
        raise ValueError(f"register_layer: name must be snake_case letters, digits and '_', got {name!r}")
    old = LAYERS.get(name)
    if old is not None and old.checked:
        raise ValueError(f"register_layer: {name!r} is a built-in layer name; choose another")

    def decorate(cls):
        if not (isinstance(cls, type) and callable(getattr(cls, "forward", None))
                and callable(getattr(cls, "parameters", None))):
            raise TypeError(f"register_layer({name!r}) decorates nn.Module subclasses, got {cls!r}")
        decl = custom_declaration(name, cls, input_arg, input_dim)
        decl.onnx = onnx
        try:
            LAYERS.add(decl)
        except DeclarationError as e:
            raise ValueError(f"register_layer: {e}") from None
        return cls

    return decorate


# ----------------------------------------------------------------------------- helpers for shape rules
def fmt(shape: Shape) -> str:
    """``(3, 32, 32)`` -> ``3x32x32``; a scalar per sample is ``scalar``; an unknown size is ``?``."""
    return "x".join("?" if s is None else str(s) for s in shape) if shape else "scalar"


def pair(v) -> tuple:
    """``3`` -> ``(3, 3)``; a list or tuple of two stays two."""
    return (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, v)


def need_rank(name: str, shape: Shape, ranks: tuple[int, ...], want: str, hint: str = "") -> None:
    """Raise ShapeProblem unless ``shape`` has one of ``ranks`` dimensions."""
    if len(shape) not in ranks:
        raise ShapeProblem(f"{name} needs {want} input per sample, found {fmt(shape)}{hint}")


def need_image(name: str, shape: Shape) -> None:
    """Raise ShapeProblem unless the sample is ``(channels, height, width)``."""
    hint = " (it comes after a flatten or a linear layer?)" if len(shape) == 1 else ""
    need_rank(name, shape, (3,), "(channels, height, width)", hint)


def window(shape: Shape, kernel, stride, padding) -> tuple[int, int]:
    """Output (H, W) of a sliding window over ``(C, H, W)``; a kernel larger than its padded input is an error."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    h, w = shape[1], shape[2]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        pad = f" plus padding {ph}" if (ph or pw) else ""
        raise ShapeProblem(f"kernel {kh}x{kw} is larger than its {h}x{w} input{pad}", "kernel_size")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def batched_dim(key: str, dim: int, shape: Shape) -> int:
    """A PyTorch (batched) dimension index checked against a per-sample shape; returns it in [0, rank)."""
    rank = len(shape) + 1
    if not -rank <= dim < rank:
        raise ShapeProblem(f"dim {dim} is out of range for input of {rank} dimensions (batch, {fmt(shape)})", key)
    return dim % rank


def numel(shape: Shape) -> int:
    """Elements of one sample."""
    return math.prod(shape)


def same_shape(args, x: Shape) -> Inferred:
    """The shape rule of an elementwise layer (activations): the output is shaped like the input.

    Use it as ``infer_shape = staticmethod(same_shape)`` in the layer class.
    """
    return Inferred(tuple(x))
