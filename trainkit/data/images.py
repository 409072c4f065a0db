"""Decoding image files with Pillow: one checked path from a file on disk to a uint8 (C, H, W) array.

Every image trainkit reads (an ``image_folder`` data set, ``trainkit predict``,
:class:`~trainkit.data.datasets.ImageFolder`'s loader) goes through
:func:`decode_image`, so a file decodes to the same pixels whichever of them
reads it. The file is treated as possibly hostile:

* only regular files are opened (:func:`~trainkit.data.readers.open_regular`),
  and only files of at most :data:`MAX_IMAGE_FILE_BYTES`;
* Pillow is told which formats to try (PNG, JPEG, BMP, WebP): a file that
  claims another format (EPS, which would start Ghostscript, or any of Pillow's
  other plugins) is "not an image" here;
* the pixel count in the header is checked against Pillow's decompression-bomb
  limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485 by default) *before* any
  pixel is decoded, so a 20,000 x 20,000 PNG of a few hundred kilobytes is
  refused without allocating its 400 million pixels;
* modes trainkit cannot take without losing or inventing information (16- and
  32-bit integer or float images, CMYK, YCbCr, LAB, HSV) are refused by name
  with what to convert them to;
* a truncated or corrupt file is refused with Pillow's reason (Pillow's
  ``LOAD_TRUNCATED_IMAGES`` is never set: a half-decoded JPEG would train on grey).

Each refusal is a :class:`BadImage` (a :class:`~trainkit.errors.DataError`)
naming the file, which an image folder either reports (exit code 2) or counts
and skips (``skip_bad_files``).

**Resize policy** (``fit``), applied while decoding so that every image of a
data set has the same ``size``: ``crop`` (the default) scales the image so it
covers the target and cuts the overflow evenly from both sides (aspect ratio
kept; torchvision's ``Resize`` + ``CenterCrop``); ``stretch`` scales each side
to the target independently (aspect ratio changed); ``pad`` scales the image to
fit inside the target and fills the rest with black (letterboxing). Scaling is
Pillow's antialiased bilinear filter (what torchvision's ``Resize`` does to PIL
images). JPEGs are decoded at a reduced scale first (``Image.draft``, the DCT
scaling of libjpeg) when the target is at most half their size, which makes
big photos several times faster to read.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainkit.errors import DataError

from .readers import file_size, open_regular

__all__ = ["IMAGE_EXTENSIONS", "FORMATS", "FITS", "MODES", "MAX_IMAGE_FILE_BYTES", "BadImage", "DataWarning",
           "ImageSpec", "decode_image", "open_image", "is_image_file", "pillow"]

#: File name endings an image folder reads (compared lower-case), as the issue's layout names them.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: The Pillow formats tried when opening; nothing else is.
FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
#: Resize policies (see the module docstring).
FITS = ("crop", "stretch", "pad")
#: Pixel modes a data set can hold: 3 channels or 1.
MODES = ("RGB", "L")
#: Larger image files are refused before reading (the largest camera JPEGs are a few tens of MB).
MAX_IMAGE_FILE_BYTES = 256 << 20

# Source modes that convert to RGB or L without inventing information (alpha is dropped as
# torchvision's pil_loader drops it); the rest are refused with the reason.
_ACCEPTED = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "RGBa", "La"}
_REFUSED = {
    "I;16": "16-bit grey", "I;16B": "16-bit grey", "I;16L": "16-bit grey", "I;16N": "16-bit grey",
    "I": "32-bit integer", "F": "32-bit float", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "LAB", "HSV": "HSV",
}


class BadImage(DataError):
    """An image file that cannot be used: its path and the reason (``reason`` without the path)."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class DataWarning(UserWarning):
    """Something about the data a user should know that does not stop the run (skipped files)."""


def pillow():
    """The ``PIL.Image`` module; a DataError with the install line when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:  # a dependency; only a broken install lacks it
        raise DataError("reading images needs Pillow: pip install pillow") from None
    return Image


def is_image_file(name: str | os.PathLike) -> bool:
    """True when ``name`` ends with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class ImageSpec:
    """How files become samples of one data set: pixel ``mode``, ``size`` (height, width) and ``fit``.

    ``fit`` None means the image must already have ``size`` (a data set whose
    images all come in one size, such as CIFAR: a photo of another size is
    refused instead of resized). ``transpose`` swaps height and width after
    decoding (EMNIST stores its images transposed).
    """

    mode: str
    size: tuple[int, int]
    fit: str | None = "crop"
    transpose: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        """The (C, H, W) shape of a decoded sample."""
        return (3 if self.mode == "RGB" else 1, int(self.size[0]), int(self.size[1]))

    def describe(self) -> str:
        """``64x64 RGB images`` for messages."""
        kind = "RGB (3-channel)" if self.mode == "RGB" else "grey (1-channel)"
        return f"{self.size[0]}x{self.size[1]} {kind} images"


def _pixel_limit(Image) -> int | None:
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else None


