"""From a validated ``data:`` section to datasets and loaders: :func:`build` and :class:`DataBundle`.

The config stage calls ``build(spec, seed)`` once with the typed
:class:`~trainkit.data.schema.DataSpec`; Python code may pass the ``data:``
mapping of a YAML file instead, which is validated by the same rules
(:func:`~trainkit.data.schema.check_data`)::

    data:
      dataset: cifar10          # a declared data set (trainkit.registry.DATASETS)
      root: ~/data              # default: $TRAINKIT_DATA, else ~/.cache/trainkit/datasets
      download: false
      val_split: 0.1            # share of train held out (seeded, stratified for classes)
      batch_size: 32
      shuffle: true
      transforms:               # declared transforms, in order
        - random_crop: {padding: 4}
        - random_horizontal_flip
        - normalize: {mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}

The train loader applies the random transforms (on uint8 images, before
scaling), then ``ToTensor``, then the deterministic ones (normalize); eval
loaders apply only ``ToTensor`` and the deterministic ones. ``normalize``
without ``mean``/``std`` uses per-channel (per-feature) statistics of the
training part. Transforms are checked again against the loaded data's shape
(a data file's shape is known only once it is read).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from trainkit.errors import ConfigError, DataError, Problem
from trainkit.registry import DATASETS, TRANSFORMS, Checker, ShapeProblem, fmt

from .dataset import Subset
from .loader import DataLoader
from .schema import DataSpec, _apply_shape, check_data, thaw
from .split import holdout_split
from .transforms import Compose, ToTensor

__all__ = ["DATASETS", "TRANSFORMS", "DataBundle", "build", "python_path"]


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
        tta: ``data.tta``, the test-time augmentation of every evaluation (see
            :func:`~trainkit.train.evaluate.evaluate`).
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
    #: test-time augmentation of every evaluation ("none" or "hflip", ``data.tta``)
    tta: str = "none"

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


def python_path(path: tuple) -> str:
    """``("data", "transforms", 1, "normalize")`` -> ``data.transforms[1].normalize`` (no file to point at)."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _problems(pairs, locate) -> list[Problem]:
    if locate is not None:
        return [locate(path, msg) for path, msg in pairs]
    return [Problem(None, None, None, python_path(path), msg) for path, msg in pairs]


def _split_off_test(full, fraction: float) -> tuple[Any, Any]:
    labels = full.target_array if full.task == "classification" else None
    keep, held = holdout_split(labels, len(full), fraction, seed=0)
    return Subset(full, keep), (Subset(full, held) if len(held) else None)


def _check_trainable(name: str, args: dict, train: Any, test: Any, locate: Callable | None) -> None:
    """Refuse data a model cannot be trained on: an empty training part, or a single class."""
    if len(train) == 0:
        n_test = len(test) if test is not None else 0
        if args.get("test_split") and n_test:
            raise ConfigError(_problems([(("data", "test_split"), (
                f"{float(args['test_split'])} holds out all {n_test} samples for the test set and "
                "leaves 0 to train on; use a smaller test_split"))], locate))
        raise DataError(f"{args.get('path') or name}: no training samples")
    if train.task == "classification" and train.classes is not None and len(train.classes) < 2:
        # sklearn refuses this too ("needs samples of at least 2 classes"); accuracy, F1 and the
        # confusion matrix need two.
        raise DataError(f"{args.get('path') or name}: the training data hold a single class "
                        f"({train.classes[0]!r}); classification needs at least 2 classes (set data.task: "
                        "regression to predict a number)")


def _check_runtime_shapes(spec, data_shape: tuple, declared: tuple, name: str, ck: Checker) -> None:
    """Train and eval batches must have the shape the transforms declare, in the order they run.

    The train loader runs the random transforms first and then the fixed ones,
    the eval loaders only the fixed ones; a transform that changes the size
    (random_resized_crop, resize, center_crop) can make those differ from the
    order the config lists them in.
    """
    def run(steps) -> tuple | None:
        shape = data_shape
        for t in steps:
            try:
                shape = t.declaration.output_shape(thaw(t.args), shape, name)
            except ShapeProblem:
                return None
        return tuple(shape)

    random = [t for t in spec.transforms if t.declaration.random]
    fixed = [t for t in spec.transforms if not t.declaration.random]
    got = {"train": run(random + fixed), "eval": run(fixed)}
    bad = {k: v for k, v in got.items() if v != declared}
    if bad:
        where = ", ".join(f"{k} batches {fmt(v) if v else 'cannot be built'}" for k, v in got.items())
        ck.error(("data", "transforms"), (
            f"the transforms give samples of {fmt(declared)} in the order listed, but the train loader runs the "
            f"random ones first and the eval loaders only the fixed ones: {where}. Make every random transform "
            "keep the size it receives (size: null), or add a fixed resize/center_crop to the final size"))


