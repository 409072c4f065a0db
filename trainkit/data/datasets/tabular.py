"""Tabular data from CSV (with a header) and NPZ files.

CSV: a header line is required; ``target`` names the label column and
``features`` (optional) the input columns, by default every other column.
The task is classification when every target cell is an integer (used as the
class index) or when any is a non-number (strings become classes, sorted);
regression when the targets are numbers with a fraction. ``task`` overrides
it. Every problem (ragged row, empty / NaN / inf / non-numeric cell, empty
file, an absurdly wide header) is a DataError naming the file, the line and
the column.

NPZ: arrays ``x`` and ``y`` (all samples), or ``x_train``/``y_train`` and
optionally ``x_test``/``y_test``. Loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import REQUIRED, Field, Nullable, Str, dataset

from ..dataset import ArrayDataset
from ..specs import FEATURES, PATH, TASK, TEST_SPLIT

__all__ = ["CSVDataset", "NPZDataset", "MAX_COLUMNS"]

MAX_COLUMNS = 10_000          # far more than any CSV one trains on; stops a 10-million-column header
MAX_LINE = 4 << 20            # bytes per line
MAX_CLASSES = 10_000
MAX_NPZ_BYTES = 8 << 30


def _targets_to_labels(cells: list[str], task: str | None, path: Path, column: str, lines: list[int],
                       class_names: Sequence[str] | None = None):
    """Decide the task and turn target cells into (targets, class_names)."""
    def as_float(i: int, s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise DataError(f"{path}: line {lines[i]}, column {column!r}: {s!r} is not a number") from None
        if not math.isfinite(v):
            raise DataError(f"{path}: line {lines[i]}, column {column!r}: {s!r} (NaN/inf) is not allowed")
        return v

    numeric = True
    for s in cells:
        try:
            float(s)
        except ValueError:
            numeric = False
            break
    if task is None:
        task = "classification" if (not numeric or all(_is_int(s) for s in cells)) else "regression"
    if task == "regression":
        values = np.array([as_float(i, s) for i, s in enumerate(cells)], dtype=np.float32).reshape(-1, 1)
        return values, None, task
    if task != "classification":
        raise DataError(f"{path}: task must be 'classification' or 'regression', got {task!r}")
    if not numeric:
        if class_names is not None:
            index = {n: i for i, n in enumerate(class_names)}
            for i, s in enumerate(cells):
                if s not in index:
                    raise DataError(f"{path}: line {lines[i]}, column {column!r}: label {s!r} is not one of "
                                    f"the training classes")
            return np.array([index[s] for s in cells], dtype=np.int64), list(class_names), task
        names = sorted(set(cells))
        if len(names) > MAX_CLASSES:
            raise DataError(f"{path}: column {column!r} has {len(names)} distinct labels; too many classes")
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[s] for s in cells], dtype=np.int64), names, task
    labels = []
    for i, s in enumerate(cells):
        v = as_float(i, s)
        if v != int(v) or v < 0 or v >= MAX_CLASSES:
            raise DataError(f"{path}: line {lines[i]}, column {column!r}: label {s!r} out of range "
                            f"(class labels are integers 0..{MAX_CLASSES - 1})")
        labels.append(int(v))
    labels_arr = np.array(labels, dtype=np.int64)
    k = int(labels_arr.max()) + 1
    if class_names is not None:
        if k > len(class_names):
            raise DataError(f"{path}: label {k - 1} out of range 0..{len(class_names) - 1} of the training data")
        return labels_arr, list(class_names), task
    return labels_arr, [str(i) for i in range(k)], task


def _is_int(s: str) -> bool:
    s = s.strip()
    return s.lstrip("+-").isdigit()


@dataset("csv", shape=(None,), task=lambda a: a["task"],
         fields={"path": PATH, "target": Field(Str(), REQUIRED, "name of the target column"), "features": FEATURES,
                 "task": TASK, "test_split": TEST_SPLIT,
                 "test_path": Field(Nullable(Str()), None, "a CSV file with the same columns used as the test "
                                    "set; null: hold out test_split")},
         doc="a CSV file with a header: path, target column, optional feature columns")
class CSVDataset(ArrayDataset):
    """Rows of a CSV file with a header: float32 features and a target column.

    Args:
        path: the CSV file.
        target: name of the target column.
        features: names of the input columns (default: all but ``target``).
        task: 'classification' or 'regression' (default: guessed from the target column).
        transform: applied to the feature vectors.
        class_names: map labels through these classes (e.g. a test file using the
            training file's classes); unknown labels are an error.
    """

    def __init__(self, path: str | os.PathLike, target: str, features: Sequence[str] | None = None,
                 task: str | None = None, transform: Callable | None = None,
                 class_names: Sequence[str] | None = None):
        self.path = path = Path(path)
        try:
            f = open(path, "r", encoding="utf-8", newline="")
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot open ({exc.strerror})") from None
        try:
            with f:
                header_line = f.readline(MAX_LINE)
                if not header_line.strip():
                    raise DataError(f"{path}: empty file; a header line naming the columns is required")
                if header_line.count(",") + 1 > MAX_COLUMNS:
                    raise DataError(f"{path}: line 1 (header) has {header_line.count(',') + 1} columns; "
                                    f"at most {MAX_COLUMNS} are allowed")
                if not header_line.endswith("\n") and len(header_line) >= MAX_LINE:
                    raise DataError(f"{path}: line 1 (header) is longer than {MAX_LINE} bytes")
                header = [h.strip() for h in next(csv.reader([header_line]))]
                rows, lines = self._read_rows(f, path, len(header))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{path}: malformed CSV ({exc})") from None
        if len(set(header)) != len(header) or "" in header:
            raise DataError(f"{path}: line 1: column names must be non-empty and unique")
        if target not in header:
            raise DataError(f"{path}: no column {target!r} (columns: {', '.join(header[:20])})")
        features = [h for h in header if h != target] if features is None else list(features)
        missing = [c for c in features if c not in header]
        if missing or not features or target in features:
            raise DataError(f"{path}: bad feature columns {missing or features} (columns: {', '.join(header[:20])})")
        if not rows:
            raise DataError(f"{path}: no data rows after the header")
        t_col = header.index(target)
        x = np.empty((len(rows), len(features)), dtype=np.float32)
        for j, name in enumerate(features):
            col = header.index(name)
            for i, row in enumerate(rows):
                x[i, j] = self._number(row[col], path, lines[i], name)
        y, classes, self.task_name = _targets_to_labels([r[t_col].strip() for r in rows], task, path, target, lines,
                                                         class_names)
        self.feature_names = features
        super().__init__(x, y, transform=transform, classes=classes)

    @staticmethod
    def _read_rows(f, path: Path, ncols: int) -> tuple[list[list[str]], list[int]]:
        rows, lines = [], []
        reader = csv.reader(iter(lambda: f.readline(MAX_LINE), ""))
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue  # blank lines are not samples
            line = reader.line_num + 1  # +1: the header was read before the reader started
            if len(row) != ncols:
                raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {ncols}")
            rows.append(row)
            lines.append(line)
        return rows, lines

    @staticmethod
    def _number(cell: str, path: Path, line: int, column: str) -> float:
        try:
            v = float(cell)
        except ValueError:
            what = "an empty cell" if not cell.strip() else f"{cell.strip()!r} is not a number"
            raise DataError(f"{path}: line {line}, column {column!r}: {what}") from None
        if not math.isfinite(v):
            raise DataError(f"{path}: line {line}, column {column!r}: {cell.strip()!r} (NaN/inf) is not allowed")
        return v

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.task_name

    @classmethod
    def from_config(cls, args) -> tuple:
        """The training file and the test file (None: the builder holds out ``test_split``)."""
        kw = {"target": args["target"], "features": args["features"], "task": args["task"]}
        full = cls(args["path"], **kw)
        if args["test_path"]:
            # The test file maps its labels through the training file's classes, so
            # class indices agree between the two.
            return full, cls(args["test_path"], **{**kw, "task": full.task}, class_names=full.classes)
        return full, None


@dataset("npz", task=lambda a: a["task"], fields={"path": PATH, "task": TASK, "test_split": TEST_SPLIT},
         doc="an .npz file with arrays x/y or x_train/y_train[/x_test/y_test]")
class NPZDataset(ArrayDataset):
    """Arrays from an ``.npz`` file: ``x``/``y``, or ``x_train``/``y_train`` (``train=True``) and
    ``x_test``/``y_test`` (``train=False``).

    Integer ``y`` means classification (class indices), float ``y`` regression
    (reshaped to (N, 1) when one-dimensional); ``task`` overrides the guess.
    uint8 ``x`` with 3 or 4 dimensions is taken as images and kept uint8 as
    (N, C, H, W) (grey (N, H, W) gains a channel, channel-last is transposed);
    any other ``x`` becomes float32.
    """

    def __init__(self, path: str | os.PathLike, train: bool = True, task: str | None = None,
                 transform: Callable | None = None):
        self.path = path = Path(path)
        arrays = self.read(path)
        self.has_test = "x_test" in arrays and "y_test" in arrays and "x" not in arrays
        if "x" in arrays and "y" in arrays:
            x, y = arrays["x"], arrays["y"]
        else:
            part = "train" if train else "test"
            if f"x_{part}" not in arrays or f"y_{part}" not in arrays:
                raise DataError(f"{path}: needs arrays x and y, or x_{part} and y_{part} "
                                f"(found: {', '.join(sorted(arrays)) or 'none'})")
            x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim < 2 or len(x) != len(y) or len(x) == 0:
            raise DataError(f"{path}: x has shape {x.shape} and y {y.shape}; need (N, ...) and (N,) with N > 0")
        if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
            raise DataError(f"{path}: x and y must be numeric (got {x.dtype} and {y.dtype})")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise DataError(f"{path}: x contains NaN or inf")
        task = task or ("classification" if y.dtype.kind in "biu" else "regression")
        if task == "classification":
            if y.ndim != 1 or (y.dtype.kind == "f" and np.any(y != np.round(y))):
                raise DataError(f"{path}: class labels must be integers of shape (N,), got {y.dtype} {y.shape}")
            y = y.astype(np.int64)
            if y.min() < 0 or y.max() >= MAX_CLASSES:
                raise DataError(f"{path}: label {int(y.min() if y.min() < 0 else y.max())} out of range")
            classes = [str(i) for i in range(int(y.max()) + 1)]
        elif task == "regression":
            y = y.astype(np.float32).reshape(len(y), -1)
            if not np.all(np.isfinite(y)):
                raise DataError(f"{path}: y contains NaN or inf")
            classes = None
        else:
            raise DataError(f"{path}: task must be 'classification' or 'regression', got {task!r}")
        if x.dtype == np.uint8 and x.ndim >= 3:
            # Images stay uint8 (ToTensor scales them per batch), stored NCHW.
            if x.ndim == 3:
                x = x[:, None]
            elif x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
                x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        else:
            x = x.astype(np.float32)
        self.task_name = task
        super().__init__(x, y, transform=transform, classes=classes)

    @staticmethod
    def read(path: Path) -> dict[str, np.ndarray]:
        """All arrays of an npz file, refusing pickled objects and absurd sizes."""
        try:
            with zipfile.ZipFile(path) as zf:
                if sum(i.file_size for i in zf.infolist()) > MAX_NPZ_BYTES:
                    raise DataError(f"{path}: unpacks to more than {MAX_NPZ_BYTES} bytes")
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, io.UnsupportedOperation) as exc:
            raise DataError(f"{path}: not a valid .npz file ({exc})") from None

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.task_name

    @classmethod
    def from_config(cls, args) -> tuple:
        """The train part and the file's own test part (None: the builder holds out ``test_split``)."""
        train = cls(args["path"], train=True, task=args["task"])
        if train.has_test:
            return train, cls(args["path"], train=False, task=train.task)
        return train, None
