"""The ``data:`` section: its one validation, derived from the data set and transform declarations.

:func:`check_data` checks a raw ``data:`` mapping and returns it resolved
(defaults filled in, transforms in ``{name: {args}}`` form). The keys a data set
takes come from its declaration; each transform is checked against the data
set's declared per-sample shape here, in the first pass (a crop larger than
digits' 8x8 images, three means for one-channel data), and again against the
loaded data by :func:`trainkit.data.build` for files whose shape only the file
knows. :class:`DataSpec` is the typed, immutable form the builders read.

The config loader calls :func:`check_data` for a YAML file (problems located at
FILE:LINE:COL); :func:`trainkit.data.build` calls it for a ``data:`` mapping
given in Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from trainkit.registry import (DATASETS, INVALID, REQUIRED, TRANSFORMS, Bool, Checker, Field, Float, Int, Nullable,
                               Raw, Record, ShapeProblem, Str, found, unknown_key)

from . import datasets as _datasets  # noqa: F401  (declares the built-in data sets)
from . import transforms as _transforms  # noqa: F401  (declares the built-in transforms)

__all__ = ["COMMON", "DataSpec", "TransformSpec", "check_data", "check_transforms", "sample_label",
           "specific_keys", "freeze"]

#: Keys every data set takes (the rest come from the data set's declaration).
COMMON: dict[str, Field] = {
    "dataset": Field(Str(), REQUIRED, "which data set to train on"),
    "val_split": Field(Float(0, 1, hi_open=True), 0.0,
                       "fraction of the training set held out for validation, in [0, 1)"),
    "batch_size": Field(Int(lo=1), 32, "samples per training batch"),
    "shuffle": Field(Bool(), True, "reshuffle the training set every epoch"),
    "transforms": Field(Raw("a list of transform names or {name: {args}}"), list,
                        "train-time transforms, in order (see below)"),
    "drop_last": Field(Bool(), False, "drop the last incomplete training batch"),
    "limit": Field(Nullable(Int(lo=1)), None,
                   "use only the first N samples of each part (train, val, test; text: N windows of block_size "
                   "tokens, and at most N windows an epoch), for smoke runs: "
                   "--set data.limit=200; null: all"),
    "tta": Field(Str(("none", "hflip"), "test-time augmentation"), "none",
                 "test-time augmentation of image classifiers: hflip averages the outputs for each image and its "
                 "mirror image in every evaluation (val columns, the report, trainkit eval, predict); none: off"),
}


def specific_keys() -> list[str]:
    """Every data-set-specific key, in declaration order (for messages and docs)."""
    keys: list[str] = []
    for decl in DATASETS.values():
        keys += [k for k in decl.arguments if k not in keys and k not in COMMON]
    return keys


def takers(key: str) -> list[str]:
    """The data sets that take ``key``."""
    return [name for name, decl in DATASETS.items() if key in decl.arguments]


def sample_label(dataset: str, shape) -> str:
    """How messages name a data set's samples: ``cifar10 images``, ``iris samples``."""
    return f"{dataset} images" if shape is not None and len(shape) == 3 else f"{dataset} samples"


def check_data(value, path: tuple, ck: Checker) -> dict:
    """Check the ``data`` section; which keys are allowed depends on ``dataset``."""
    if not isinstance(value, dict):
        return ck.error(path, f"expected a mapping with at least 'dataset', found {found(value)}")
    name = value.get("dataset")
    decl = DATASETS.get(name) if isinstance(name, str) else None
    fields = dict(COMMON)
    fields["dataset"] = Field(Str(tuple(DATASETS), "dataset"), REQUIRED, COMMON["dataset"].doc)
    if decl is not None:
        fields.update(decl.fields())
    specific = specific_keys()
    for key in value:
        if key in specific and key not in fields:
            if decl is not None:
                ck.error(path + (key,), f"key '{key}' does not apply to dataset '{name}' "
                                        f"(it is for {', '.join(takers(key))})")
        elif key not in fields:
            ck.error(path + (key,), unknown_key(key, list(fields) + [k for k in specific if k not in fields]))
    present = {k: v for k, v in value.items() if k in fields}
    out = Record(fields, "data mapping", decl.check if decl is not None else None).check(present, path, ck)
    args = {k: out[k] for k in (decl.arguments if decl is not None else ())}
    shape = None
    if decl is not None and INVALID not in args.values():
        shape = decl.static_shape(args)
    out["transforms"] = check_transforms(value.get("transforms"), path + ("transforms",), ck,
                                         name if decl is not None else None, shape)
    if out.get("tta") == "hflip" and shape is not None and len(shape) != 3:
        ck.error(path + ("tta",), f"tta: hflip needs image data; dataset '{name}' is not images")
    return out


