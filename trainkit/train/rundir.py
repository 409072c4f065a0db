"""Run directories: creation without clobbering, ``run.json``, metrics logs, listing.

A run directory ``<runs root>/<YYYYmmdd-HHMMSS>-<name>`` holds everything one
training run produced. This module owns its bookkeeping files:

* ``run.json`` (:class:`RunInfo`) - status, times, versions, seed, command line,
  epochs planned/done, best metric; always rewritten atomically.
* ``metrics.csv`` and ``metrics.jsonl`` (:class:`MetricsLog`) - one row per
  epoch, appended with fsync, never truncated in normal operation.

**Metrics across a kill and resume.** Rows are appended as each epoch ends; a
checkpoint is saved afterwards. The trainer must keep that order (append the
epoch's row *before* saving the checkpoint of that epoch), so every epoch the
checkpoint covers has its row. A kill can then leave rows for epochs *after*
the checkpoint (and at most one torn line). On resume the trainer calls
:meth:`MetricsLog.truncate_after` with the checkpoint's epoch: both files are
rewritten atomically keeping exactly the rows with ``epoch <= that epoch`` (and
any torn line is dropped), so after the resumed run finishes the files hold the
same rows as an uninterrupted run. This is the only rewrite ever done.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import platform
import re
import socket
import stat
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainkit.errors import RunDirError
from trainkit.utils.atomic import append_line, atomic_write_json, atomic_write_text, read_lines

__all__ = [
    "RUN_JSON",
    "METRICS_CSV",
    "METRICS_JSONL",
    "REPORT_JSON",
    "STATUSES",
    "resolve_runs_root",
    "create_run_dir",
    "is_run_dir",
    "open_run",
    "RunInfo",
    "MetricsLog",
    "RunSummary",
    "list_runs",
]

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
REPORT_JSON = "report.json"
#: Every value ``run.json``'s ``status`` can take.
STATUSES = ("running", "completed", "interrupted", "diverged", "failed")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_runs_root(runs_root: str | os.PathLike | None = None) -> Path:
    """The runs root: the argument, else ``$TRAINKIT_RUNS``, else ``./runs``."""
    if runs_root is not None:
        return Path(runs_root)
    env = os.environ.get("TRAINKIT_RUNS")
    return Path(env) if env else Path("runs")


def _safe_name(name: str) -> str:
    # Config names become folder names: keep them portable and free of path separators.
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "run"


def create_run_dir(
    runs_root: str | os.PathLike | None = None,
    name: str = "run",
    exact: str | os.PathLike | None = None,
    *,
    now: datetime | None = None,
) -> Path:
    """Create a fresh, empty run directory and return its path.

    Without ``exact`` the directory is ``<root>/<YYYYmmdd-HHMMSS>-<name>``
    (local time), made with an exclusive ``mkdir``: if that name is taken -
    another process started in the same second - ``-2``, ``-3``, ... is
    appended, so an existing directory is never reused. With ``exact``
    (``--run-dir``) that path is used as is; it may exist only if empty.

    Raises:
        RunDirError: ``exact`` exists and is not an empty directory, or the
            folder cannot be created (permission denied, ...).
    """
    if exact is not None:
        path = Path(exact)
        if path.exists():
            if not path.is_dir():
                raise RunDirError(f"--run-dir {path} exists and is not a directory")
            if any(path.iterdir()):
                raise RunDirError(
                    f"--run-dir {path} already exists and is not empty; pick a new path, "
                    f"or continue that run with --resume {path}"
                )
            return path
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            raise RunDirError(f"--run-dir {path} was created by another process just now") from None
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {path}: {exc.strerror or exc}") from None
        return path

    root = resolve_runs_root(runs_root)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_safe_name(name)}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create runs directory {root}: {exc.strerror or exc}") from None
    for i in range(1, 10_000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            os.mkdir(path)  # exclusive: fails if another process got this name first
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {path}: {exc.strerror or exc}") from None
    raise RunDirError(f"too many runs named {base} in {root}")


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory with a ``run.json`` (a trainkit run)."""
    path = Path(path)
    return path.is_dir() and (path / RUN_JSON).is_file()


