"""Crash-safe file writes: whole-file replacement and line-append logs.

Two kinds of write are needed by a run directory:

* **Whole files** (``run.json``, ``config.yaml``, reports, checkpoint files):
  :func:`atomic_write_bytes` writes a temporary file in the *same* folder,
  fsyncs it, ``os.replace``-s it over the target and fsyncs the folder. A
  reader - or a process restarted after ``kill -9`` or a power cut - sees
  either the complete old file or the complete new one, never a mix.
* **Append-only logs** (``metrics.csv``, ``metrics.jsonl``): :func:`append_line`
  appends one ``\\n``-terminated line with a single ``write`` and fsyncs, so a
  kill can lose at most the line being written, which then lacks its ``\\n``.
  :func:`read_lines` drops such a torn final line, and :func:`append_line`
  cuts it off before appending so it never glues onto the next row.

Errors: an ``OSError`` while writing (disk full, permission denied, read-only
file system) is raised as :class:`StorageError`, a :class:`TrainkitError`
subclass whose message names the file and the cause; the original
``OSError`` is chained as ``__cause__`` and its ``errno`` is kept. The
previous content of the target is left intact and the temporary file is
removed. The trainer catches ``StorageError`` to mark the run ``failed``; the
CLI prints it and exits with code 2.
"""
from __future__ import annotations

import errno as _errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError

__all__ = [
    "StorageError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "append_line",
    "read_lines",
    "fsync_dir",
    "json_default",
    "open_no_follow",
]


class StorageError(TrainkitError):
    """Writing a file failed (disk full, permission denied, ...); the old file is intact.

    Attributes:
        path: the file that could not be written.
        errno: the ``errno`` of the underlying ``OSError`` (or None).
    """

    def __init__(self, path: str | os.PathLike, exc: OSError, action: str = "write"):
        self.path = str(path)
        self.errno = exc.errno
        reason = exc.strerror or str(exc)
        hint = ""
        if exc.errno == _errno.ENOSPC:
            hint = " (the disk is full; free some space and resume the run)"
        elif exc.errno in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
            hint = " (no permission to write there; check the folder's permissions)"
        elif exc.errno == _errno.ELOOP:
            reason = "it is a symbolic link"
            hint = "; a run directory's files are never written or read through links"
        super().__init__(f"cannot {action} {self.path}: {reason}{hint}")


def open_no_follow(path, flags: int) -> int:
    """``os.open`` that refuses a symbolic link in the last component (``ELOOP``): the ``opener``
    of every file a run appends to, so a link planted in a run directory is never written through."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)


def _open_regular_for_reading(path, flags: int) -> int:
    fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(_errno.EINVAL, "not a regular file", str(path))
    return fd


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (a rename or a new file in it) to disk.

    Without this, a power cut after ``os.replace`` can bring back the old name.
    Platforms that cannot open a directory (Windows) silently skip it.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some file systems refuse fsync on a directory; the data is still written.
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: readers see all-old or all-new.

    The temporary file lives in the target's folder (``os.replace`` is only
    atomic within one file system) and is named ``.<name>.tmp-XXXX``. On any
    error it is removed and the old file, if any, is untouched.

    Raises:
        StorageError: the write failed with an ``OSError`` (disk full, ...).
    """
    path = Path(path)
    parent = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=parent)
    except OSError as exc:
        raise StorageError(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        # BaseException too: a KeyboardInterrupt mid-write must not leave the temp file.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(path, exc) from exc
        raise
    fsync_dir(parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars -> Python numbers, arrays -> lists."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented UTF-8 JSON atomically.

    numpy scalars and arrays are converted (see :func:`json_default`); any
    other value that is not JSON-serialisable is a bug (``TypeError``), raised
    before anything touches the disk.
    """
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _cut_torn_tail(f) -> None:
    """Truncate a file opened ``r+b`` after its last ``\\n`` (drops a torn line)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    # Scan backwards in blocks for the last complete line's newline.
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        chunk = f.read(end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            f.truncate(start + i + 1)
            return
        end = start
    f.truncate(0)


def append_line(path: str | os.PathLike, text: str, *, sync: bool = True) -> None:
    """Append ``text`` plus ``\\n`` to ``path`` durably; a kill loses at most this line.

    The line is written with one ``write`` call and fsynced before returning
    (``sync=False``: not fsynced; a process kill loses nothing written, a power
    cut may, and the caller then syncs or keeps a copy itself). A torn final
    line left by an earlier kill (no trailing ``\\n``) is cut off first, so it
    cannot merge with this one. ``text`` must not contain a newline.

    Raises:
        ValueError: ``text`` contains a newline (a bug in the caller).
        StorageError: the write failed with an ``OSError``.
    """
    if "\n" in text or "\r" in text:
        raise ValueError(f"append_line: text must be a single line, got {text!r}")
    path = Path(path)
    data = (text + "\n").encode("utf-8")
    try:
        new = not path.exists()
        # "a+b" creates the file; we repair through a second r+b handle only when needed.
        with open(path, "ab", opener=open_no_follow) as f:
            if f.tell() > 0:
                with open(path, "r+b", opener=open_no_follow) as g:
                    _cut_torn_tail(g)  # made durable with the new line: fsync syncs the inode, both handles
                    g.flush()
                f.seek(0, os.SEEK_END)
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
    except OSError as exc:
        raise StorageError(path, exc, action="append to") from exc
    if new and sync:
        fsync_dir(path.parent)


def read_lines(path: str | os.PathLike) -> list[str]:
    """Return the complete lines of a log written by :func:`append_line`.

    A final line without ``\\n`` is a write cut by a kill and is dropped.
    A missing file reads as no lines. Lines are returned without ``\\n``.
    Invalid UTF-8 is replaced rather than raised (the caller validates content).
    """
    try:
        with open(path, "rb", opener=_open_regular_for_reading) as f:
            data = f.read()
    except FileNotFoundError:
        return []
    except OSError as exc:  # a link or a device planted in a run directory (/dev/zero would never end)
        raise StorageError(path, exc, action="read") from None
    cut = data.rfind(b"\n")
    if cut < 0:
        return []
    # split("\n"), not splitlines(): a value may legitimately contain other separators.
    return data[:cut].decode("utf-8", errors="replace").split("\n")
