"""``trainkit sweep``: run a config's trials as processes, record them, write the results.

The sweep directory (``runs/<stamp>-<name>-sweep`` or ``--sweep-dir``) holds
``sweep.json`` (the config file and its hash, the seed), ``trials.json`` and
``study.db`` (:mod:`.study`), one run directory per trial (``trial-0000``...),
``results/`` (each trial process's outcome), ``logs/`` (each trial's stderr)
and at the end ``trials.csv``, ``best.yaml`` and ``sweep.png``.

Trials run as ``python -m trainkit.sweep.trial`` processes, ``--jobs`` at a
time, each with ``cpus // jobs`` BLAS and trainkit threads. A trial that
diverges (exit 3) or is refused is recorded ``failed`` and the sweep goes on.
Ctrl-C (or SIGTERM) stops every trial at its next step (each writes its
checkpoint), records them as unfinished and exits 130; ``--resume SWEEP_DIR``
continues those trials from their checkpoints and starts the missing ones,
never repeating a finished trial.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import TrainkitError
from ..utils.atomic import atomic_write_json
from ..utils.extras import require
from ..utils.text import shown
from .space import distributions, grid_points, random_params
from .study import Ledger, open_optuna

__all__ = ["run_sweep", "SweepInterrupted"]


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the sweep (exit code 130)."""


def _config_hash(config) -> str:
    return hashlib.sha256(json.dumps(config.data, sort_keys=True, default=str).encode()).hexdigest()


def _open(config_path, resume, sweep_dir, runs_dir):
    """Load and check the config (nothing is written when it is refused) and the sweep directory."""
    from ..config import load_config
    from ..train.rundir import create_run_dir

    if resume is not None:
        resume = Path(resume)
        try:
            info = json.loads((resume / "sweep.json").read_text())
        except (OSError, ValueError) as exc:
            raise TrainkitError(f"{resume}: not a sweep directory (no readable sweep.json: {exc})") from None
        config = load_config(info["config_file"])
        if _config_hash(config) != info["config_hash"]:
            raise TrainkitError(f"{info['config_file']} changed since the sweep in {resume} started; its trials "
                                "would not be comparable (start a new sweep)")
        return config, resume, info
    config = load_config(config_path)
    if "sweep" not in config.data:
        raise TrainkitError(f"{config_path}: the config has no sweep: section (see docs/config.md, 'sweep')")
    spec = config.data["sweep"]
    if spec["sampler"] == "tpe" or spec["pruner"]:
        require("optuna", "sweep", f"sampler {spec['sampler']}" if spec["sampler"] == "tpe" else "pruner median")
    path = create_run_dir(runs_dir, f"{config.name}-sweep", exact=sweep_dir)
    info = {"config_file": str(Path(config_path).resolve()), "config_hash": _config_hash(config),
            "seed": spec["seed"] if spec["seed"] is not None else config.data["seed"] % 2 ** 32,
            "trials": spec["trials"]}
    atomic_write_json(path / "sweep.json", info)
    return config, path, info


