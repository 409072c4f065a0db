"""One writer per run directory: an OS file lock held for the life of the writing process.

``trainkit train`` (a new run or ``--resume``) takes an exclusive
``fcntl.flock`` on ``RUN/.lock`` before it writes anything into the run and
keeps the file open until it exits. The kernel drops the lock when the
process dies, however it dies (``kill -9`` included), so a lock is never
stale; the PID written into the file only names the holder in the message a
second writer gets. Readers (``trainkit eval``, ``trainkit runs``) never take
the lock: checkpoints are swapped in whole, so they read a complete one.

:func:`writer_alive` asks the same question without blocking: is some process
holding the lock of this run now? ``trainkit runs`` uses it to show a
``running`` run whose writer is gone as ``crashed``.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from trainkit.errors import RunDirError

try:  # POSIX; on other systems a run is not locked (and says so in runs' status)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_FILE", "RunLock", "writer_alive"]

LOCK_FILE = ".lock"
_ATTEMPTS = 4
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _holder(fd: int) -> str:
    """The ``pid host`` the holder wrote into the lock file (best effort: it is only for the message)."""
    try:
        text = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    except OSError:
        return "another process"
    if text and text[0].isdigit():
        return f"PID {text[0]}" + (f" on {text[1]}" if len(text) > 1 else "")
    return "another process"


class RunLock:
    """The exclusive write lock of one run directory (see the module docstring).

    Use :meth:`acquire`; :meth:`release` (or process exit) lets it go.
    """

    def __init__(self, run_dir: Path, fd: int | None):
        self.run_dir = Path(run_dir)
        self._fd = fd

    @classmethod
    def acquire(cls, run_dir) -> "RunLock":
        """Lock ``run_dir`` for writing, or refuse.

        Raises:
            RunDirError: another process holds the lock (the message names its PID), or the
                lock file cannot be created (read-only folder, permission denied, a symlink).
        """
        run_dir = Path(run_dir)
        if fcntl is None:  # pragma: no cover
            return cls(run_dir, None)
        path = run_dir / LOCK_FILE
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunDirError(f"{path}: is a symbolic link; a run directory's files are never written "
                                  "through links") from None
            raise RunDirError(f"cannot lock run directory {run_dir} for writing: {exc.strerror or exc}"
                              + (" (the folder is read-only; copy the run somewhere writable to continue it)"
                                 if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "")) from None
        for attempt in range(_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                if busy and attempt + 1 < _ATTEMPTS:
                    time.sleep(0.05)  # `trainkit runs` probes with a brief shared lock: let it pass
                    continue
                who = _holder(fd)
                os.close(fd)
                if busy:
                    raise RunDirError(f"{run_dir}: the run is being written by {who} (it holds {path}); "
                                      "wait for it to end or stop it, then try again") from None
                raise RunDirError(f"cannot lock run directory {run_dir}: {exc.strerror or exc}") from None
        try:  # name the holder for a second writer's message; the lock itself is what counts
            import socket
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode("ascii", "replace"), 0)
        except OSError:
            pass
        return cls(run_dir, fd)

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Let the lock go (closing the file releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def writer_alive(run_dir) -> bool | None:
    """Whether a process holds ``run_dir``'s write lock now; None when that cannot be told
    (no lock file: a run written before locks existed, or no ``fcntl``)."""
    if fcntl is None:  # pragma: no cover
        return None
    path = Path(run_dir) / LOCK_FILE
    try:
        # Read-only: probing must not create files in a run another user may own.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return True if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
    finally:
        os.close(fd)  # also drops the shared lock taken by the probe
    return False
