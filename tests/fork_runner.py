"""A fork server for CLI tests that start many short ``trainkit`` processes (kill loops, fuzzing).

Started once as a subprocess (``ForkRunner``), it imports trainkit, numpy and
matplotlib, then runs each command in a fresh ``fork()`` of itself: the real
CLI (``trainkit.cli.app``) in a real process that can be SIGKILLed, without
paying ~1.5 s of imports per process. Each command may arm one fault: at the
N-th *event* of the child (a training batch, a checkpoint file write or
rename, a metrics append, an atomic file replace, the report and plot steps,
the data load) it sends itself SIGKILL (before the event's action; a
checkpoint file write may be cut halfway), SIGINT or SIGTERM. A command can
also log every event's label, so a test learns where the phases are.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout
(``rc``: exit code, or minus the signal; ``maxrss_kb``: the child's peak RSS;
``base_rss_kb``: the server's RSS when it forked).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- client side (pytest)
class ForkRunner:
    """The client: ``run(argv, cwd, ...)`` returns the child's result as a dict (one command at a time:
    give each thread its own runner)."""

    def __init__(self, env: dict | None = None):
        # Its own session: a command that overruns its timeout is ended with the whole server.
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env or dict(os.environ), cwd=HERE,
                                     start_new_session=True)
        ready = self.proc.stdout.readline()
        assert ready.strip() == "ready", ready

    def run(self, argv, cwd, *, env: dict | None = None, fault: str | None = None, at: int | None = None,
            half_write: bool = False, log_events: bool = False, read_only: str | None = None,
            cwd_on_path: bool = False, timeout: float | None = None) -> dict:
        """Run ``trainkit ARGV`` in a fork; ``fault`` (kill, sigint, sigterm) at event ``at`` (1-based).

        ``read_only``: a folder the child sees as on a read-only file system (EROFS on every
        write, create, rename or delete in it; the tests run as root, where chmod stops nothing).
        ``cwd_on_path``: put ``cwd`` first on ``sys.path``, as ``python -m trainkit`` does.
        ``timeout``: seconds before the server and the command are killed and ``subprocess.TimeoutExpired``
        is raised (the runner is then closed).
        """
        cmd = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": env or {}, "fault": fault, "at": at,
               "half_write": half_write, "log_events": log_events, "read_only": read_only,
               "cwd_on_path": cwd_on_path}
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        if timeout is not None and not select.select([self.proc.stdout], [], [], timeout)[0]:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise subprocess.TimeoutExpired(["trainkit", *cmd["argv"]], timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fork runner died")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------- server side
_events: list[str] = []
_fault = {"kind": None, "at": None, "half": False, "log": False}


def _event(label: str) -> bool:
    """Count one event; act on the armed fault. Returns True when a half write should happen first."""
    _events.append(label)
    if _fault["kind"] is None or len(_events) != _fault["at"]:
        return False
    if _fault["kind"] == "kill":
        if _fault["half"] and label.startswith("ckpt_write"):
            return True
        _dump_and_flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif _fault["kind"] == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
    elif _fault["kind"] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    return False


def _dump_and_flush() -> None:
    if _fault["log"]:
        Path(os.environ["FORK_EVENTS"]).write_text("\n".join(_events) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()


def _install_hooks() -> None:
    """Wrap the functions whose calls are events (in the child only: the server stays pristine)."""
    import trainkit.assemble as assemble
    import trainkit.train.checkpoint as ck
    import trainkit.train.metrics as metrics
    import trainkit.train.report as report
    import trainkit.train.rundir as rundir
    import trainkit.train.session as session
    import trainkit.utils.atomic as atomic

    real_write = ck._write_file

    def write_file(path, data):
        if _event(f"ckpt_write:{Path(path).parent.name.split('.')[0]}/{Path(path).name}"):
            with open(path, "xb") as f:  # half of the file reaches the disk, then the kill
                f.write(data[: len(data) // 2])
                f.flush()
            _dump_and_flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(path, data)

    ck._write_file = write_file

    class Os:
        def __getattr__(self, name):
            return getattr(os, name)

        def rename(self, a, b):
            _event(f"ckpt_rename:{Path(b).name.split('.')[0]}")
            os.rename(a, b)

        def replace(self, a, b):
            _event(f"replace:{Path(b).name}")
            os.replace(a, b)

    ck.os = Os()
    atomic.os = Os()

    real_append = rundir.append_line

    def append_line(path, text):
        _event(f"append:{Path(path).name}")
        real_append(path, text)

    rundir.append_line = append_line

    for cls in (metrics.ClassificationMeter, metrics.RegressionMeter):
        real_update = cls.update

        def update(self, *a, _real=real_update, **k):  # a training or evaluation batch is done
            _real(self, *a, **k)
            _event("batch")

        cls.update = update

    def wrap(module, name, label):
        real = getattr(module, name)

        def wrapper(*a, **k):
            _event(label)
            return real(*a, **k)

        setattr(module, name, wrapper)

    wrap(session, "build_report", "report:build")
    wrap(session, "write_report", "report:write")
    wrap(session, "write_plots", "plots:start")
    wrap(report, "_png", "plots:png")
    wrap(assemble, "build_data", "data:load")


def _make_read_only(folder: str) -> None:
    """Every write into ``folder`` fails with EROFS, as on a read-only mount."""
    import builtins
    import errno

    root = os.path.realpath(folder)

    def inside(path) -> bool:
        if isinstance(path, int):
            return False
        p = os.path.realpath(os.fspath(path))
        return p == root or p.startswith(root + os.sep)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    real_open, real_os_open = builtins.open, os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def open_(file, mode="r", *a, **k):
        if inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *a, **k)

    def os_open(path, flags, *a, **k):
        if flags & writing and inside(path):
            refuse(path)
        return real_os_open(path, flags, *a, **k)

    builtins.open, os.open = open_, os_open
    for name in ("replace", "rename", "mkdir", "rmdir", "unlink", "remove"):
        real = getattr(os, name)

        def guarded(*a, _real=real, **k):
            for p in a[:2]:
                if inside(p):
                    refuse(p)
            return _real(*a, **k)

        setattr(os, name, guarded)


_PRIVATE = Path()  # the server's own folder for its children's captured output and event logs (see main)


def _child(cmd: dict) -> None:
    out = open(_PRIVATE / "stdout", "w")
    err = open(_PRIVATE / "stderr", "w")
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    nothing = os.open(os.devnull, os.O_RDONLY)  # the server's stdin carries the protocol: never the child's
    os.dup2(nothing, 0)
    os.chdir(cmd["cwd"])
    os.environ.update(cmd["env"])
    if cmd.get("cwd_on_path"):
        sys.path.insert(0, cmd["cwd"])
    if cmd["log_events"]:
        os.environ["FORK_EVENTS"] = str(_PRIVATE / "events")
    _fault.update(kind=cmd["fault"], at=cmd["at"], half=cmd["half_write"], log=cmd["log_events"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _install_hooks()
    if cmd.get("read_only"):
        _make_read_only(cmd["read_only"])
    from trainkit.cli import app

    code = 0
    try:
        app(args=cmd["argv"], prog_name="trainkit", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a bug: keep its traceback, as the real command would
        traceback.print_exc()
        code = 1
    _dump_and_flush()
    os._exit(code)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    # Imported once here, shared by every fork.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import trainkit.cli  # noqa: F401
    import trainkit.train.session  # noqa: F401
    import trainkit.views.summary  # noqa: F401

    global _PRIVATE
    _PRIVATE = Path(tempfile.mkdtemp(prefix="fork-runner-"))
    print("ready", flush=True)
    try:
        serve()
    finally:
        for name in ("stdout", "stderr", "events"):
            (_PRIVATE / name).unlink(missing_ok=True)
        _PRIVATE.rmdir()


def serve() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        base = _rss_kb()
        pid = os.fork()
        if pid == 0:
            try:
                _child(cmd)
            except BaseException:  # never let a child return into this loop
                traceback.print_exc()
            finally:
                os._exit(70)
        _, status, usage = os.wait4(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        reply = {"rc": rc, "maxrss_kb": usage.ru_maxrss, "base_rss_kb": base,
                 "stdout": (_PRIVATE / "stdout").read_text(errors="replace"),
                 "stderr": (_PRIVATE / "stderr").read_text(errors="replace")}
        if cmd["log_events"] and (_PRIVATE / "events").exists():
            reply["events"] = (_PRIVATE / "events").read_text().split()
        for name in ("stdout", "stderr", "events"):
            (_PRIVATE / name).unlink(missing_ok=True)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
