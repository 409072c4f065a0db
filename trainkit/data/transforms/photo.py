"""Transforms for real photos: resize, center crop, random resized crop, colour jitter, random rotation.

torchvision's classes, arguments and defaults, working on trainkit's layout:
a batch (N, C, H, W) of uint8 or float images, or one (C, H, W) sample (an
array, a Tensor, or a PIL image, which becomes a uint8 array). Each batch is
handled by a few vectorised numpy calls, with every sample's own random
parameters (crop box, jitter factors and order, angle); see
:mod:`.resample` for the arithmetic. uint8 stays uint8 (rounded), floats
become float32.

In a config the random ones run on the training batches only, first, on the
uint8 images (see :mod:`trainkit.data.build`); ``resize`` and ``center_crop``
run on every batch. A ``random_resized_crop`` without ``size`` keeps the size
of what it receives, which is what makes it combine with a later
``center_crop``/``resize`` in either order.
"""
from __future__ import annotations

import enum
from typing import Any, Sequence

import numpy as np

from trainkit.registry import SIZE, AnyOf, Bool, Float, Int, ListOf, Nullable, ShapeProblem, Str, pair, transform

from .base import Transform, _RandomTransform, as_array
from .resample import axis_weights, grayscale, hsv_to_rgb, resample, rgb_to_hsv, rotate

__all__ = ["InterpolationMode", "Resize", "CenterCrop", "RandomResizedCrop", "ColorJitter", "RandomRotation"]


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names (``InterpolationMode.BILINEAR``); plain strings work too."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


_RESIZE_MODES = ("nearest", "bilinear", "bicubic")
_ROTATE_MODES = ("nearest", "bilinear")


def _mode(value: Any, allowed: tuple[str, ...], who: str) -> str:
    name = value.value if isinstance(value, enum.Enum) else str(value)
    if name not in allowed:
        raise ValueError(f"{who}: interpolation must be one of {', '.join(allowed)}, got {value!r}")
    return name


def _size(size: Any, who: str) -> tuple[int, ...]:
    """``32`` -> (32,) (the shorter side), ``[h, w]`` -> (h, w)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        out = (int(size),)
    elif isinstance(size, (list, tuple)) and len(size) in (1, 2):
        out = tuple(int(s) for s in size)
    else:
        raise ValueError(f"{who}: size must be an int or a sequence of one or two ints, got {size!r}")
    if min(out) < 1:
        raise ValueError(f"{who}: size must be positive, got {size!r}")
    return out


class _Photo(Transform):
    """Photo transforms take (C, H, W) / (N, C, H, W); a grey (H, W) sample gains its channel axis."""

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = as_array(x)
        if x.ndim == 3:  # (N, H, W) grey
            return self._apply(x[:, None], rng)[:, 0]
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects images (N, C, H, W), got shape {x.shape}")
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            x = x.astype(np.float32)
        return self._apply(x, rng)

    def _apply(self, x: np.ndarray, rng) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def resized_shape(h: int, w: int, size: tuple[int, ...], max_size: int | None) -> tuple[int, int]:
    """The (height, width) torchvision's ``Resize(size, max_size)`` gives an h x w image."""
    if len(size) == 2:
        return size[0], size[1]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size[0], int(size[0] * long / short)
    if max_size is not None:
        if max_size <= size[0]:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the requested size {size[0]}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


@transform("resize", args={"size": SIZE, "interpolation": Str(_RESIZE_MODES, "interpolation"),
                           "max_size": Nullable(Int(lo=1)), "antialias": Bool()},
           defaults={"interpolation": "bilinear"}, image_only=True)