def _threads(jobs: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // jobs)


class _Sweep:
    """The state of one ``trainkit sweep`` process (see the module docstring)."""

    def __init__(self, config, path: Path, info: dict, jobs: int, log):
        self.spec = config.data["sweep"]
        self.path, self.info, self.jobs, self.log = path, info, jobs, log
        self.ledger = Ledger(path)
        self.study = None
        use_optuna = self.spec["sampler"] == "tpe" or bool(self.spec["pruner"])
        try:
            import optuna  # noqa: F401  (the study is kept in SQLite whenever Optuna is there)
            use_optuna = True
        except ImportError:
            if use_optuna:
                require("optuna", "sweep", "this sweep")
        if any(t["optuna_id"] is not None for t in self.ledger.trials.values()):
            use_optuna = True
            require("optuna", "sweep", f"resuming {path} (its study is Optuna's)")
        if use_optuna:
            sampler = None
            if self.spec["sampler"] == "tpe":
                import optuna

                # seeded by how many trials exist: a resumed sweep continues, not repeats, the sequence
                sampler = optuna.samplers.TPESampler(seed=info["seed"] + len(self.ledger.trials))
            self.study = open_optuna(path, self.spec, sampler)
        self.grid = grid_points(self.spec["parameters"]) if self.spec["sampler"] == "grid" else None
        self.threads = str(_threads(jobs))

    def total(self, trials: int | None) -> int:
        n = trials if trials is not None else self.info["trials"]
        return min(n, len(self.grid)) if self.grid is not None else n

    def new_trial(self, number: int) -> dict:
        params = None
        if self.grid is not None:
            params = self.grid[number]
        elif self.spec["sampler"] == "random":
            params = random_params(self.spec["parameters"], self.info["seed"], number)
        optuna_id = None
        if self.study is not None:
            dists = distributions(self.spec["parameters"])
            if params is not None:
                self.study.enqueue_trial(params, skip_if_exists=False)
            t = self.study.ask(dists)
            params = params if params is not None else dict(t.params)
            optuna_id = (t._trial_id, t.number)  # the id opens it in the trial's process, the number tells it
        return self.ledger.add(number, params, optuna_id)

    def launch(self, entry: dict) -> subprocess.Popen:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TRAINKIT_NUM_THREADS"):
            env[var] = self.threads
        (self.path / "logs").mkdir(exist_ok=True)
        err = open(self.path / "logs" / f"trial-{entry['number']:04d}.err", "ab")
        try:
            # its own session: Ctrl-C reaches the sweep, which stops each trial once (a second SIGINT
            # would abort a trial without its checkpoint)
            return subprocess.Popen([sys.executable, "-m", "trainkit.sweep.trial", str(self.path),
                                     str(entry["number"])], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    start_new_session=True)
        finally:
            err.close()

    def record(self, entry: dict, code: int) -> None:
        """A trial process ended: record its state and value, tell the Optuna study."""
        n = entry["number"]
        result_path = self.path / "results" / f"trial-{n:04d}.json"
        result = {}
        try:
            result = json.loads(result_path.read_text())
        except (OSError, ValueError):
            pass
        state = result.get("state") if result.get("exit_code") == code else None
        if state is None:
            state = "interrupted" if code in (130, -signal.SIGINT, -signal.SIGTERM) else "failed"
        history = result.get("history") or entry.get("history") or []
        entry["history"] = history
        values = [v for _, v in history]
        pick = max if self.spec["goal"] == "maximize" else min
        entry["value"] = pick(values) if values and state in ("complete", "pruned") else None
        entry["epochs"] = history[-1][0] if history else None
        if state == "interrupted":
            entry["state"] = "running"  # a resume continues it
            self.ledger.save()
            return
        entry["state"] = state
        if state == "failed":
            entry["message"] = self._failure(n, code)
        self.ledger.save()
        if self.study is not None and entry["optuna_id"] is not None:
            from optuna.trial import TrialState

            if state == "complete" and entry["value"] is not None:
                self.study.tell(entry["optuna_id"][1], entry["value"])
            elif state == "pruned":
                self.study.tell(entry["optuna_id"][1], state=TrialState.PRUNED)
            else:
                self.study.tell(entry["optuna_id"][1], state=TrialState.FAIL)
        shown_value = f"{entry['value']:.4g}" if entry["value"] is not None else "-"
        self.log(f"trial {n}: {state}  {self.spec['metric']} {shown_value}  "
                 + "  ".join(f"{k}={v}" for k, v in entry["params"].items()))

    def _failure(self, n: int, code: int) -> str:
        why = {3: "diverged (exit 3)", 2: "refused (exit 2)"}.get(code, f"exit {code}")
        try:
            lines = (self.path / "logs" / f"trial-{n:04d}.err").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return why + (f": {lines[-1][:300]}" if lines else "")


def run_sweep(config_path=None, *, trials: int | None = None, jobs: int = 1, resume=None, sweep_dir=None,
              runs_dir=None, log=print) -> tuple[Path, list[dict], int, dict]:
    """Run (or continue) a sweep; returns ``(sweep directory, trials, exit code, resolved sweep section)``
    (exit code 0, or 130 when interrupted).

    ``log(text)`` prints a line of progress (user text inside is not markup-escaped here).
    """
    if jobs < 1:
        raise TrainkitError(f"--jobs must be at least 1, not {jobs}")
    if trials is not None and trials < 1:
        raise TrainkitError(f"--trials must be at least 1, not {trials}")
    config, path, info = _open(config_path, resume, sweep_dir, runs_dir)
    sweep = _Sweep(config, path, info, jobs, log)
    total = sweep.total(trials)
    if trials is not None and trials != info["trials"]:
        info["trials"] = trials
        atomic_write_json(path / "sweep.json", info)
    ledger = sweep.ledger
    queue = [t for t in ledger.unfinished()]
    done = len(ledger.trials)
    if resume is not None:
        log(f"resuming sweep {path}: {len(ledger.finished())} trials finished, {len(queue)} to continue, "
            f"{max(0, total - done)} to start")
    else:
        log(f"sweep directory: {path}")
    running: dict[int, tuple[subprocess.Popen, dict]] = {}
    next_number = done
    code = 0
    try:
        while queue or next_number < total or running:
            while len(running) < jobs and (queue or next_number < total):
                if queue:
                    entry = queue.pop(0)
                else:
                    entry = sweep.new_trial(next_number)
                    next_number += 1
                running[entry["number"]] = (sweep.launch(entry), entry)
            time.sleep(0.05)
            for n, (proc, entry) in list(running.items()):
                if proc.poll() is not None:
                    del running[n]
                    sweep.record(entry, proc.returncode)
                    if proc.returncode == 130:  # stopped from outside the sweep: stop the sweep too
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        code = 130
        for proc, _ in running.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        for n, (proc, entry) in running.items():
            while True:
                try:
                    proc.wait()
                    break
                except KeyboardInterrupt:  # a second Ctrl-C: the trials are stopping already
                    continue
            sweep.record(entry, proc.returncode)
    return path, [ledger.trials[n] for n in sorted(ledger.trials)], code, sweep.spec
