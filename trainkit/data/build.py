"""From a config's ``data:`` section to datasets and loaders: :func:`build` and :class:`DataBundle`.

The config stage calls ``build(spec, seed)`` once. ``spec`` is the ``data:``
mapping of the YAML file::

    data:
      dataset: cifar10          # a name from DATASETS
      root: ~/data              # default: $TRAINKIT_DATA, else ~/.cache/trainkit/datasets
      download: false
      val_split: 0.1            # share of train held out (seeded, stratified for classes)
      batch_size: 32
      shuffle: true
      transforms:               # names from TRANSFORMS, in order
        - random_crop: {padding: 4}
        - random_horizontal_flip
        - normalize: {mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}

The train loader applies the random transforms (on uint8 images, before
scaling), then ``ToTensor``, then the deterministic ones (normalize); eval
loaders apply only ``ToTensor`` and the deterministic ones. ``normalize``
without ``mean``/``std`` uses per-channel (per-feature) statistics of the
training part.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from trainkit.errors import ConfigError, DataError, Problem

from .dataset import ArrayDataset, Subset
from .download import default_root
from .loader import DataLoader
from .split import holdout_split
from .transforms import TRANSFORMS, Compose, Normalize, RandomCrop, ToTensor

__all__ = ["DATASETS", "DATASET_OPTIONS", "COMMON_OPTIONS", "DataBundle", "build"]

#: Dataset names usable as ``data.dataset``: name -> one-line description.
DATASETS: dict[str, str] = {
    "cifar10": "CIFAR-10: 32x32 colour images, 10 classes (50,000 train / 10,000 test); download or root",
    "cifar100": "CIFAR-100: 32x32 colour images, 100 classes (50,000 train / 10,000 test); download or root",
    "mnist": "MNIST: 28x28 grey handwritten digits, 10 classes (60,000 / 10,000); download or root",
    "fashion_mnist": "Fashion-MNIST: 28x28 grey clothing images, 10 classes (60,000 / 10,000)",
    "digits": "embedded: 1,797 8x8 handwritten digits as (1, 8, 8) images in [0, 1], 10 classes",
    "iris": "embedded: 150 iris flowers, 4 features, 3 classes",
    "diabetes": "embedded: 442 patients, 10 features, regression target",
    "linear": "synthetic: y = X.w + b + noise, regression",
    "csv": "a CSV file with a header: path, target column, optional feature columns",
    "npz": "an .npz file with arrays x/y or x_train/y_train[/x_test/y_test]",
}

#: Keys every dataset accepts: key -> description.
COMMON_OPTIONS: dict[str, str] = {
    "dataset": f"one of {', '.join(DATASETS)}",
    "root": "data folder (default: $TRAINKIT_DATA, else ~/.cache/trainkit/datasets)",
    "download": "download missing files (default false)",
    "val_split": "fraction of train held out for validation, 0 <= v < 1 (default 0)",
    "batch_size": "samples per batch (default 32)",
    "shuffle": "shuffle the training data every epoch (default true)",
    "drop_last": "drop the last incomplete training batch (default false)",
    "transforms": "list of transform names or {name: {args}}",
}

_SPLIT_OPTS = {"test_split": "fraction held out as the test set when the file has none (default 0.2)"}

#: Extra keys per dataset: name -> {key: description}.
DATASET_OPTIONS: dict[str, dict[str, str]] = {
    "cifar10": {}, "cifar100": {}, "mnist": {}, "fashion_mnist": {},
    "digits": dict(_SPLIT_OPTS), "iris": dict(_SPLIT_OPTS), "diabetes": dict(_SPLIT_OPTS),
    "linear": {"n_samples": "number of samples (default 200)", "n_features": "features (default 1)",
               "noise": "standard deviation of the noise (default 0.1)",
               "seed": "seed of the generated problem (default 0; independent of the run seed)", **_SPLIT_OPTS},
    "csv": {"path": "the CSV file (required)", "target": "name of the target column (required)",
            "features": "list of input column names (default: all others)",
            "task": "classification or regression (default: from the target column)",
            "test_path": "a CSV file with the same columns used as the test set", **_SPLIT_OPTS},
    "npz": {"path": "the .npz file (required)", "task": "classification or regression (default: from y's dtype)",
            **_SPLIT_OPTS},
}

_RANDOM_NAMES = {"random_crop", "random_horizontal_flip"}


@dataclass
class DataBundle:
    """Everything the trainer needs from the data section.

    Attributes:
        train, val, test: datasets (``val`` None when ``val_split`` is 0; ``test``
            may be None for user data without a test part).
        input_shape: shape of one input sample after transforms, e.g. (3, 32, 32) or (4,).
        num_classes: number of classes, None for regression.
        class_names: names of the classes, None for regression.
        task: 'classification' or 'regression'.
        train_transform, eval_transform: batch transforms of the train and eval loaders.
    """

    name: str
    train: Any
    val: Any
    test: Any
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: list[str] | None
    task: str
    batch_size: int = 32
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    train_transform: Callable | None = None
    eval_transform: Callable | None = None
    extra: dict = field(default_factory=dict)

    def train_loader(self, seed: int | None = None) -> DataLoader:
        """Shuffling, augmenting loader over the training part (its generator seeded by ``seed``
        or the run seed)."""
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=self.shuffle, drop_last=self.drop_last,
                          seed=self.seed if seed is None else seed, transform=self.train_transform)

    def eval_loader(self, split: str = "val", batch_size: int | None = None) -> DataLoader | None:
        """In-order loader over 'val' or 'test' with only deterministic transforms (None if that part is absent)."""
        if split not in ("val", "test", "train"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        ds = getattr(self, split)
        if ds is None:
            return None
        return DataLoader(ds, batch_size=batch_size or self.batch_size, shuffle=False, seed=0,
                          transform=self.eval_transform)

    def info(self) -> dict:
        """JSON-friendly summary for logs and reports."""
        return {"dataset": self.name, "task": self.task, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "class_names": self.class_names,
                "train": len(self.train), "val": len(self.val) if self.val is not None else 0,
                "test": len(self.test) if self.test is not None else 0}


def _problem(path: str, message: str) -> Problem:
    return Problem(None, None, None, path, message)


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _load_parts(name: str, spec: dict) -> tuple[Any, Any]:
    """(train, test) datasets without transforms."""
    from . import datasets as D

    root, download = default_root(spec.get("root")), bool(spec.get("download", False))
    test_split = float(spec.get("test_split", 0.2))
    if name in ("cifar10", "cifar100", "mnist", "fashion_mnist"):
        cls = {"cifar10": D.CIFAR10, "cifar100": D.CIFAR100, "mnist": D.MNIST, "fashion_mnist": D.FashionMNIST}[name]
        return cls(root, train=True, download=download), cls(root, train=False, download=download)
    if name in ("digits", "iris", "diabetes"):
        cls = {"digits": D.Digits, "iris": D.Iris, "diabetes": D.Diabetes}[name]
        return cls(train=True, test_fraction=test_split), cls(train=False, test_fraction=test_split)
    if name == "linear":
        kw = {k: spec[k] for k in ("n_samples", "n_features", "noise") if k in spec}
        seed = int(spec.get("seed", 0))
        return (D.LinearData(**kw, seed=seed, train=True, test_fraction=test_split),
                D.LinearData(**kw, seed=seed, train=False, test_fraction=test_split))
    if name == "csv":
        kw = {"target": spec["target"], "features": spec.get("features"), "task": spec.get("task")}
        full = D.CSVDataset(spec["path"], **kw)
        if spec.get("test_path"):
            # The test file maps its labels through the training file's classes, so
            # class indices agree between the two.
            return full, D.CSVDataset(spec["test_path"], **{**kw, "task": full.task}, class_names=full.classes)
        return _split_off_test(full, test_split)
    if name == "npz":
        train = D.NPZDataset(spec["path"], train=True, task=spec.get("task"))
        if train.has_test:
            return train, D.NPZDataset(spec["path"], train=False, task=train.task)
        return _split_off_test(train, test_split)
    raise KeyError(name)  # pragma: no cover - validated before


def _split_off_test(full: ArrayDataset, fraction: float) -> tuple[Any, Any]:
    labels = full.target_array if full.task == "classification" else None
    keep, held = holdout_split(labels, len(full), fraction, seed=0)
    return Subset(full, keep), (Subset(full, held) if len(held) else None)


def _parse_transforms(items: Any, problems: list[Problem]) -> list[tuple[str, dict, str]]:
    """Normalise the ``transforms`` list to (name, args, key path) triples, collecting problems."""
    out = []
    if items is None:
        return out
    if not isinstance(items, list):
        problems.append(_problem("data.transforms", "must be a list of transform names or {name: {args}}"))
        return out
    for i, item in enumerate(items):
        where = f"data.transforms[{i}]"
        if isinstance(item, str):
            name, args = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
            args = {} if args is None else args
        else:
            problems.append(_problem(where, "must be a name or a mapping {name: {args}}"))
            continue
        if name not in TRANSFORMS:
            problems.append(_problem(where, f"unknown transform {name!r}{_suggest(name, TRANSFORMS)}; "
                                            f"known: {', '.join(TRANSFORMS)}"))
            continue
        if not isinstance(args, dict):
            problems.append(_problem(f"{where}.{name}", "arguments must be a mapping"))
            continue
        args = {k: v for k, v in args.items() if v is not None}  # null means "the default"
        allowed = TRANSFORMS[name].config_args
        for key in args:
            if key not in allowed:
                problems.append(_problem(f"{where}.{name}.{key}", f"unknown argument{_suggest(key, allowed)}; "
                                                                  f"allowed: {', '.join(allowed) or 'none'}"))
        out.append((name, dict(args), f"{where}.{name}"))
    return out


def _stats(dataset: Any, max_samples: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (per-feature) mean and std of the training inputs, as ToTensor would scale them.

    An evenly spaced sample of at most ``max_samples`` inputs is plenty for
    normalisation statistics and keeps the float64 working copy small.
    """
    n = len(dataset)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_samples)).astype(np.int64))
    data = dataset.get_batch(pick, None)[0]
    scale = 255.0 if data.dtype == np.uint8 else 1.0
    mean, std = [], []
    for c in range(data.shape[1]):  # one channel at a time: small temporaries
        xc = data[:, c].astype(np.float64) / scale
        mean.append(xc.mean())
        std.append(xc.std())
    std_arr = np.asarray(std)
    return np.asarray(mean), np.where(std_arr > 0, std_arr, 1.0)


