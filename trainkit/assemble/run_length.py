"""Schedulers with a fixed cycle must cover the run: checked when a run is prepared and when it is resumed.

``OneCycleLR`` plans its whole cycle when it is built (``total_steps``) and,
like PyTorch's, raises once it is stepped past it; a phase of zero length
divides by zero at its first step. Both would stop a run with a traceback in
the middle of training (``onecycle: {total_steps: 1}`` at step 2), or after
resuming a finished run with ``--set train.epochs=N`` (the restored scheduler
keeps the cycle of the original length). :func:`run_length_problem` finds
these before anything is written, as a located config problem.
"""
from __future__ import annotations

__all__ = ["run_length_problem"]


def _cycles(schedule):
    """``(scheduler, first step, path)`` of each fixed-cycle scheduler, nested ones (sequential) included."""
    top = schedule.scheduler
    yield top, 0, ("scheduler",)
    children = getattr(top, "_schedulers", None) or []
    milestones = [0] + list(getattr(top, "_milestones", []) or [])
    for i, child in enumerate(children):
        yield child, milestones[i] if i < len(milestones) else 0, ("scheduler", "schedulers", i)


def _zero_phase(sched) -> bool:
    start = 0.0
    for phase in getattr(sched, "_schedule_phases", []):
        if float(phase["end_step"]) == start:
            return True
        start = float(phase["end_step"])
    return False


def run_length_problem(config, schedule, steps_per_epoch: int, resumed: bool = False):
    """``(key path, message)`` when a fixed-cycle scheduler cannot last the configured run, else None.

    Args:
        config: the run's loaded config (its ``train.epochs`` is the run's length).
        schedule: the built :class:`~trainkit.assemble.components.Schedule` (None: no scheduler);
            after a resume, with the restored state (the cycle the run was started with).
        steps_per_epoch: optimizer steps in one epoch.
        resumed: word the message for ``--resume ... --set train.epochs=N``.
    """
    if schedule is None:
        return None
    epochs = config.resolved.train.epochs
    unit = "steps" if schedule.interval == "step" else "epochs"
    run = epochs * max(int(steps_per_epoch), 1) if unit == "steps" else epochs
    for sched, first, path in _cycles(schedule):
        total = getattr(sched, "total_steps", None)
        if not isinstance(total, int) or not hasattr(sched, "_schedule_phases"):
            continue
        needed = run - first
        if resumed and needed > total:
            return (("train", "epochs"),
                    f"this run's onecycle scheduler was built for a cycle of {total} {unit} and cannot step past "
                    f"it (OneCycleLR ends there), so the run cannot be extended to {epochs} epochs ({needed} "
                    f"{unit}); to train longer, start a new run with train.epochs: {epochs} (the cycle then "
                    f"spans the whole run), or resume it without changing train.epochs")
        if needed > total:
            per = f" ({epochs} epochs x {steps_per_epoch} steps)" if unit == "steps" else ""
            return (path + ("total_steps",),
                    f"the onecycle cycle is {total} {unit[:-1] if total == 1 else unit}, but the run takes "
                    f"{needed}{per}; OneCycleLR cannot "
                    f"step past its cycle: set total_steps to at least {needed}, or null for the whole run")
        if _zero_phase(sched):
            return (path + ("pct_start",),
                    f"pct_start x total_steps ({total}) leaves a phase of the cycle with zero {unit}, which "
                    "OneCycleLR divides by; change pct_start or the run's length")
    return None
