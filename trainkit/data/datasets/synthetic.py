"""Synthetic data: the ``linear`` regression generator for the classic linear-regression example."""
from __future__ import annotations

from typing import Callable

import numpy as np

from trainkit.registry import Field, Float, Int, dataset

from ..dataset import ArrayDataset
from ..specs import TEST_SPLIT
from ..split import holdout_split

__all__ = ["LinearData"]


@dataset("linear", shape=lambda a: (a["n_features"],), task="regression", samples=lambda a: a["n_samples"],
         fields={"n_samples": Field(Int(lo=2), 200, "number of generated samples"),
                 "n_features": Field(Int(lo=1), 1, "number of input features"),
                 "noise": Field(Float(lo=0), 0.1, "standard deviation of the Gaussian label noise"),
                 "seed": Field(Int(lo=0), 0, "seed of the generated problem (independent of the run seed)"),
                 "test_split": TEST_SPLIT},
         doc="synthetic: y = X.w + b + noise, regression")
class LinearData(ArrayDataset):
    """Samples of ``y = X @ weight + bias + noise * N(0, 1)``.

    ``X`` is standard normal (n_samples, n_features); ``weight`` is drawn
    uniformly from [-2, 2] per feature and ``bias`` from [-1, 1], all from
    ``numpy.random.default_rng(seed)``, so a seed gives the same problem every
    time. The true parameters are kept as ``weight`` and ``bias`` for checking
    what a model learned. ``test_fraction`` (default 0.2) of the samples form
    the test part (``train=False``).

    Inputs are float32 (N, n_features); targets float32 (N, 1).
    """

    def __init__(self, n_samples: int = 200, n_features: int = 1, noise: float = 0.1, seed: int = 0,
                 train: bool = True, test_fraction: float = 0.2, transform: Callable | None = None):
        if int(n_samples) < 2 or int(n_features) < 1 or float(noise) < 0:
            raise ValueError("linear data needs n_samples >= 2, n_features >= 1 and noise >= 0")
        rng = np.random.default_rng(seed)
        self.weight = rng.uniform(-2.0, 2.0, size=int(n_features))
        self.bias = float(rng.uniform(-1.0, 1.0))
        x = rng.standard_normal((int(n_samples), int(n_features)))
        y = x @ self.weight + self.bias + float(noise) * rng.standard_normal(int(n_samples))
        keep, held = holdout_split(None, int(n_samples), test_fraction, seed)
        idx = keep if train else held
        self.train = bool(train)
        super().__init__(x[idx].astype(np.float32), y[idx].astype(np.float32).reshape(-1, 1), transform=transform)

    @classmethod
    def from_config(cls, args) -> tuple:
        """The train and test parts of the problem a config's ``data:`` section describes."""
        kw = {k: args[k] for k in ("n_samples", "n_features", "noise", "seed")}
        return (cls(**kw, train=True, test_fraction=args["test_split"]),
                cls(**kw, train=False, test_fraction=args["test_split"]))