#: Largest ``run.json`` read (a real one is a few KiB; a copied run dir is untrusted input).
MAX_RUN_JSON_BYTES = 1 << 20


def _read_small_json(path: Path, limit: int):
    """A JSON file from a run directory: a regular file (no link, FIFO or device), at most ``limit`` bytes."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{st.st_size} bytes, over the {limit}-byte limit")
        return json.loads(f.read(limit + 1).decode("utf-8"))


def _read_run_json(path: Path) -> dict:
    try:
        data = _read_small_json(path / RUN_JSON, MAX_RUN_JSON_BYTES)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "it is a symbolic link" if getattr(exc, "errno", None) == errno.ELOOP else str(exc)
        raise RunDirError(f"{path / RUN_JSON}: cannot read run information ({reason})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path / RUN_JSON}: expected a JSON object")
    return data


def _is_count(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: The ``run.json`` fields trainkit reads back, and what each must be (checked on every open for
#: resume and eval: a copied or edited run directory is refused with the field named, never a traceback).
RUN_FIELDS: dict[str, tuple[str, Any]] = {
    "status": ("one of " + ", ".join(STATUSES), lambda v: v in STATUSES),
    "name": ("a string", lambda v: isinstance(v, str)),
    "epochs_done": ("a count >= 0", lambda v: _is_count(v)),
    "epochs_planned": ("null or a count >= 1", lambda v: v is None or _is_count(v, 1)),
    "duration_s": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "resumes": ("a count >= 0", lambda v: _is_count(v)),
    "best_metric": ("null or {name, value, epoch}", lambda v: v is None or (
        isinstance(v, dict) and isinstance(v.get("name"), str) and _is_number(v.get("value"))
        and _is_count(v.get("epoch"), 1))),
    "code": ("null or a record of the run's custom layers", lambda v: v is None or isinstance(v, dict)),
}
_OPTIONAL_FIELDS = ("code", "best_metric", "name")


def check_run_info(data: dict, path: Path) -> None:
    """Refuse a ``run.json`` whose fields trainkit relies on are missing or of the wrong kind."""
    for key, (what, ok) in RUN_FIELDS.items():
        if key not in data:
            if key in _OPTIONAL_FIELDS:
                continue
            raise RunDirError(f"{path / RUN_JSON}: missing '{key}' ({what}); not a run.json written by trainkit")
        if not ok(data[key]):
            raise RunDirError(f"{path / RUN_JSON}: '{key}' must be {what}, found {_short(data[key])}")


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def open_run(path: str | os.PathLike) -> "RunInfo":
    """Open an existing run directory and return its :class:`RunInfo`.

    Raises:
        RunDirError: ``path`` is missing, not a directory, or not a run (no/corrupt run.json).
    """
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory, expected a run directory")
    if not (path / RUN_JSON).is_file():
        raise RunDirError(
            f"{path}: not a trainkit run directory (no {RUN_JSON}); "
            "list runs with `trainkit runs`"
        )
    data = _read_run_json(path)
    check_run_info(data, path)
    return RunInfo(path, data)


class RunInfo:
    """The contents of ``run.json``, with helpers that rewrite it atomically.

    ``data`` is a plain dict; well-known keys: ``id``, ``name``, ``status``,
    ``start_time``, ``end_time`` (ISO 8601 UTC), ``duration_s`` (time spent
    running, summed over resumes), ``versions``, ``seed``, ``command``,
    ``epochs_planned``, ``epochs_done``, ``best_metric``
    (``{"name", "value", "epoch"}``), ``message``, ``resumes``, ``pid``, ``host``.
    """

    def __init__(self, run_dir: str | os.PathLike, data: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.data = data
        self._t0 = time.monotonic()  # start of this process's session, for duration_s

    @classmethod
    def create(
        cls,
        run_dir: str | os.PathLike,
        *,
        name: str,
        seed: int | None = None,
        epochs_planned: int | None = None,
        command: list[str] | None = None,
        **extra: Any,
    ) -> "RunInfo":
        """Write a new ``run.json`` with status ``running`` and return it."""
        from trainkit import __version__

        run_dir = Path(run_dir)
        data = {
            "id": run_dir.name,
            "name": name,
            "status": "running",
            "start_time": _utc_now(),
            "end_time": None,
            "duration_s": 0.0,
            "versions": {
                "trainkit": __version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "seed": seed,
            "command": list(command) if command is not None else list(sys.argv),
            "epochs_planned": epochs_planned,
            "epochs_done": 0,
            "best_metric": None,
            "message": None,
            "resumes": 0,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        data.update(extra)
        info = cls(run_dir, data)
        info.save()
        return info

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "RunInfo":
        """Read ``run.json`` (same as :func:`open_run`)."""
        return open_run(run_dir)

    @property
    def status(self) -> str:
        """The run's status, one of :data:`STATUSES`."""
        return self.data.get("status", "unknown")

    def save(self) -> None:
        """Rewrite ``run.json`` atomically. Raises StorageError on a write failure."""
        atomic_write_json(self.run_dir / RUN_JSON, self.data)

    def update(self, **fields: Any) -> None:
        """Set fields (e.g. ``epochs_done=3, best_metric={...}``) and save."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}; expected one of {STATUSES}")
        self.data.update(fields)
        self.save()

    def resume(self, command: list[str] | None = None, **fields: Any) -> None:
        """Mark a resumed run as ``running`` again (count resumes, clear end time) and save."""
        self._t0 = time.monotonic()
        self.data["resumes"] = int(self.data.get("resumes") or 0) + 1
        self.data.update(
            status="running", end_time=None, message=None, pid=os.getpid(),
            host=socket.gethostname(),
            command=list(command) if command is not None else list(sys.argv),
        )
        self.update(**fields)

    def finish(self, status: str, message: str | None = None, **fields: Any) -> None:
        """Set a final status (completed/interrupted/diverged/failed), end time and duration."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"finish() needs a final status, got {status!r}")
        elapsed = time.monotonic() - self._t0
        self._t0 = time.monotonic()
        self.data["duration_s"] = round(float(self.data.get("duration_s") or 0.0) + elapsed, 3)
        self.update(status=status, end_time=_utc_now(), message=message, **fields)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so rows serialise identically in CSV and JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buf.getvalue()[:-1]


