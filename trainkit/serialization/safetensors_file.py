"""The safetensors file format, read safely: the header is validated before any data is read.

Shared by checkpoints (``trainkit.train.checkpoint``) and ``trainkit.load``: a
header must be UTF-8 JSON of at most :data:`MAX_HEADER_BYTES`, without duplicate
keys, whose tensors cover the data section exactly once with sizes that match
their dtype and shape; only then are the bytes handed to the safetensors package.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.errors import CheckpointError

__all__ = ["MAX_HEADER_BYTES", "DTYPES", "validate_safetensors", "read_safetensors", "require_regular_file",
           "sniff"]

#: Largest safetensors JSON header accepted; real headers are a few KiB.
MAX_HEADER_BYTES = 16 * 1024 * 1024
# safetensors dtype name -> numpy dtype (exactly what safetensors.numpy can load).
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16), "I16": np.dtype(np.int16), "F16": np.dtype(np.float16),
    "U32": np.dtype(np.uint32), "I32": np.dtype(np.int32), "F32": np.dtype(np.float32),
    "U64": np.dtype(np.uint64), "I64": np.dtype(np.int64), "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
}


def sniff(head: bytes) -> str:
    """A hint about what a non-safetensors file probably is."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return " (it looks like a Python pickle; trainkit never unpickles files)"
    if head.startswith(b"PK\x03\x04"):
        return " (it looks like a zip/PyTorch .pt file; export the weights with safetensors)"
    return ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate key(s) {dup}")
    return dict(pairs)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_safetensors(header_bytes: bytes, data_len: int, source: str) -> dict[str, dict]:
    """Check a safetensors JSON header against the data section's length.

    Args:
        header_bytes: the JSON header (the bytes after the 8-byte length).
        data_len: number of bytes after the header.
        source: file name used in error messages.

    Returns:
        ``{tensor name: {"dtype", "shape", "data_offsets"}}`` (no ``__metadata__``).

    Raises:
        CheckpointError: anything that is not a well-formed, self-consistent header.
    """
    def bad(msg: str) -> CheckpointError:
        return CheckpointError(f"{source}: not a valid safetensors file: {msg}")

    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise bad(f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad(f"header is a JSON {type(header).__name__}, expected an object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise bad("__metadata__ must map strings to strings")
    spans = []
    for name, entry in header.items():
        where = f"tensor {name!r}"
        if not isinstance(entry, dict):
            raise bad(f"{where}: entry is not an object")
        missing = {"dtype", "shape", "data_offsets"} - entry.keys()
        if missing:
            raise bad(f"{where}: missing {sorted(missing)}")
        dtype = entry["dtype"]
        if dtype not in DTYPES:
            raise bad(f"{where}: unsupported dtype {dtype!r} (known: {', '.join(DTYPES)})")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"{where}: shape {shape!r} is not a list of non-negative integers")
        offs = entry["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs)):
            raise bad(f"{where}: data_offsets {offs!r} is not a pair of integers")
        begin, end = offs
        if not 0 <= begin <= end:
            raise bad(f"{where}: data_offsets {offs} are not increasing non-negative")
        if end > data_len:
            raise bad(
                f"{where}: data_offsets {offs} reach past the end of the data "
                f"({data_len} bytes; the file is truncated or the header is wrong)"
            )
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize
        if end - begin != nbytes:
            raise bad(
                f"{where}: data_offsets {offs} span {end - begin} bytes but "
                f"{dtype} x {shape} needs {nbytes}"
            )
        spans.append((begin, end, name))
    # The data must be covered exactly once: no overlaps (aliasing) and no hidden gaps.
    pos = 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise bad(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap another tensor")
        if begin > pos:
            raise bad(f"tensor {name!r}: gap of {begin - pos} unused bytes before its data")
        pos = end
    if pos != data_len:
        raise bad(f"{data_len - pos} trailing bytes after the last tensor")
    return header


def _read_safetensors_bytes(path: Path) -> bytes:
    """Read a safetensors file, validating its header before reading the data."""
    src = str(path)
    try:
        require_regular_file(path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if size < 8:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: only {size} bytes{sniff(head)}"
                )
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: header length {n} bytes exceeds "
                    f"the {MAX_HEADER_BYTES // (1024 * 1024)} MiB limit{sniff(head)}"
                )
            if n > size - 8:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: header length {n} is larger than "
                    f"the rest of the file ({size - 8} bytes){sniff(head)}"
                )
            header_bytes = f.read(n)
            validate_safetensors(header_bytes, size - 8 - n, src)
            rest = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{src}: file is missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{src}: is a directory, expected a .safetensors file") from None
    except OSError as exc:
        raise CheckpointError(f"{src}: cannot read: {exc.strerror or exc}") from None
    if len(rest) != size - 8 - n:
        raise CheckpointError(f"{src}: file changed size while being read")
    return head + header_bytes + rest


def _parse_safetensors(data: bytes, src: str) -> dict[str, np.ndarray]:
    """Hand already-validated bytes to the safetensors package; return writable arrays."""
    import safetensors.numpy

    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:  # the library's own checks; our validation should pre-empt them
        raise CheckpointError(f"{src}: not a valid safetensors file: {exc}") from None
    # frombuffer views are read-only; optimizers update buffers in place.
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one ``.safetensors`` file safely (validated first) into writable arrays.

    Raises:
        CheckpointError: missing, unreadable, malformed or hostile file.
    """
    path = Path(path)
    return _parse_safetensors(_read_safetensors_bytes(path), str(path))


def require_regular_file(path: Path) -> None:
    """Refuse FIFOs, devices and directories: reading them could block or never end."""
    mode = os.stat(path).st_mode  # follows symlinks, like open() would
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file (a device, FIFO or socket)")


