"""Trial parameters: random and grid drawn by trainkit itself, Optuna distributions for tpe.

Random trial ``n`` of a sweep with seed ``s`` draws from its own generator
``numpy.random.default_rng([s, n])``: the same seed gives the same trials, in
any order, whatever ``--jobs`` and however often the sweep was resumed.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["random_params", "grid_points", "distributions"]


def random_params(parameters: dict, seed: int, number: int) -> dict:
    """The parameters of random trial ``number`` (see the module docstring)."""
    rng = np.random.default_rng([seed, number])
    out = {}
    for name, p in parameters.items():
        space = p["space"]
        if space in ("choice", "grid"):
            out[name] = p["values"][int(rng.integers(len(p["values"])))]
        elif space == "uniform":
            out[name] = float(rng.uniform(p["lower"], p["upper"]))
        elif space == "loguniform":
            out[name] = float(math.exp(rng.uniform(math.log(p["lower"]), math.log(p["upper"]))))
        else:  # int, bounds included
            lo, hi = int(p["lower"]), int(p["upper"])
            if p["log"]:
                out[name] = int(min(hi, max(lo, round(math.exp(rng.uniform(math.log(max(lo, 1)),
                                                                            math.log(hi + 1))) - 0.5))))
            else:
                out[name] = int(rng.integers(lo, hi + 1))
    return out


def grid_points(parameters: dict) -> list[dict]:
    """Every combination of the listed values, the first parameter varying slowest."""
    names = list(parameters)
    return [dict(zip(names, combo)) for combo in itertools.product(*(parameters[n]["values"] for n in names))]


def distributions(parameters: dict) -> dict:
    """Optuna distributions of the parameters (grid values become a categorical choice)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, p in parameters.items():
        if p["space"] in ("choice", "grid"):
            out[name] = CategoricalDistribution(list(dict.fromkeys(p["values"])))
        elif p["space"] == "int":
            out[name] = IntDistribution(int(p["lower"]), int(p["upper"]), log=p["log"])
        else:
            out[name] = FloatDistribution(p["lower"], p["upper"], log=p["space"] == "loguniform")
    return out
