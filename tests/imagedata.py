"""Image folders for tests: shapes drawn with Pillow, and broken image files of every kind."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def draw_shape(kind: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """An RGB picture of one shape: random colours, position, size (and for some, a non-square canvas)."""
    w = size + int(rng.integers(-8, 9))
    h = size + int(rng.integers(-8, 9))
    # Dark backgrounds and bright shapes, every colour its own: the shape, not a colour, tells the class.
    bg = tuple(int(v) for v in rng.integers(0, 90, 3))
    fg = tuple(int(v) for v in rng.integers(150, 256, 3))
    im = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(im)
    r = int(rng.integers(size // 5, size // 3))
    cx = int(rng.integers(r + 2, w - r - 2))
    cy = int(rng.integers(r + 2, h - r - 2))
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return im


def write_shapes(root: Path, per_class: int, seed: int = 0, size: int = 48, classes=CLASSES) -> Path:
    """``root/<class>/<i>.png|jpg``: ``per_class`` pictures of each class, alternately PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = Path(root) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = draw_shape(kind, rng, size)
            if i % 2:
                im.save(folder / f"{kind}_{i:04d}.jpg", quality=92)
            else:
                im.save(folder / f"{kind}_{i:04d}.png")
    return Path(root)


def png_bytes(width: int, height: int, row: bytes | None = None, level: int = 6) -> bytes:
    """A valid 8-bit grey PNG of width x height, compressed row by row (a 20,000 x 20,000 one is a few
    hundred KB and never exists in memory uncompressed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw_row = b"\x00" + (row if row is not None else bytes(width))
    comp = zlib.compressobj(level)
    parts = [comp.compress(raw_row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def truncated_jpeg(rng: np.random.Generator | None = None) -> bytes:
    """The first half of a valid JPEG."""
    import io

    buf = io.BytesIO()
    draw_shape("circle", rng or np.random.default_rng(1)).save(buf, format="JPEG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def image_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    """``im`` encoded in ``fmt``."""
    import io

    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()
