"""Layer arguments and output shapes of the built-in layers, computed without running them.

Shapes here are *per sample* (no batch dimension): CIFAR images are
``(3, 32, 32)``, iris rows ``(4,)``. Arguments that name a dimension
(``flatten``'s ``start_dim``, ``concat``'s ``dim``, ``softmax``'s ``dim``) keep
PyTorch's batched meaning, where dimension 0 is the batch.

``ARG_SPECS`` gives the type and range of every YAML argument of each built-in
layer; :func:`infer` gives a layer's output shape, its multiply-adds per
sample and the input-size arguments it fills in, or raises :class:`ShapeProblem`
naming the argument at fault.
"""
from __future__ import annotations

import math

from trainkit.config.spec import (AnyOf, Bool, Float, Int, ListOf, Nullable, Str)

Shape = tuple[int, ...]

_SIZE = AnyOf((Int(lo=1), ListOf(Int(lo=1), length=2)), "an integer >= 1 or a list [height, width]")
_PAD = AnyOf((Int(lo=0), ListOf(Int(lo=0), length=2)), "an integer >= 0 or a list [height, width]")
_CONV_PAD = AnyOf((Int(lo=0), ListOf(Int(lo=0), length=2), Str(("same", "valid"), "padding")),
                  "an integer >= 0, a list [height, width], 'same' or 'valid'")
_BN = {"num_features": Int(lo=1), "eps": Float(lo=0, lo_open=True),
       "momentum": Nullable(Float(0, 1)), "affine": Bool(), "track_running_stats": Bool(),
       "bias": Bool()}

#: Built-in layer -> {argument: spec}. Arguments the constructor takes but
#: that are missing here (``dtype``) are not allowed in YAML.
ARG_SPECS = {
    "linear": {"in_features": Int(lo=1), "out_features": Int(lo=1), "bias": Bool()},
    "conv2d": {"in_channels": Int(lo=1), "out_channels": Int(lo=1), "kernel_size": _SIZE,
               "stride": _SIZE, "padding": _CONV_PAD, "bias": Bool()},
    "maxpool2d": {"kernel_size": _SIZE, "stride": Nullable(_SIZE), "padding": _PAD},
    "avgpool2d": {"kernel_size": _SIZE, "stride": Nullable(_SIZE), "padding": _PAD,
                  "count_include_pad": Bool()},
    "adaptive_avgpool2d": {"output_size": _SIZE},
    "global_avgpool": {},
    "batchnorm1d": dict(_BN),
    "batchnorm2d": dict(_BN),
    "dropout": {"p": Float(0, 1, hi_open=True), "inplace": Bool()},
    "flatten": {"start_dim": Int(), "end_dim": Int()},
    "identity": {},
    "relu": {"inplace": Bool()},
    "leaky_relu": {"negative_slope": Float(), "inplace": Bool()},
    "gelu": {"approximate": Str(("none", "tanh"), "approximate")},
    "sigmoid": {},
    "tanh": {},
    "softmax": {"dim": Int()},
    "log_softmax": {"dim": Int()},
}

#: Merge nodes of the graph form: name -> {argument: spec}.
MERGE_SPECS = {"add": {}, "mul": {}, "concat": {"dim": Int()}}

#: Defaults trainkit fills in where PyTorch's would warn or surprise (documented in docs/config.md):
#: softmax over dimension 1, the class dimension of ``(N, C)`` and ``(N, C, H, W)``.
FILLED_DEFAULTS = {"softmax": {"dim": 1}, "log_softmax": {"dim": 1}, "concat": {"dim": 1}}


class ShapeProblem(Exception):
    """A layer cannot take its input: ``key`` is the argument at fault (or None for the layer)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key


def fmt(shape: Shape) -> str:
    """``(3, 32, 32)`` -> ``3x32x32``; a scalar per sample is ``scalar``."""
    return "x".join(str(s) for s in shape) if shape else "scalar"


def _pair(v) -> tuple[int, int]:
    return (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, v)


def _need_image(typ: str, s: Shape) -> None:
    if len(s) != 3:
        hint = " (it comes after a flatten or a linear layer?)" if len(s) == 1 else ""
        raise ShapeProblem(f"{typ} needs (channels, height, width) input per sample, found {fmt(s)}{hint}")


def _window(typ, s, kernel, stride, padding, dilation_ok=True) -> tuple[int, int]:
    """Output (H, W) of a sliding window; a kernel larger than its padded input is an error."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    h, w = s[1], s[2]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        pad = f" plus padding {ph}" if (ph or pw) else ""
        raise ShapeProblem(f"kernel {kh}x{kw} is larger than its {h}x{w} input{pad}", "kernel_size")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _batched_dim(typ: str, key: str, dim: int, s: Shape) -> int:
    """A PyTorch (batched) dimension index, checked against a per-sample shape."""
    rank = len(s) + 1
    if not -rank <= dim < rank:
        raise ShapeProblem(f"dim {dim} is out of range for input of {rank} dimensions "
                           f"(batch, {fmt(s)})", key)
    return dim % rank