class Resize(_Photo):
    """Resize images to ``size``: an int matches the shorter side (aspect ratio kept), [h, w] is exact.

    Args:
        size: an int (the shorter side becomes this) or [height, width].
        interpolation: nearest, bilinear or bicubic (an ``InterpolationMode`` too).
        max_size: with an int ``size``, the longer side's limit.
        antialias: widen the filter when shrinking (as PIL and torchvision's default).
    """

    def __init__(self, size: int | Sequence[int], interpolation: Any = "bilinear", max_size: int | None = None,
                 antialias: bool = True):
        self.size = _size(size, "Resize")
        self.interpolation = _mode(interpolation, _RESIZE_MODES, "Resize")
        self.max_size = max_size
        if max_size is not None and len(self.size) == 2:
            raise ValueError("Resize: max_size applies only when size is one int")
        self.antialias = bool(antialias)
        self._weights: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _apply(self, x, rng):
        h, w = x.shape[-2:]
        th, tw = resized_shape(h, w, self.size, self.max_size)
        if (th, tw) == (h, w):
            return x.copy() if x.dtype == np.uint8 else x.astype(np.float32)
        key = (h, w)
        if key not in self._weights:  # one pair of matrices per input size
            self._weights[key] = (axis_weights(h, th, kind=self.interpolation, antialias=self.antialias)[0],
                                  axis_weights(w, tw, kind=self.interpolation, antialias=self.antialias)[0])
        wy, wx = self._weights[key]
        return resample(x, wy, wx)

    def __repr__(self) -> str:
        size = self.size[0] if len(self.size) == 1 else list(self.size)
        return (f"Resize(size={size}, interpolation={self.interpolation}, max_size={self.max_size}, "
                f"antialias={self.antialias})")

    @staticmethod
    def output_shape(args, shape, data):
        """(C, H, W) -> (C, h, w) as torchvision computes it."""
        if None in shape[1:]:
            return shape
        size = _size(args["size"], "resize")
        if args["max_size"] is not None and len(size) == 1 and args["max_size"] <= size[0]:
            raise ShapeProblem(f"max_size {args['max_size']} must be greater than size {size[0]}", "max_size")
        if args["max_size"] is not None and len(size) == 2:
            raise ShapeProblem("max_size applies only when size is one integer", "max_size")
        return (shape[0],) + resized_shape(shape[1], shape[2], size, args["max_size"])


def _crop_offsets(h: int, w: int, th: int, tw: int) -> tuple[int, int]:
    # Python's round (half to even), as torchvision's center_crop.
    return int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))


