"""kill -9 anywhere, then ``--resume``, until the run completes: always the uninterrupted run (issue 12).

A small run (the tiny digits MLP with dropout and a step scheduler, on 256 samples per part, 3 epochs) is
started in chains of processes. Each process is SIGKILLed at a chosen *event* (tests/fork_runner.py): a
training or evaluation batch, a checkpoint file write (half the file written, or before it), a checkpoint
folder rename, a metrics append, an atomic replace of run.json, config.yaml, the report or a plot, the
start of the report or the plots. The first kill of each chain is drawn from one phase in turn (training,
checkpointing, bookkeeping, report, plots), so every phase is hit on every run of the test; the resumes
after it is killed again at a random event of what is left. Every chain must end ``completed`` with
metrics (both logs, timing columns aside), last and best weights and test report identical to the
uninterrupted run, its plots written and no checkpoint debris.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from clitools import DIGITS_MLP, assert_same_run, env_for
from fork_runner import ForkRunner

SMALL = DIGITS_MLP.replace("  batch_size: 32\n", "  batch_size: 32\n  limit: 256\n")

#: Event label prefixes of each phase.
PHASES = {
    "training": ("batch",),
    "checkpointing": ("ckpt_write", "ckpt_rename"),
    "bookkeeping": ("append:", "replace:run.json", "replace:config.yaml"),
    "report": ("report:", "replace:report"),
    "plots": ("plots:", "replace:curves.png", "replace:confusion_matrix.png"),
}
CHAINS = 13  # first kills; a kill while resuming adds about as many


def _env(tmp):
    return {k: v for k, v in env_for(tmp).items() if k.startswith("TRAINKIT")}


def _chain(runner: ForkRunner, tmp, events: list[str], phase: str, rng: random.Random) -> tuple[list, dict]:
    """One run killed at an event of ``phase``, then resumed (and maybe killed again) until it completes."""
    tmp.mkdir()
    (tmp / "small.yaml").write_text(SMALL)
    run = tmp / "run"
    # Events before run.json exists would leave no run to resume (an empty --run-dir: start it again).
    first = events.index("replace:run.json") + 2
    choices = [i + 1 for i, e in enumerate(events) if i + 1 >= first and e.startswith(PHASES[phase])]
    at = rng.choice(choices)
    kills = [(phase, events[at - 1])]
    r = runner.run(["train", tmp / "small.yaml", "--run-dir", run, "-q"], tmp, env=_env(tmp), fault="kill", at=at,
                   half_write=rng.random() < 0.5)
    assert r["rc"] == -9, (events[at - 1], r["stdout"][-2000:], r["stderr"][-2000:])
    for _ in range(10):
        # One more kill while resuming, somewhere in what is left of the run (a resume that finishes
        # before the drawn event completes the chain), then a resume left alone.
        again = len(kills) < 2
        r = runner.run(["train", "--resume", run, "-q"], tmp, env=_env(tmp), fault="kill" if again else None,
                       at=rng.randint(1, len(events) - at + 8) if again else None, half_write=rng.random() < 0.5,
                       log_events=again)
        if r["rc"] == -9:
            kills.append(("resume", r["events"][-1]))
            continue
        assert r["rc"] == 0, (kills, r["stdout"][-2000:], r["stderr"][-2000:])
        break
    return kills, json.loads((run / "run.json").read_text())


def test_kill_9_anywhere_then_resume_always_ends_as_the_uninterrupted_run(tmp_path):
    seed = random.randrange(2 ** 32)
    rng = random.Random(seed)
    runners = [ForkRunner(env_for(tmp_path)) for _ in range(2)]
    try:
        (tmp_path / "small.yaml").write_text(SMALL)
        base = runners[0].run(["train", tmp_path / "small.yaml", "--run-dir", tmp_path / "baseline", "-q"], tmp_path,
                              env=_env(tmp_path), log_events=True)
        assert base["rc"] == 0, base["stderr"]
        events = base["events"]
        phases = [list(PHASES)[i % len(PHASES)] for i in range(CHAINS)]
        seeds = [rng.randrange(2 ** 32) for _ in phases]

        def chains(k):  # each thread drives its own fork server: one command at a time on each
            return {i: _chain(runners[k], tmp_path / f"chain{i}", events, phases[i], random.Random(seeds[i]))
                    for i in range(k, CHAINS, 2)}

        with ThreadPoolExecutor(2) as pool:
            done = {}
            for part in pool.map(chains, range(2)):
                done.update(part)
        results = [done[i] for i in range(CHAINS)]
    finally:
        for r in runners:
            r.close()
    kills = [k for ks, _ in results for k in ks]
    assert len(kills) >= 20 and {p for p, _ in kills} >= set(PHASES), kills
    for i, (ks, info) in enumerate(results):
        run = tmp_path / f"chain{i}" / "run"
        case = f"seed {seed}, chain {i}, kills {ks}"
        assert info["status"] == "completed", case
        assert (run / "curves.png").is_file() and (run / "confusion_matrix.png").is_file(), case
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"], case
        try:
            assert_same_run(run, tmp_path / "baseline")
        except AssertionError as exc:
            pytest.fail(f"{case}: {exc}")