def _first(part, n: int):
    """The first ``n`` samples of a data part (the part itself when it has no more)."""
    if part is None or len(part) <= n:
        return part
    return Subset(part, np.arange(n))


def build(spec, seed: int = 0, *, locate: Callable | None = None) -> DataBundle:
    """Build datasets and transforms from a ``data:`` section.

    Args:
        spec: a :class:`~trainkit.data.schema.DataSpec`, or a ``data:`` mapping
            (validated here with the config's rules).
        seed: the run seed; it seeds the validation split and the train loader.
        locate: ``locate(key_path, message) -> Problem`` placing a problem in the
            config file (``Config.problem``); without it problems name the key path.

    Raises:
        ConfigError: a bad ``data:`` mapping, or transforms that do not fit the loaded data.
        DataError: files missing or malformed.
    """
    if not isinstance(spec, DataSpec):
        ck = Checker()
        resolved = check_data(spec, ("data",), ck)
        if ck.problems:
            raise ConfigError(_problems(ck.problems, locate))
        spec = DataSpec.from_resolved(resolved)
    own_bundle = getattr(spec.declaration.cls, "build_bundle", None)
    if own_bundle is not None:  # text data sets: token streams, their own splits and batching
        return own_bundle(spec, seed, locate)
    args = thaw(spec.args)
    name = spec.dataset
    loaded = spec.declaration.load(args)
    # A data set with its own validation part (an image folder's val/) returns (train, val, test).
    train_full, given_val, test = loaded if len(loaded) == 3 else (loaded[0], None, loaded[1])
    if test is None and "test_split" in args:
        train_full, test = _split_off_test(train_full, float(args["test_split"]))
    task = train_full.task
    _check_trainable(name, args, train_full, test, locate)
    if task == "classification" and test is not None and len(test) and train_full.classes is not None:
        if int(np.max(test.target_array)) >= len(train_full.classes):
            raise DataError(f"{args.get('test_path') or args.get('path') or name}: test label "
                            f"{int(np.max(test.target_array))} out of range 0..{len(train_full.classes) - 1} "
                            "of the training data")
    labels = train_full.target_array if task == "classification" else None
    val_split = float(spec.val_split)
    if given_val is not None and val_split > 0:
        raise ConfigError(_problems([(("data", "val_split"), (
            f"the data has its own validation part ({len(given_val)} samples); set val_split: 0 to use it, or "
            "remove it to hold out val_split of the training part instead"))], locate))
    keep, held = holdout_split(labels, len(train_full), val_split, seed)
    if val_split > 0 and (len(keep) == 0 or len(held) == 0):
        # Known only now that the data are read: both parts must hold samples.
        raise ConfigError(_problems([(("data", "val_split"), (
            f"{val_split} of the {len(train_full)} training samples holds out {len(held)} for validation and "
            f"leaves {len(keep)} to train on; both need at least one (use a "
            f"{'smaller' if len(keep) == 0 else 'larger'} val_split, or 0 for no validation)"))], locate))
    train = Subset(train_full, keep) if len(held) else train_full
    val = Subset(train_full, held) if len(held) else given_val
    if spec.limit is not None:  # a smoke run: the first N samples of each part
        train, val, test = (_first(part, int(spec.limit)) for part in (train, val, test))
    shape = tuple(int(s) for s in train_full.input_shape)
    data_shape = shape

    ck = Checker()
    random_steps, fixed_steps = [], []
    for i, t in enumerate(spec.transforms):
        apath = ("data", "transforms", i, t.name)
        decl = t.declaration
        before = len(ck.problems)
        after = _apply_shape(decl, thaw(t.args), shape, apath, ck, name)
        if len(ck.problems) > before:
            continue
        try:
            step = decl.build(thaw(t.args), shape, train)
        except (TypeError, ValueError) as exc:
            ck.error(apath, str(exc))
            continue
        shape = after
        (random_steps if getattr(step, "random", False) else fixed_steps).append(step)
    if not ck.problems:
        _check_runtime_shapes(spec, data_shape, shape, name, ck)
    if spec.tta == "hflip" and len(shape) != 3:  # data whose shape only the files tell
        ck.error(("data", "tta"), f"tta: hflip needs image data; dataset '{name}' gives samples of {fmt(shape)}")
    if ck.problems:
        raise ConfigError(_problems(ck.problems, locate))
    train_tf = Compose(random_steps + [ToTensor()] + fixed_steps)
    eval_tf = Compose([ToTensor()] + fixed_steps)
    classes = list(train_full.classes) if task == "classification" and train_full.classes is not None else None
    return DataBundle(
        name=name, train=train, val=val, test=test, input_shape=shape,
        num_classes=len(classes) if classes is not None else None, class_names=classes, task=task,
        batch_size=int(spec.batch_size), shuffle=bool(spec.shuffle), drop_last=bool(spec.drop_last),
        seed=int(seed), train_transform=train_tf, eval_transform=eval_tf, tta=spec.tta,
    )