def _check_options(spec: dict, problems: list[Problem]) -> str | None:
    name = spec.get("dataset")
    if name not in DATASETS:
        problems.append(_problem("data.dataset", f"unknown dataset {name!r}{_suggest(name, DATASETS)}; "
                                                 f"known: {', '.join(DATASETS)}"))
        return None
    allowed = {**COMMON_OPTIONS, **DATASET_OPTIONS[name]}
    for key in spec:
        if key not in allowed:
            problems.append(_problem(f"data.{key}", f"unknown key for dataset {name!r}{_suggest(key, allowed)}"))
    for key in ("path", "target") if name == "csv" else ("path",) if name == "npz" else ():
        if key not in spec:
            problems.append(_problem(f"data.{key}", f"required for dataset {name!r}"))
    for key in ("val_split", "test_split"):
        v = spec.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1:
            problems.append(_problem(f"data.{key}", f"must be a number in [0, 1), got {v!r}"))
    bs = spec.get("batch_size", 32)
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        problems.append(_problem("data.batch_size", f"must be a positive integer, got {bs!r}"))
    return name


def build(spec: dict, seed: int = 0) -> DataBundle:
    """Build datasets and transforms from a config's ``data:`` mapping.

    Args:
        spec: the ``data:`` section (see the module docstring and ``DATASET_OPTIONS``).
        seed: the run seed; it seeds the validation split and the train loader.

    Raises:
        ConfigError: unknown dataset/keys/transforms or bad values (all problems at once).
        DataError: files missing or malformed.
    """
    problems: list[Problem] = []
    if not isinstance(spec, dict):
        raise ConfigError([_problem("data", "must be a mapping with at least 'dataset'")])
    # The validated config writes every optional key, with null for "the default".
    spec = {k: v for k, v in spec.items() if v is not None}
    name = _check_options(spec, problems)
    steps = _parse_transforms(spec.get("transforms"), problems)
    if problems:
        raise ConfigError(problems)
    train_full, test = _load_parts(name, spec)
    task = train_full.task
    if task == "classification" and test is not None and len(test) and train_full.classes is not None:
        if int(np.max(test.target_array)) >= len(train_full.classes):
            raise DataError(f"{spec.get('test_path') or spec.get('path') or name}: test label "
                            f"{int(np.max(test.target_array))} out of range 0..{len(train_full.classes) - 1} "
                            "of the training data")
    labels = train_full.target_array if task == "classification" else None
    keep, held = holdout_split(labels, len(train_full), float(spec.get("val_split", 0.0)), seed)
    train = Subset(train_full, keep) if len(held) else train_full
    val = Subset(train_full, held) if len(held) else None
    input_shape = train_full.input_shape
    is_image = len(input_shape) == 3

    random_steps, fixed_steps = [], []
    for tname, args, where in steps:
        try:
            if tname in _RANDOM_NAMES and not is_image:
                raise ValueError(f"{tname} needs image data (C, H, W); {name} samples have shape {input_shape}")
            if tname == "random_crop":
                args.setdefault("size", list(input_shape[1:]))
                t = RandomCrop(**args)
                if list(t.size) != list(input_shape[1:]):
                    raise ValueError(f"size {list(t.size)} must equal the image size {list(input_shape[1:])} so "
                                     "that train and eval inputs have the same shape; use padding to shift")
            elif tname == "normalize":
                if "mean" not in args or "std" not in args:
                    mean, std = _stats(train)
                    args.setdefault("mean", mean.tolist())
                    args.setdefault("std", std.tolist())
                t = Normalize(**args)
                size = max(t.mean.size, t.std.size)
                if size not in (1, input_shape[0]):
                    raise ValueError(f"has {size} values but the data has {input_shape[0]} channels/features")
            else:
                t = TRANSFORMS[tname](**args)
        except (TypeError, ValueError) as exc:
            problems.append(_problem(where, str(exc)))
            continue
        (random_steps if t.random else fixed_steps).append(t)
    if problems:
        raise ConfigError(problems)
    train_tf = Compose(random_steps + [ToTensor()] + fixed_steps)
    eval_tf = Compose([ToTensor()] + fixed_steps)
    classes = list(train_full.classes) if task == "classification" and train_full.classes is not None else None
    return DataBundle(
        name=name, train=train, val=val, test=test, input_shape=input_shape,
        num_classes=len(classes) if classes is not None else None, class_names=classes, task=task,
        batch_size=int(spec.get("batch_size", 32)), shuffle=bool(spec.get("shuffle", True)),
        drop_last=bool(spec.get("drop_last", False)), seed=int(seed), train_transform=train_tf,
        eval_transform=eval_tf,
    )
