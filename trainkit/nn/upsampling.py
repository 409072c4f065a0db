"""``Upsample``: resize the spatial dimensions by nearest or (bi)linear interpolation (``F.interpolate``)."""
from __future__ import annotations

import math

from trainkit.nn import functional as F
from trainkit.nn.module import Module
from trainkit.registry import (AnyOf, Bool, Example, Float, Inferred, Int, ListOf, Nullable, ShapeProblem, Str, fmt,
                               layer)
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Upsample"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear")
_SPATIAL = {"linear": 1, "bilinear": 2}


def _check(args, path, ck) -> None:
    if (args.get("size") is None) == (args.get("scale_factor") is None):
        ck.error(path, "upsample needs exactly one of size and scale_factor")
    if args.get("align_corners") is not None and args.get("mode") in ("nearest", "nearest-exact"):
        ck.error(path + ("align_corners",), "align_corners only goes with the linear and bilinear modes")


@layer("upsample", check=_check,
       args={"size": Nullable(AnyOf((Int(lo=1), ListOf(Int(lo=1))), "an integer >= 1 or a list of them")),
             "scale_factor": Nullable(AnyOf((Float(lo=0, lo_open=True), ListOf(Float(lo=0, lo_open=True))),
                                            "a number > 0 or a list of them")),
             "mode": Str(_MODES, "mode"), "align_corners": Nullable(Bool()),
             "recompute_scale_factor": Nullable(Bool())},
       example=Example((1, 2, 3, 2), {"scale_factor": 2, "mode": "bilinear"}, name="Upsample(2,bilinear)"), onnx=_onnx.upsample)
class Upsample(Module):
    """Upsample ``(N, C, L)`` or ``(N, C, H, W)`` input to ``size`` or by ``scale_factor``.

    Args:
        size: output spatial size (int, or one per spatial dimension).
        scale_factor: multiplier of the spatial size (number, or one per dimension).
        mode: ``'nearest'``, ``'nearest-exact'``, ``'linear'`` (3-D input) or ``'bilinear'`` (4-D input).
        align_corners: with the linear modes, align the corner pixels (PyTorch's default False).
        recompute_scale_factor: compute the interpolation from the output size instead of ``scale_factor``.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, floor(H*scale), floor(W*scale))`` or ``(N, C, *size)``.
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):  # noqa: A002
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, *spatial) -> (C, *size)`` or ``(C, *floor(spatial * scale_factor))``."""
        if len(x) not in (2, 3):
            raise ShapeProblem(f"upsample needs (channels, length) or (channels, height, width) input per sample, "
                               f"found {fmt(x)}")
        spatial = x[1:]
        want = _SPATIAL.get(args["mode"])
        if want is not None and want != len(spatial):
            raise ShapeProblem(f"mode {args['mode']} needs {want} spatial dimension(s), the input has "
                               f"{len(spatial)}", "mode")
        size, scale = args["size"], args["scale_factor"]
        if size is not None:
            out = tuple(size) if isinstance(size, list) else (size,) * len(spatial)
            key = "size"
        else:
            out = tuple(int(math.floor(n * s)) for n, s in
                        zip(spatial, scale if isinstance(scale, list) else [scale] * len(spatial)))
            key = "scale_factor"
        if len(out) != len(spatial):
            raise ShapeProblem(f"{len(out)} sizes for {len(spatial)} spatial dimension(s)", key)
        if min(out) < 1:
            raise ShapeProblem(f"the output would be empty ({fmt(out)})", key)
        return Inferred((x[0],) + out, macs=x[0] * math.prod(out) * (2 ** len(out) if want else 0))