def check_transforms(value, path: tuple, ck: Checker, dataset: str | None, shape) -> list:
    """Each item is a bare name or ``{name: {args}}``; returns them all as ``{name: {args}}``.

    With the data set's per-sample ``shape`` (None dims: unknown sizes) each
    transform is checked against the shape the transforms before it leave.
    A problem with a transform is reported at its arguments when it has them.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        return ck.error(path, f"expected a list of transforms, found {found(value)}")
    out = []
    for i, item in enumerate(value):
        ipath = path + (i,)
        if isinstance(item, str):
            name, args, apath = item, None, ipath
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
            apath = ipath + (name,)
        else:
            ck.error(ipath, "expected a transform name or a one-key mapping "
                            f"'name: {{args}}', found {found(item)}")
            continue
        decl = TRANSFORMS.get(name) if isinstance(name, str) else None
        if decl is None:
            ck.error(ipath, TRANSFORMS.unknown(name))
            continue
        args = decl.validate(args, apath, ck, f"{name} mapping")
        if args is INVALID or INVALID in args.values():
            continue
        if shape is not None:
            shape = _apply_shape(decl, args, shape, apath, ck, dataset)
        out.append({name: args})
    return out


def _apply_shape(decl, args: dict, shape: tuple, apath: tuple, ck: Checker, dataset: str | None):
    """The shape after one transform, its problems recorded (the shape is kept on a problem)."""
    if decl.image_only and len(shape) != 3:
        ck.error(apath, f"transform '{decl.name}' needs image data; dataset '{dataset}' is not images")
        return shape
    try:
        return decl.output_shape(args, shape, sample_label(dataset or "the", shape))
    except ShapeProblem as e:
        for message, key in e.problems:
            ck.error(apath + ((key,) if key else ()), message)
        return shape


def freeze(value):
    """An immutable copy of plain data: lists become tuples, dicts read-only mappings."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """The plain-data (mutable) copy of a frozen value: tuples become lists, mappings dicts."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class TransformSpec:
    """One resolved transform: its YAML name and arguments (every default filled in)."""

    name: str
    args: Mapping[str, Any]

    @property
    def declaration(self):
        """The transform's declaration."""
        return TRANSFORMS[self.name]


@dataclass(frozen=True)
class DataSpec:
    """The resolved ``data:`` section, typed and immutable.

    ``args`` holds the data set's own keys (``root``, ``download``, ``path``,
    ``test_split``, ...), as its declaration names them.
    """

    dataset: str
    args: Mapping[str, Any]
    val_split: float
    batch_size: int
    shuffle: bool
    drop_last: bool
    transforms: tuple[TransformSpec, ...]
    limit: int | None = None
    tta: str = "none"

    @classmethod
    def from_resolved(cls, data: Mapping) -> "DataSpec":
        """The typed form of a validated ``data:`` mapping."""
        decl = DATASETS[data["dataset"]]
        transforms = tuple(TransformSpec(name, freeze(args)) for item in data["transforms"]
                           for name, args in item.items())
        return cls(data["dataset"], freeze({k: data[k] for k in decl.arguments}), data["val_split"],
                   data["batch_size"], data["shuffle"], data["drop_last"], transforms, data.get("limit"),
                   data.get("tta", "none"))

    @property
    def declaration(self):
        """The data set's declaration."""
        return DATASETS[self.dataset]

    def static_task(self) -> str | None:
        """``classification``/``regression`` from the config alone, or None when the data decides."""
        return self.declaration.static_task(self.args)

    def static_shape(self) -> tuple | None:
        """The per-sample input shape (after the transforms) from the config alone, or None.

        Lets ``trainkit summary`` and the memory checks work before a data set
        is downloaded; None for files whose shape only the file knows.
        """
        shape = self.declaration.static_shape(self.args)
        if shape is None or None in shape:
            return None
        for t in self.transforms:
            shape = t.declaration.output_shape(t.args, shape, sample_label(self.dataset, shape))
        return tuple(int(s) for s in shape)
