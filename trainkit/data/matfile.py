"""MATLAB .mat (level 5) files: their claimed sizes checked by trainkit, then read by scipy's ``loadmat``.

``scipy.io.loadmat`` runs no code from a file (unlike a pickle), but it
trusts the byte counts a file claims: an element claiming 4 GB of data is
allocated before it is read, and a compressed element can inflate to far more
than its file. :func:`read_mat` therefore walks the file's top-level elements
first (inflating only the first bytes of a compressed one) and checks, for
every variable, that it is a plain numeric matrix whose data byte count is
what its dimensions and stored type make, and at most the budget the caller
gives it; only then does ``loadmat`` read the variables asked for.

scipy is an optional dependency (``pip install 'trainkit[svhn]'``): only the
SVHN data set needs it, and its absence is a clear :class:`DataError`.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from trainkit.errors import DataError

from .readers import file_size, open_regular

__all__ = ["read_mat", "scipy_io"]

_MI_MATRIX, _MI_COMPRESSED = 14, 15
_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
_NUMERIC_CLASSES = {6, 7, 8, 9, 10, 11, 12, 13, 14, 15}  # double, single, int8 ... uint64
_CHAR_CLASS = 4
_HEAD = 4096  # bytes of a compressed element inflated to read its header


def scipy_io():
    """``scipy.io``, or a DataError saying how to install it."""
    try:
        import scipy.io
    except ImportError:
        raise DataError("reading .mat files (SVHN) needs scipy, an optional dependency: "
                        "pip install 'trainkit[svhn]' (or pip install scipy)") from None
    return scipy.io


def _tag(buf: bytes, pos: int, endian: str, source: str) -> tuple[int, int, int, int]:
    """(type, byte count, data start, next element start) of the data element at ``pos``."""
    if pos + 8 > len(buf):
        raise DataError(f"{source}: truncated element header")
    first, second = struct.unpack(endian + "II", buf[pos:pos + 8])
    if first >> 16:  # small data element: count and type packed in 4 bytes, data in the next 4
        return first & 0xFFFF, first >> 16, pos + 4, pos + 8
    pad = (8 - second % 8) % 8
    return first, second, pos + 8, pos + 8 + second + pad


def _check_matrix(head: bytes, claimed: int, endian: str, source: str, budgets: dict[str, int],
                  other_max: int) -> str:
    """Check one miMATRIX element's content (its first bytes in ``head``); return the variable's name."""
    mtype, count, start, nxt = _tag(head, 0, endian, source)  # array flags
    if mtype != 6 or count != 8:
        raise DataError(f"{source}: a matrix without its array flags; not a MATLAB level-5 file")
    flags = struct.unpack(endian + "I", head[start:start + 4])[0]
    mclass, complex_ = flags & 0xFF, bool(flags & 0x0800)
    mtype, count, start, nxt2 = _tag(head, nxt, endian, source)  # dimensions
    if mtype != 5 or count % 4 or not 0 < count <= 4 * 32:
        raise DataError(f"{source}: bad matrix dimensions")
    dims = struct.unpack(endian + "i" * (count // 4), head[start:start + count])
    if any(d < 0 for d in dims):
        raise DataError(f"{source}: negative matrix dimension {dims}")
    mtype, count, start, nxt3 = _tag(head, nxt2, endian, source)  # name
    if mtype != 1 or count > 63 or start + count > len(head):
        raise DataError(f"{source}: bad variable name")
    name = head[start:start + count].decode("latin1")
    where = f"{source}: variable {name!r}"
    if mclass not in _NUMERIC_CLASSES and mclass != _CHAR_CLASS:
        raise DataError(f"{where} is not a plain numeric matrix (MATLAB class {mclass}); only numeric data "
                        "are read")
    if complex_:
        raise DataError(f"{where} is complex; data sets hold real numbers")
    if claimed == 0:
        return name
    dtype, count, start, _ = _tag(head, nxt3, endian, source)  # real part
    if dtype not in _ITEMSIZE:
        raise DataError(f"{where}: unknown stored type {dtype}")
    n = 1
    for d in dims:
        n *= d
    need = n * _ITEMSIZE[dtype]
    if count != need:
        raise DataError(f"{where}: dimensions {dims} of stored type {dtype} need {need:,} bytes, the file "
                        f"claims {count:,}")
    budget = budgets.get(name, other_max)
    if need > budget:
        raise DataError(f"{where}: {dims} ({need:,} bytes) is more than the {budget:,} bytes it may hold")
    if count > claimed:
        raise DataError(f"{where}: claims {count:,} bytes of data in an element of {claimed:,}")
    return name


def _walk(path: Path, budgets: dict[str, int], other_max: int) -> list[str]:
    """Check every top-level element of the level-5 file ``path``; return the variable names."""
    names = []
    with open_regular(path) as f:
        size = file_size(f)
        header = f.read(128)
        if len(header) < 128:
            raise DataError(f"{path}: too short for a MATLAB .mat file")
        if header[124:126] == b"\x00\x02":
            raise DataError(f"{path}: a MATLAB 7.3 (HDF5) file; only level-5 .mat files are read "
                            "(save with -v7 or -v6)")
        endian = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if endian is None:
            raise DataError(f"{path}: not a MATLAB level-5 .mat file (no endian indicator)")
        pos = 128
        while pos < size:
            f.seek(pos)
            raw = f.read(8)
            if len(raw) < 8:
                if raw.strip(b"\x00"):
                    raise DataError(f"{path}: truncated after {pos:,} bytes")
                break
            mtype, count = struct.unpack(endian + "II", raw)
            if pos + 8 + count > size:
                raise DataError(f"{path}: an element claims {count:,} bytes at offset {pos:,}, past the end of "
                                f"the {size:,}-byte file")
            source = f"{path} (offset {pos:,})"
            if mtype == _MI_COMPRESSED:
                inflate = zlib.decompressobj()
                head, read = b"", 0
                while len(head) < _HEAD and read < count:
                    piece = f.read(min(1 << 16, count - read))
                    read += len(piece)
                    try:
                        head += inflate.decompress(piece, _HEAD - len(head))
                    except zlib.error as exc:
                        raise DataError(f"{source}: corrupt compressed element ({exc})") from None
                    if not piece:
                        break
                itype, icount, istart, _ = _tag(head, 0, endian, source)
                if itype != _MI_MATRIX:
                    raise DataError(f"{source}: a compressed element that is not a matrix")
                names.append(_check_matrix(head[istart:], icount, endian, source, budgets, other_max))
            elif mtype == _MI_MATRIX:
                head = f.read(min(count, _HEAD))
                names.append(_check_matrix(head, count, endian, source, budgets, other_max))
            else:
                raise DataError(f"{source}: element of type {mtype} at the top level; not a data matrix")
            pos += 8 + count + ((8 - count % 8) % 8 if mtype != _MI_COMPRESSED else 0)
    return names


def read_mat(path: str | os.PathLike, budgets: dict[str, int], other_max: int = 1 << 20) -> dict[str, np.ndarray]:
    """The variables named in ``budgets`` (name -> most bytes of data allowed) of .mat file ``path``.

    Every variable is checked first (see the module docstring); one that
    ``budgets`` does not name may hold at most ``other_max`` bytes. A variable
    of ``budgets`` missing from the file is a DataError.
    """
    path = Path(path)
    names = _walk(path, budgets, other_max)
    missing = [n for n in budgets if n not in names]
    if missing:
        raise DataError(f"{path}: no variable {missing[0]!r} (found: {', '.join(names) or 'none'})")
    sio = scipy_io()
    try:
        with open_regular(path) as f:
            out = sio.loadmat(f, variable_names=list(budgets))
    except DataError:
        raise
    except (ValueError, TypeError, OSError, EOFError, zlib.error, NotImplementedError, KeyError) as exc:
        raise DataError(f"{path}: not a readable .mat file ({type(exc).__name__}: {exc})") from None
    return {n: out[n] for n in budgets}
