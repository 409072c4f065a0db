"""``trainkit train CONFIG --procs N``: start N local ranks through the installed MPI's launcher.

The user needs no MPI knowledge: this runs ``mpiexec -n N python -m trainkit
train ...`` (the same arguments, without ``--procs``), with ``mpiexec`` from
the MPI that mpi4py uses (the ``mpich`` wheel's, next to this Python, or the
first on ``PATH``), waits for it and returns its exit code.

Signals. ``mpiexec`` runs in a session of its own, so that Ctrl-C in the
terminal reaches only this launcher, which passes each SIGINT/SIGTERM on to
``mpiexec`` once; MPICH's hydra forwards the first to every rank (they stop
after the same step: an ``interrupted`` run, exit 130) and aborts the job on
the second.

Post-mortem. Rank 0 notes the run directory in a file this launcher names
(``TRAINKIT_LAUNCH_INFO``). When a rank is killed (``kill -9``, the
out-of-memory killer), the MPI launcher ends the others at once and no rank
can record anything; the launcher then finds the run still ``running`` and
marks it ``failed`` (or ``interrupted`` after a second Ctrl-C), with the way
to resume it. When rank 0 ends the job itself (a rank's error, a divergence),
it notes its exit code in the same file and the launcher returns that code:
``mpiexec`` reports the status of whichever rank it saw end first, which for a
rank the abort killed is 9.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import TrainkitError
from .communicator import MPI_EXTRA_HINT, MPIUnavailable, mpi_world_size
from .session import LAUNCH_COMMAND_ENV, LAUNCH_INFO_ENV

__all__ = ["launch", "find_mpiexec", "rank_command"]


def find_mpiexec() -> str:
    """The ``mpiexec`` to start ranks with: next to this Python (the MPI wheels put it there), else on PATH."""
    here = Path(sys.executable).parent
    for name in ("mpiexec", "mpirun"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("mpiexec", "mpirun"):
        found = shutil.which(name)
        if found:
            return found
    raise MPIUnavailable(f"--procs needs an MPI launcher (mpiexec), found neither next to {sys.executable} nor on "
                         f"PATH: {MPI_EXTRA_HINT}")


def rank_command(config, overrides, run_dir, runs_dir, resume, quiet, trust_code: bool = False) -> list[str]:
    """The ``trainkit train`` arguments each rank runs (those of this command, without ``--procs``)."""
    args = [sys.executable, "-m", "trainkit", "train"]
    if config is not None:
        args.append(str(config))
    for item in overrides:
        args += ["--set", item]
    for flag, value in (("--run-dir", run_dir), ("--runs-dir", runs_dir), ("--resume", resume)):
        if value is not None:
            args += [flag, str(value)]
    if quiet:
        args.append("--quiet")
    if trust_code:
        args.append("--trust-code")
    return args


def _mark(run_path: str, status: str, message: str) -> str | None:
    """Give a run that its ranks left ``running`` its final status; returns the run path when marked."""
    from ..train.rundir import open_run

    try:
        info = open_run(run_path)
        if info.status != "running":
            return None
        info.finish(status, message=message)
    except (TrainkitError, OSError, ValueError):
        return None
    return run_path


def launch(procs: int, *, config=None, overrides=(), run_dir=None, runs_dir=None, resume=None, quiet=False,
           trust_code: bool = False) -> int:
    """Run ``trainkit train`` on ``procs`` local ranks; returns the job's exit code (see the module docstring)."""
    if mpi_world_size() > 1:
        raise TrainkitError("--procs starts an MPI job of its own; under mpiexec leave it out (the launcher's -n "
                            "sets the number of ranks)")
    if importlib.util.find_spec("mpi4py") is None:
        raise MPIUnavailable(f"--procs {procs} needs the optional MPI support: {MPI_EXTRA_HINT}")
    mpiexec = find_mpiexec()
    fd, info_path = tempfile.mkstemp(prefix="trainkit-launch-", suffix=".json")
    os.close(fd)
    env = dict(os.environ, **{LAUNCH_INFO_ENV: info_path, LAUNCH_COMMAND_ENV: json.dumps(sys.argv)})
    cmd = [mpiexec, "-n", str(procs)] + rank_command(config, overrides, run_dir, runs_dir, resume, quiet, trust_code)
    signals = []

    def forward(signum, frame):
        signals.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        os.unlink(info_path)
        raise MPIUnavailable(f"cannot start {mpiexec}: {exc.strerror or exc}") from None
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        note = json.loads(Path(info_path).read_text() or "{}")
        run_path, intended = note.get("run"), note.get("exit")
    except (OSError, ValueError, AttributeError):
        run_path, intended = None, None
    finally:
        try:
            os.unlink(info_path)
        except OSError:
            pass
    if run_path and code not in (0,):
        if len(signals) > 1:
            marked = _mark(run_path, "interrupted", "aborted by a second Ctrl-C")
        else:
            how = f"killed by signal {-code}" if code < 0 else f"MPI job exit status {code}"
            marked = _mark(run_path, "failed", f"a training process ended abnormally ({how}); the run resumes from "
                                               "its last checkpoint")
        if marked:
            print(f"a training process ended abnormally; the run is marked "
                  f"{'interrupted' if len(signals) > 1 else 'failed'}. Resume with:  trainkit train --resume "
                  f"{marked}", file=sys.stderr, flush=True)
    if code != 0 and isinstance(intended, int) and not isinstance(intended, bool):
        return intended  # rank 0 ended the job with this code (mpiexec may report another rank's status)
    if code < 0:  # mpiexec itself killed by a signal: the shell's convention
        return 128 - code
    return code