class MetricsLog:
    """Per-epoch rows appended to ``metrics.csv`` (header once) and ``metrics.jsonl``.

    Each row must have an integer ``epoch``. The CSV columns are fixed by the
    existing header, else by ``columns``, else by the first row's keys; a later
    row with a key outside them is a bug (ValueError). See the module docstring
    for the append-then-checkpoint order and :meth:`truncate_after` on resume.
    """

    def __init__(self, run_dir: str | os.PathLike, columns: list[str] | None = None):
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / METRICS_CSV
        self.jsonl_path = self.run_dir / METRICS_JSONL
        lines = read_lines(self.csv_path)
        self.columns: list[str] | None = next(csv.reader(lines[:1]), None) or columns

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row to both files, each line fsynced. Raises StorageError on failure."""
        row = {k: _plain(v) for k, v in row.items()}
        if "epoch" not in row:
            raise ValueError("metrics row needs an 'epoch'")
        if self.columns is None:
            self.columns = list(row)
        extra = [k for k in row if k not in self.columns]
        if extra:
            raise ValueError(f"metrics row has keys {extra} not in the CSV columns {self.columns}")
        append_line(self.jsonl_path, json.dumps(row))
        if not read_lines(self.csv_path):
            append_line(self.csv_path, _csv_line(self.columns))
        append_line(self.csv_path, _csv_line([row.get(c) for c in self.columns]))

    def rows(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` (a torn final line is dropped).

        Raises:
            RunDirError: a complete line is not a JSON object (the file was edited or corrupted).
        """
        out = []
        for i, line in enumerate(read_lines(self.jsonl_path), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RunDirError(f"{self.jsonl_path}:{i}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise RunDirError(f"{self.jsonl_path}:{i}: expected a JSON object")
            out.append(row)
        return out

    def truncate_after(self, epoch: int) -> list[dict[str, Any]]:
        """On resume: keep only rows with ``epoch <= epoch`` in both files; return them.

        Rows beyond the checkpoint's epoch were written after the last checkpoint
        by the killed process and will be produced again, so they are dropped.
        Both files are rewritten atomically (a kill here leaves old or new).
        """
        kept = [r for r in self.rows() if _epoch_of(r.get("epoch")) <= epoch]
        jsonl = "".join(json.dumps(r) + "\n" for r in kept)
        lines = read_lines(self.csv_path)
        csv_text = ""
        if lines:
            header = next(csv.reader(lines[:1]))
            idx = header.index("epoch") if "epoch" in header else None
            body = [
                line for line, fields in zip(lines[1:], csv.reader(lines[1:]))
                if idx is not None and idx < len(fields) and _epoch_of(fields[idx]) <= epoch
            ]
            csv_text = "\n".join([lines[0], *body]) + "\n"
        if self.jsonl_path.exists() or kept:
            atomic_write_text(self.jsonl_path, jsonl)
        if lines:
            atomic_write_text(self.csv_path, csv_text)
        return kept


def _epoch_of(value: Any) -> float:
    """A row's epoch as a number; unparsable ones sort after everything (dropped)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return math.inf


@dataclass
class RunSummary:
    """One line of ``trainkit runs``."""

    id: str
    path: Path
    name: str | None
    status: str
    epochs_done: int | None
    epochs_planned: int | None
    best_metric: str | None
    best_value: float | None
    test_accuracy: float | None
    duration_s: float | None
    start_time: str | None
    stale: bool = False  # was "running" but its writer is gone (killed): shown as status "crashed"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError, ValueError):
        return True
    return True


def _writer_gone(path: Path, data: dict) -> bool:
    """A ``running`` run whose writing process is gone: its lock is free (or, for a run written
    before locks existed, its recorded PID on this host is dead)."""
    from .lock import writer_alive

    alive = writer_alive(path)
    if alive is not None:
        return not alive
    pid = data.get("pid")
    return _is_count(pid, 1) and data.get("host") == socket.gethostname() and not _pid_alive(pid)


def _text_or_none(v) -> str | None:
    return v if isinstance(v, str) else None


def _test_accuracy(path: Path) -> float | None:
    try:
        report = _read_small_json(path / REPORT_JSON, MAX_RUN_JSON_BYTES * 16)
        value = report["test"]["accuracy"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return float(value) if _is_number(value) else None


def _summarise(path: Path) -> RunSummary:
    """One line of ``trainkit runs``; every field is checked on its own, so one damaged or forged
    ``run.json`` shows dashes (or ``unreadable``) and never hides the other runs."""
    try:
        data = _read_run_json(path)
    except RunDirError:
        return RunSummary(path.name, path, None, "unreadable", None, None, None, None, None, None, None)
    best = data.get("best_metric") if isinstance(data.get("best_metric"), dict) else {}
    status = data.get("status")
    status = status if status in STATUSES else "unknown"
    stale = status == "running" and _writer_gone(path, data)
    return RunSummary(
        id=path.name, path=path, name=_text_or_none(data.get("name")), status="crashed" if stale else status,
        epochs_done=data.get("epochs_done") if _is_count(data.get("epochs_done")) else None,
        epochs_planned=data.get("epochs_planned") if _is_count(data.get("epochs_planned")) else None,
        best_metric=_text_or_none(best.get("name")),
        best_value=float(best["value"]) if _is_number(best.get("value")) else None,
        test_accuracy=_test_accuracy(path),
        duration_s=float(data["duration_s"]) if _is_number(data.get("duration_s")) else None,
        start_time=_text_or_none(data.get("start_time")), stale=stale,
    )


def list_runs(runs_root: str | os.PathLike | None = None) -> list[RunSummary]:
    """Summaries of the runs directly under the runs root, newest first.

    Folders without ``run.json`` are skipped; a corrupt ``run.json`` is listed
    with status ``unreadable``.

    Raises:
        RunDirError: the runs root does not exist or is not a directory.
    """
    root = resolve_runs_root(runs_root)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such runs directory")
    runs = [_summarise(p) for p in root.iterdir() if is_run_dir(p)]
    runs.sort(key=lambda r: (r.start_time or "", r.id), reverse=True)
    return runs