def open_image(path: str | os.PathLike):
    """Open ``path`` with Pillow, headers checked, pixels not decoded yet; the caller loads and closes it.

    Raises :class:`BadImage` for a file that is not a regular file, too large,
    not one of :data:`FORMATS`, a decompression bomb, or in a refused mode.
    """
    Image = pillow()
    path = Path(path)
    f = open_regular(path)
    try:
        size = file_size(f)
        if size > MAX_IMAGE_FILE_BYTES:
            raise BadImage(path, f"{size:,} bytes, more than the {MAX_IMAGE_FILE_BYTES:,} an image file may have")
        if size == 0:
            raise BadImage(path, "empty file, not an image")
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it, and raises beyond: both are refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(f, formats=FORMATS)
            except Image.UnidentifiedImageError:
                raise BadImage(path, "not an image (PNG, JPEG, BMP or WebP) that Pillow can read") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise BadImage(path, f"{exc} (a decompression bomb?)") from None
            except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                    ArithmeticError) as exc:
                raise BadImage(path, f"truncated or corrupt image ({type(exc).__name__}: {exc})") from None
        w, h = im.size
        limit = _pixel_limit(Image)
        if w <= 0 or h <= 0:
            raise BadImage(path, f"claims a {w}x{h} image")
        if limit is not None and w * h > limit:
            raise BadImage(path, f"{w}x{h} = {w * h:,} pixels, more than Pillow's limit of {limit:,} "
                                 "(PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)")
        if im.mode in _REFUSED:
            target = "8-bit grey (L) or RGB" if im.mode.startswith(("I", "F")) else "RGB"
            raise BadImage(path, f"{_REFUSED[im.mode]} image (mode {im.mode}); convert it to {target} first")
        if im.mode not in _ACCEPTED:
            raise BadImage(path, f"image mode {im.mode} is not supported; convert it to RGB or L first")
        im._trainkit_file = f  # closed with the image (see _close)
        return im
    except BaseException:
        f.close()
        raise


def _close(im) -> None:
    f = getattr(im, "_trainkit_file", None)
    im.close()
    if f is not None:
        f.close()


def _boxes(w: int, h: int, th: int, tw: int, fit: str):
    """(source box, scaled size, paste offset) of the resize policy ``fit`` for a w x h image."""
    if fit == "stretch":
        return (0.0, 0.0, float(w), float(h)), (tw, th), (0, 0)
    if fit == "crop":
        # The source region with the target's aspect ratio, as large as fits, centred.
        scale = max(tw / w, th / h)
        cw, ch = min(tw / scale, w), min(th / scale, h)  # min: rounding must not reach past the image
        left, top = max((w - cw) / 2.0, 0.0), max((h - ch) / 2.0, 0.0)
        return (left, top, left + cw, top + ch), (tw, th), (0, 0)
    scale = min(tw / w, th / h)  # pad: fit inside, keep the aspect ratio
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    return (0.0, 0.0, float(w), float(h)), (sw, sh), ((tw - sw) // 2, (th - sh) // 2)


def decode_image(path: str | os.PathLike, spec: ImageSpec) -> np.ndarray:
    """The pixels of image file ``path`` as a uint8 (C, H, W) array following ``spec``.

    Raises :class:`BadImage` naming the file for anything that stops it being
    a sample of ``spec`` (see the module docstring), never another exception
    for a bad file.
    """
    Image = pillow()
    th, tw = int(spec.size[0]), int(spec.size[1])
    im = open_image(path)
    try:
        w, h = im.size
        stored = (th, tw) if spec.transpose else (tw, th)  # (width, height) before any transposition
        if spec.fit is None and (w, h) != stored:
            raise BadImage(path, f"{w}x{h} image (width x height); the model takes {spec.describe()}; "
                                 "resize it first")
        if spec.fit is None:
            # A fixed-size data set: no conversion between grey and colour behind the user's back.
            colour = im.mode in ("P", "PA") or len([b for b in im.getbands() if b != "A"]) == 3
            if colour != (spec.mode == "RGB"):
                kind = "3-channel (RGB)" if colour else "1-channel (grey)"
                raise BadImage(path, f"{kind} image; the model takes {spec.describe()}; convert it first")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if im.format == "JPEG" and spec.fit is not None:
                    box, scaled, _ = _boxes(w, h, th, tw, spec.fit)
                    # The reduced size must still cover what the box needs at the target scale.
                    need = (math.ceil(scaled[0] * w / max(box[2] - box[0], 1e-9)),
                            math.ceil(scaled[1] * h / max(box[3] - box[1], 1e-9)))
                    if need[0] * 2 <= w and need[1] * 2 <= h:
                        im.draft("RGB" if spec.mode == "RGB" else "L", need)
                im.load()
                out = _converted(im, spec.mode)
        except BadImage:
            raise
        except MemoryError:
            raise BadImage(path, "too large to decode in memory") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ArithmeticError,
                Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadImage(path, f"truncated or corrupt image ({type(exc).__name__}: {exc})") from None
        # The pixels are decoded: what follows depends only on their size, not on the file.
        if spec.fit is not None:
            out = _resized(Image, out, th, tw, spec.fit)
        arr = np.asarray(out, dtype=np.uint8)
    finally:
        _close(im)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if spec.transpose:
        arr = arr.transpose(0, 2, 1)
    return np.ascontiguousarray(arr)


def _converted(im, mode: str):
    """``im`` in ``mode`` ('RGB' or 'L'); palette and alpha images go through RGB(A) first."""
    if im.mode == mode:
        return im
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    return im.convert(mode)


def _resized(Image, im, th: int, tw: int, fit: str):
    """``im`` (already in its final mode) brought to tw x th under the policy ``fit``."""
    w, h = im.size
    if (w, h) == (tw, th):
        return im
    box, scaled, offset = _boxes(w, h, th, tw, fit)
    out = im.resize(scaled, Image.Resampling.BILINEAR, box=box)
    if fit != "pad":
        return out
    canvas = Image.new(im.mode, (tw, th), 0)
    canvas.paste(out, offset)
    return canvas
