"""Small data sets shipped inside the package, so trainkit trains on a machine with no network.

* ``digits``: 1,797 handwritten digits, 8x8 pixels with values 0..16, 10 classes.
  Served as float32 images (1, 8, 8) **divided by 16**, i.e. in [0, 1] like
  ``ToTensor`` output. (UCI Optical Recognition of Handwritten Digits,
  E. Alpaydin and C. Kaynak, 1998; CC BY 4.0.)
* ``iris``: 150 flowers x 4 measurements in cm (float32, unscaled), 3 classes.
  (UCI Iris, R. A. Fisher, 1936; CC BY 4.0.)
* ``diabetes``: 442 patients x 10 baseline variables (float32, unscaled) and a
  disease-progression score as a float32 (N, 1) regression target. (Efron,
  Hastie, Johnstone and Tibshirani, Least Angle Regression, 2004; BSD-3-Clause.)

Each is split into train and test with a fixed, seeded split: ``test_fraction``
(default 0.2, i.e. 80/20) held out, stratified by class for digits and iris,
with ``split_seed`` (default 0). The split does not depend on the run's seed,
so test sets stay comparable across runs.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import dataset

from ..dataset import ArrayDataset
from ..specs import TEST_SPLIT
from ..split import holdout_split

__all__ = ["Digits", "Iris", "Diabetes", "EMBEDDED_DIR"]

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "embedded"


def _read_text(name: str) -> str:
    path = EMBEDDED_DIR / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: embedded data file missing ({exc.strerror}); reinstall trainkit") from None
    return (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("ascii")


@lru_cache(maxsize=None)
def _load(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Parse one embedded set into (inputs, targets, class names); cached, read-only arrays."""
    if name == "digits":
        table = np.array([ln.split(",") for ln in _read_text("digits.csv.gz").split()], dtype=np.int64)
        if table.shape[1] != 65:
            raise DataError("digits.csv.gz: expected 65 columns")
        x = (table[:, :64].astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
        y, classes = table[:, 64], tuple(str(i) for i in range(10))
    elif name == "iris":
        lines = _read_text("iris.csv").split()
        header = lines[0].split(",")
        table = np.array([ln.split(",") for ln in lines[1:]], dtype=np.float64)
        x, y, classes = table[:, :4].astype(np.float32), table[:, 4].astype(np.int64), tuple(header[2:])
    elif name == "diabetes":
        x = np.array([ln.split() for ln in _read_text("diabetes_data_raw.csv.gz").splitlines() if ln.strip()],
                     dtype=np.float32)
        y = np.array(_read_text("diabetes_target.csv.gz").split(), dtype=np.float32).reshape(-1, 1)
        classes = None
    else:  # pragma: no cover - internal
        raise KeyError(name)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y, classes


class _Embedded(ArrayDataset):
    key = ""
    stratify = True

    def __init__(self, train: bool = True, transform: Callable | None = None, test_fraction: float = 0.2,
                 split_seed: int = 0, root=None, download: bool = False):
        x, y, classes = _load(self.key)
        keep, held = holdout_split(y if self.stratify else None, len(x), test_fraction, split_seed)
        idx = keep if train else held
        self.train = bool(train)
        super().__init__(x[idx], y[idx], transform=transform, classes=classes)

    @classmethod
    def from_config(cls, args) -> tuple:
        """The train and test parts a config's ``data:`` section asks for (its ``test_split``)."""
        return cls(train=True, test_fraction=args["test_split"]), cls(train=False, test_fraction=args["test_split"])


@dataset("digits", shape=(1, 8, 8), task="classification", fields={"test_split": TEST_SPLIT},
         doc="embedded: 1,797 8x8 handwritten digits as (1, 8, 8) images in [0, 1], 10 classes")
class Digits(_Embedded):
    """Handwritten digits (8x8): float32 images (1, 8, 8) in [0, 1] (pixel value / 16), 10 classes.

    Args:
        train: the 80% training part (True) or the 20% test part (False).
        transform: applied to images.
        test_fraction: share held out as test (stratified), default 0.2.
        split_seed: seed of the train/test split, default 0.
    """

    key = "digits"


@dataset("iris", shape=(4,), task="classification", fields={"test_split": TEST_SPLIT},
         doc="embedded: 150 iris flowers, 4 features, 3 classes")
class Iris(_Embedded):
    """Iris flowers: 4 float32 features (cm), 3 classes; same arguments as :class:`Digits`."""

    key = "iris"


@dataset("diabetes", shape=(10,), task="regression", fields={"test_split": TEST_SPLIT},
         doc="embedded: 442 patients, 10 features, regression target")
class Diabetes(_Embedded):
    """Diabetes progression: 10 float32 features, float32 (N, 1) target; same arguments as :class:`Digits`
    (the split is random, not stratified)."""

    key = "diabetes"
    stratify = False