def infer(typ: str, args: dict, in_shapes: list[Shape]) -> tuple[Shape, int, dict]:
    """``(output shape, multiply-adds per sample, filled args)`` of a built-in layer or merge node.

    ``args`` are the validated YAML arguments; the returned ``filled`` dict
    holds the input-size arguments inferred from ``in_shapes`` (and filled defaults).
    """
    if typ in MERGE_SPECS:
        return _merge(typ, args, in_shapes)
    s = in_shapes[0]
    filled: dict = {}

    def input_size(key: str, value: int) -> None:
        given = args.get(key)
        if given is not None and given != value:
            raise ShapeProblem(f"{key} is {given} but the input gives {value} (input {fmt(s)} per sample); "
                               f"leave {key} out to infer it", key)
        filled[key] = value

    if typ == "linear":
        if len(s) == 0:
            raise ShapeProblem("linear needs a feature dimension; the input is one number per sample")
        if len(s) >= 3:
            raise ShapeProblem(f"linear acts on the last dimension only, and its input is {fmt(s)} "
                               "per sample (an image); add 'flatten' or 'global_avgpool' before it")
        input_size("in_features", s[-1])
        out = args["out_features"]
        return s[:-1] + (out,), s[-1] * out * math.prod(s[:-1]), filled
    if typ == "conv2d":
        _need_image(typ, s)
        input_size("in_channels", s[0])
        k = _pair(args["kernel_size"])
        pad = args.get("padding", 0)
        stride = _pair(args.get("stride", 1))
        if pad == "same" and stride != (1, 1):
            raise ShapeProblem("padding 'same' needs stride 1", "padding")
        if pad == "same" and (k[0] % 2 == 0 or k[1] % 2 == 0):
            raise ShapeProblem(f"padding 'same' needs odd kernel sizes, found {k[0]}x{k[1]}", "padding")
        pad = (k[0] // 2, k[1] // 2) if pad == "same" else (0, 0) if pad == "valid" else pad
        h, w = _window(typ, s, k, stride, pad)
        out_c = args["out_channels"]
        return (out_c, h, w), out_c * h * w * s[0] * k[0] * k[1], filled
    if typ in ("maxpool2d", "avgpool2d"):
        _need_image(typ, s)
        k = _pair(args["kernel_size"])
        stride = args.get("stride") or args["kernel_size"]
        pad = _pair(args.get("padding", 0))
        if pad[0] > k[0] // 2 or pad[1] > k[1] // 2:
            raise ShapeProblem(f"padding {list(pad)} must be at most half the kernel {k[0]}x{k[1]}",
                               "padding")
        h, w = _window(typ, s, k, stride, pad)
        return (s[0], h, w), 0, filled
    if typ == "adaptive_avgpool2d":
        _need_image(typ, s)
        oh, ow = _pair(args["output_size"])
        return (s[0], oh, ow), 0, filled
    if typ == "global_avgpool":
        _need_image(typ, s)
        return (s[0],), 0, filled
    if typ in ("batchnorm1d", "batchnorm2d"):
        ranks = (1, 2) if typ == "batchnorm1d" else (3,)
        if len(s) not in ranks:
            want = "(features,) or (channels, length)" if typ == "batchnorm1d" else "(channels, height, width)"
            other = " (use batchnorm2d for images)" if typ == "batchnorm1d" and len(s) == 3 else \
                " (use batchnorm1d for features)" if typ == "batchnorm2d" and len(s) in (1, 2) else ""
            raise ShapeProblem(f"{typ} needs {want} input per sample, found {fmt(s)}{other}")
        input_size("num_features", s[0])
        return s, math.prod(s), filled  # one multiply-add per element at inference
    if typ == "flatten":
        start = _batched_dim(typ, "start_dim", args.get("start_dim", 1), s)
        end = _batched_dim(typ, "end_dim", args.get("end_dim", -1), s)
        if start == 0:
            raise ShapeProblem("start_dim 0 would merge the batch dimension into the features",
                               "start_dim")
        if start > end:
            raise ShapeProblem(f"start_dim {args.get('start_dim', 1)} comes after end_dim "
                               f"{args.get('end_dim', -1)}", "start_dim")
        a, b = start - 1, end - 1
        return s[:a] + (math.prod(s[a:b + 1]),) + s[b + 1:], 0, filled
    if typ in ("softmax", "log_softmax"):
        dim = args.get("dim", FILLED_DEFAULTS[typ]["dim"])
        if _batched_dim(typ, "dim", dim, s) == 0:
            raise ShapeProblem(f"{typ} over dim 0 mixes the samples of a batch; use dim 1 or -1", "dim")
        filled["dim"] = dim
        return s, 0, filled
    # Elementwise layers: relu, leaky_relu, gelu, sigmoid, tanh, dropout, identity.
    return s, 0, filled


def _merge(typ: str, args: dict, shapes: list[Shape]) -> tuple[Shape, int, dict]:
    if typ in ("add", "mul"):
        first = shapes[0]
        if any(s != first for s in shapes[1:]):
            raise ShapeProblem(f"{typ} needs inputs of equal shape, found "
                               f"{', '.join(fmt(s) for s in shapes)}", "inputs")
        return first, (len(shapes) - 1) * math.prod(first) if typ == "mul" else 0, {}
    dim = args.get("dim", FILLED_DEFAULTS["concat"]["dim"])
    first = shapes[0]
    if any(len(s) != len(first) for s in shapes):
        raise ShapeProblem("concat needs inputs with the same number of dimensions, found "
                           f"{', '.join(fmt(s) for s in shapes)}", "inputs")
    d = _batched_dim(typ, "dim", dim, first)
    if d == 0:
        raise ShapeProblem("concat along dim 0 would join batches, not features; use dim 1 or higher",
                           "dim")
    k = d - 1
    if any(s[:k] + s[k + 1:] != first[:k] + first[k + 1:] for s in shapes):
        raise ShapeProblem(f"concat along dim {dim} needs the other dimensions equal, found "
                           f"{', '.join(fmt(s) for s in shapes)}", "inputs")
    return first[:k] + (sum(s[k] for s in shapes),) + first[k + 1:], 0, {"dim": dim}
