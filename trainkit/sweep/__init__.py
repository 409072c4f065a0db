"""``trainkit sweep``: hyper-parameter search over a config's ``sweep:`` section, each trial a run directory.

:mod:`.space` draws the trial parameters (random and grid are trainkit's own, so
they need no Optuna and the same seed always gives the same trials; tpe is
Optuna's), :mod:`.study` keeps the record of trials (``trials.json``, and the
Optuna study in ``study.db`` whenever Optuna is installed), :mod:`.runner` runs
the trials as processes, :mod:`.trial` is one trial's process (it reports each
epoch's metric, so the median pruner can stop it), :mod:`.results` writes the
table, ``trials.csv``, ``best.yaml`` and ``sweep.png``.
"""
from .runner import run_sweep

__all__ = ["run_sweep"]