@transform("center_crop", args={"size": SIZE}, image_only=True)
class CenterCrop(_Photo):
    """Cut the central ``size`` window of each image (zero-padded first when the image is smaller).

    Args:
        size: an int (square) or [height, width].
    """

    def __init__(self, size: int | Sequence[int]):
        s = _size(size, "CenterCrop")
        self.size = (s[0], s[0]) if len(s) == 1 else s

    def _apply(self, x, rng):
        th, tw = self.size
        h, w = x.shape[-2:]
        if th > h or tw > w:
            pad = [(0, 0), (0, 0), ((th - h) // 2 if th > h else 0, (th - h + 1) // 2 if th > h else 0),
                   ((tw - w) // 2 if tw > w else 0, (tw - w + 1) // 2 if tw > w else 0)]
            x = np.pad(x, pad)
            h, w = x.shape[-2:]
        top, left = _crop_offsets(h, w, th, tw)
        return np.ascontiguousarray(x[..., top:top + th, left:left + tw])

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"

    @staticmethod
    def output_shape(args, shape, data):
        """(C, H, W) -> (C, size)."""
        return (shape[0],) + tuple(pair(args["size"]))


_PAIR = ListOf(Float(lo=0, lo_open=True), length=2)


def _check_rrc(args, path, ck) -> None:
    for key in ("scale", "ratio"):
        lo, hi = args[key]
        if lo > hi:
            ck.error(path + (key,), f"must be [min, max] with min <= max, found {args[key]}")
    if args["scale"][1] > 1:
        ck.error(path + ("scale",), f"is a share of the image's area, at most 1; found {args['scale']}")


@transform("random_resized_crop", args={"size": Nullable(SIZE), "scale": _PAIR, "ratio": _PAIR,
                                        "interpolation": Str(_RESIZE_MODES, "interpolation"), "antialias": Bool()},
           defaults={"size": None, "interpolation": "bilinear"}, check=_check_rrc, image_only=True)
class RandomResizedCrop(_RandomTransform, _Photo):
    """Crop a random box of each image (its area a random share ``scale``, aspect ratio ``ratio``) and
    resize it to ``size``, as torchvision's (10 tries, then the central box).

    Args:
        size: output size, an int (square) or [height, width]; null (a config's default): the size it receives.
        scale: range of the box's share of the image's area.
        ratio: range of the box's aspect ratio (width / height), drawn log-uniformly.
        interpolation: nearest, bilinear or bicubic.
        antialias: widen the filter when shrinking.
    """

    def __init__(self, size: int | Sequence[int] | None, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0), interpolation: Any = "bilinear",
                 antialias: bool = True, seed: int | None = None):
        super().__init__(seed)
        if size is not None:
            s = _size(size, "RandomResizedCrop")
            size = (s[0], s[0]) if len(s) == 1 else s
        self.size = size
        self.scale, self.ratio = tuple(float(v) for v in scale), tuple(float(v) for v in ratio)
        if len(self.scale) != 2 or len(self.ratio) != 2 or self.scale[0] > self.scale[1] \
                or self.ratio[0] > self.ratio[1] or min(self.ratio) <= 0 or self.scale[0] < 0:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max) ranges, got {scale}, {ratio}")
        self.interpolation = _mode(interpolation, _RESIZE_MODES, "RandomResizedCrop")
        self.antialias = bool(antialias)

    def boxes(self, n: int, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(top, left, height, width) per sample, each (n,), by torchvision's ``get_params`` rule."""
        area = h * w
        log_ratio = np.log(self.ratio)
        target = area * rng.uniform(self.scale[0], self.scale[1], size=(n, 10))
        aspect = np.exp(rng.uniform(log_ratio[0], log_ratio[1], size=(n, 10)))
        bw = np.round(np.sqrt(target * aspect)).astype(np.int64)
        bh = np.round(np.sqrt(target / aspect)).astype(np.int64)
        ok = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)
        first = np.argmax(ok, axis=1)
        found = ok[np.arange(n), first]
        bw, bh = bw[np.arange(n), first], bh[np.arange(n), first]
        # Where no try fits: the central box with the ratio clamped into range.
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fw, fh = int(round(h * self.ratio[1])), h
        else:
            fw, fh = w, h
        bw, bh = np.where(found, bw, fw), np.where(found, bh, fh)
        top = np.where(found, rng.integers(0, h - bh + 1), (h - bh) // 2)
        left = np.where(found, rng.integers(0, w - bw + 1), (w - bw) // 2)
        return top, left, bh, bw

    def _apply(self, x, rng):
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        th, tw = self.size if self.size is not None else (h, w)
        top, left, bh, bw = self.boxes(n, h, w, self._rng(rng))
        wy = axis_weights(h, th, top, bh, self.interpolation, self.antialias)
        wx = axis_weights(w, tw, left, bw, self.interpolation, self.antialias)
        return resample(x, wy, wx)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={tuple(round(r, 4) for r in self.ratio)}, "
                f"interpolation={self.interpolation}, antialias={self.antialias})")

    @staticmethod
    def output_shape(args, shape, data):
        """(C, H, W) -> (C, size); without ``size`` the shape is kept."""
        if args["size"] is None:
            return shape
        return (shape[0],) + tuple(pair(args["size"]))


_JITTER = AnyOf((Float(lo=0), ListOf(Float(lo=0), length=2)), "a number >= 0 or a list [min, max]")
_HUE = AnyOf((Float(0, 0.5), ListOf(Float(-0.5, 0.5), length=2)), "a number in [0, 0.5] or a list [min, max]")


def _range(value: Any, name: str, center: float, bound: tuple[float, float], clip_first: bool) -> tuple | None:
    """torchvision's ``_check_input``: a number v -> [center - v, center + v]; None when it changes nothing."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative")
        lo, hi = center - float(value), center + float(value)
        if clip_first:
            lo = max(lo, 0.0)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"ColorJitter: {name} should be a single number or a list/tuple with length 2")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound}, got {[lo, hi]}")
    return None if lo == hi == center else (lo, hi)


def _check_jitter(args, path, ck) -> None:
    for key in ("brightness", "contrast", "saturation", "hue"):
        v = args[key]
        if isinstance(v, list) and v[0] > v[1]:
            ck.error(path + (key,), f"must be [min, max] with min <= max, found {v}")


@transform("color_jitter", args={"brightness": _JITTER, "contrast": _JITTER, "saturation": _JITTER, "hue": _HUE},
           check=_check_jitter, image_only=True)
class ColorJitter(_RandomTransform, _Photo):
    """Randomly change brightness, contrast, saturation and hue, in a random order per image (torchvision's).

    Args:
        brightness: factor drawn from [max(0, 1 - b), 1 + b] (or the [min, max] given); 0: unchanged.
        contrast: factor drawn like brightness, blending with the image's mean grey.
        saturation: factor drawn like brightness, blending with the image's grey version (RGB only).
        hue: shift drawn from [-h, h] (h <= 0.5, a share of the colour wheel) (RGB only).
    """

    def __init__(self, brightness: Any = 0, contrast: Any = 0, saturation: Any = 0, hue: Any = 0,
                 seed: int | None = None):
        super().__init__(seed)
        inf = float("inf")
        self.brightness = _range(brightness, "brightness", 1.0, (0.0, inf), True)
        self.contrast = _range(contrast, "contrast", 1.0, (0.0, inf), True)
        self.saturation = _range(saturation, "saturation", 1.0, (0.0, inf), True)
        self.hue = _range(hue, "hue", 0.0, (-0.5, 0.5), False)

    def _apply(self, x, rng):
        rng = self._rng(rng)
        n, c = x.shape[:2]
        integer = x.dtype == np.uint8
        bound = 255.0 if integer else 1.0
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        # Every sample draws its own order of the four ops and its own factors.
        order = np.argsort(rng.random((n, 4)), axis=1)
        factors = [rng.uniform(r[0], r[1], n) if r is not None else None for r in ranges]
        out = x.astype(np.float32)
        for step in range(4):
            for op in range(4):
                if ranges[op] is None or (op >= 2 and c != 3):
                    continue  # saturation and hue leave grey images alone, as torchvision's
                pick = np.flatnonzero(order[:, step] == op)
                if pick.size:
                    f = factors[op][pick].astype(np.float32)[:, None, None, None]
                    out[pick] = self._op(op, out[pick], f, bound, integer)
        return out.astype(np.uint8) if integer else out

    @staticmethod
    def _op(op: int, img: np.ndarray, f: np.ndarray, bound: float, integer: bool) -> np.ndarray:
        def blend(a, b, ratio):
            mixed = np.clip(ratio * a + (1.0 - ratio) * b, 0.0, bound)
            return np.floor(mixed) if integer else mixed  # uint8 results are truncated, as torchvision's

        if op == 0:
            return blend(img, 0.0, f)
        if op == 1:
            grey = grayscale(img, integer) if img.shape[1] == 3 else img
            return blend(img, grey.mean(axis=(1, 2, 3), keepdims=True), f)
        if op == 2:
            return blend(img, grayscale(img, integer), f)
        hsv = rgb_to_hsv(img / bound if integer else img)
        hsv[:, 0] = np.fmod(hsv[:, 0] + f[:, 0], 1.0)
        hsv[:, 0] = np.where(hsv[:, 0] < 0, hsv[:, 0] + 1.0, hsv[:, 0])
        rgb = hsv_to_rgb(hsv)
        return np.floor(rgb * 255.0) if integer else rgb

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")

    @staticmethod
    def output_shape(args, shape, data):
        """Shape kept; saturation and hue need colour (3-channel) images."""
        bad = [(f"changes colour, but {data} have {shape[0]} channel(s), not 3 (RGB)", k)
               for k in ("saturation", "hue") if shape[0] not in (None, 3) and args[k] not in (0, 0.0, [0, 0])]
        if bad:
            raise ShapeProblem.several(bad)
        return shape


_DEGREES = AnyOf((Float(lo=0), ListOf(Float(), length=2)), "a number >= 0 or a list [min, max]")
_FILL = AnyOf((Float(), ListOf(Float(), min_len=1)), "a number or one per channel")


def _check_rotation(args, path, ck) -> None:
    d = args["degrees"]
    if isinstance(d, list) and d[0] > d[1]:
        ck.error(path + ("degrees",), f"must be [min, max] with min <= max, found {d}")


@transform("random_rotation", args={"degrees": _DEGREES, "interpolation": Str(_ROTATE_MODES, "interpolation"),
                                    "fill": _FILL, "center": Nullable(ListOf(Float(), length=2))},
           defaults={"interpolation": "nearest"}, exclude=("expand",), check=_check_rotation, image_only=True)
class RandomRotation(_RandomTransform, _Photo):
    """Rotate each image by its own random angle in [-degrees, degrees] (counter-clockwise positive).

    Args:
        degrees: a number d for [-d, d], or [min, max] in degrees.
        interpolation: nearest (torchvision's default) or bilinear.
        expand: accepted for torchvision's signature; only False (batches keep one size).
        center: the point turned about, [x, y] in pixels (default: the image centre).
        fill: value of the corners the rotation brings in: one number or one per channel
            (on the image's own scale: 0-255 for uint8).
    """

    def __init__(self, degrees: Any, interpolation: Any = "nearest", expand: bool = False,
                 center: Sequence[float] | None = None, fill: Any = 0, seed: int | None = None):
        super().__init__(seed)
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ValueError("RandomRotation: if degrees is a single number, it must be positive")
            self.degrees = (-float(degrees), float(degrees))
        elif isinstance(degrees, (list, tuple)) and len(degrees) == 2:
            self.degrees = (float(degrees[0]), float(degrees[1]))
        else:
            raise ValueError("RandomRotation: degrees should be a number or a sequence of two numbers")
        if expand:
            raise ValueError("RandomRotation(expand=True) gives each image its own size; trainkit's batches keep "
                             "one size, so only expand=False is supported (follow it with Resize to shrink)")
        self.interpolation = _mode(interpolation, _ROTATE_MODES, "RandomRotation")
        self.expand = False
        self.center = None if center is None else (float(center[0]), float(center[1]))
        self.fill = fill

    def _apply(self, x, rng):
        angles = self._rng(rng).uniform(self.degrees[0], self.degrees[1], x.shape[0])
        fill = np.asarray(self.fill, dtype=np.float32).reshape(-1)
        if fill.size not in (1, x.shape[1]):
            raise ValueError(f"RandomRotation: fill has {fill.size} values for {x.shape[1]}-channel images")
        return rotate(x, angles, self.interpolation, fill, self.center)

    def __repr__(self) -> str:
        return (f"RandomRotation(degrees={list(self.degrees)}, interpolation={self.interpolation}, "
                f"expand=False, fill={self.fill})")

    @staticmethod
    def output_shape(args, shape, data):
        """Shape kept; ``fill`` has one value or one per channel."""
        fill = args["fill"]
        if isinstance(fill, list) and shape[0] is not None and len(fill) not in (1, shape[0]):
            raise ShapeProblem(f"has {len(fill)} values; {data} have {shape[0]} channel(s)", "fill")
        return shape
