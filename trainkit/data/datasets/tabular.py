"""Tabular data from CSV (with a header) and NPZ files.

CSV: a header line is required; ``target`` names the label column and
``features`` (optional) the input columns, by default every other column.
The task is classification when every target cell is an integer (used as the
class index) or when any is a non-number (strings become classes, sorted);
regression when the targets are numbers with a fraction. ``task`` overrides
it. Every problem (ragged row, empty / NaN / inf / non-numeric cell, a value
beyond float32, a class label that is not an integer, empty file, an absurdly
wide header or long line, a path that is not a regular file) is a DataError
naming the file, the line and the column.

NPZ: arrays ``x`` and ``y`` (all samples), or ``x_train``/``y_train`` and
optionally ``x_test``/``y_test``. Read by :func:`trainkit.data.readers.read_npz`:
each member's header is checked against its size before anything is
allocated, and object arrays are refused (nothing is unpickled).
"""
from __future__ import annotations

import csv
import io
import math
import os
from array import array
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trainkit.errors import DataError
from trainkit.registry import REQUIRED, Field, Nullable, Str, dataset

from ..dataset import ArrayDataset
from ..readers import open_regular, read_npz
from ..specs import FEATURES, PATH, TASK, TEST_SPLIT

__all__ = ["CSVDataset", "NPZDataset", "MAX_COLUMNS", "MAX_CLASSES"]

MAX_COLUMNS = 10_000          # far more than any CSV one trains on; stops a 10-million-column header
MAX_LINE = 4 << 20            # bytes per line
MAX_CLASSES = 10_000
_F32_MAX = float(np.finfo(np.float32).max)


def _is_int(s: str) -> bool:
    s = s.strip()
    return s.lstrip("+-").isdigit()


class _TargetColumn:
    """The target cells of a CSV, kept compactly while rows are read.

    A cell costs 8 bytes here (its value as float32, which is what a
    regression target becomes, and a label id), not a Python string: a CSV's
    memory stays proportional to its size. The text of each distinct cell is
    kept, with its first line, while there are at most ``MAX_CLASSES`` of them
    (enough for any classification; beyond that only regression remains). The
    first cell of each kind of problem is remembered with its line, so the task
    can be decided after the last row and errors still name the first
    offending line.
    """

    def __init__(self):
        self.values = array("f")   # the cell as a number; NaN when it is not one
        self.ids: array | None = array("i")
        self.texts: dict[str, tuple[int, int]] = {}  # distinct text -> (label id, first line)
        self.all_int = True
        self.first: dict[str, tuple[int, str]] = {}

    def add(self, text: str, line: int) -> None:
        text = text.strip()
        try:
            v = float(text)
        except ValueError:
            v = math.nan
            self.first.setdefault("not a number", (line, text))
        else:
            if not math.isfinite(v):
                self.first.setdefault("not finite", (line, text))
            else:
                if v != int(v):
                    self.first.setdefault("not an integer", (line, text))
                elif not 0 <= v < MAX_CLASSES:
                    self.first.setdefault("out of range", (line, text))
                if not -_F32_MAX <= v <= _F32_MAX:
                    self.first.setdefault("beyond float32", (line, text))
        if self.all_int and not _is_int(text):
            self.all_int = False
        # Checked above: a value beyond float32 becomes inf here, and is an error for any task.
        self.values.append(v if -_F32_MAX <= v <= _F32_MAX else math.inf)
        if self.ids is not None:
            i = self.texts.setdefault(text, (len(self.texts), line))[0]
            if len(self.texts) > MAX_CLASSES:
                self.ids = None  # too many distinct cells to be classes: numbers only from here
            else:
                self.ids.append(i)

    def _earliest(self, *kinds: str) -> tuple[int, str, str] | None:
        found = [(self.first[k][0], self.first[k][1], k) for k in kinds if k in self.first]
        return min(found) if found else None

    def labels(self, task: str | None, path: Path, column: str, class_names: Sequence[str] | None):
        """Decide the task and return ``(targets, class_names, task)``."""
        numeric = "not a number" not in self.first
        if task is None:
            task = "classification" if (not numeric or self.all_int) else "regression"
        where = f"{path}: line {{}}, column {column!r}"
        if task == "regression":
            bad = self._earliest("not a number", "not finite")
            if bad is None and "beyond float32" in self.first:
                bad = (*self.first["beyond float32"], "beyond float32")
            if bad is not None:
                line, text, kind = bad
                what = {"not a number": "is not a number", "not finite": "(NaN/inf) is not allowed",
                        "beyond float32": "is beyond the float32 range"}[kind]
                raise DataError(f"{where.format(line)}: {text!r} {what}")
            return np.frombuffer(self.values, dtype=np.float32).reshape(-1, 1).copy(), None, task
        if task != "classification":
            raise DataError(f"{path}: task must be 'classification' or 'regression', got {task!r}")
        if not numeric:
            if self.ids is None:
                raise DataError(f"{path}: column {column!r} has more than {MAX_CLASSES} distinct labels; "
                                "too many classes")
            ids = np.frombuffer(self.ids, dtype=np.int32)
            texts = list(self.texts)  # in id order
            names = list(class_names) if class_names is not None else sorted(texts)
            index = {n: i for i, n in enumerate(names)}
            unknown = [(self.texts[t][1], t) for t in texts if t not in index]
            if unknown:
                line, text = min(unknown)
                raise DataError(f"{where.format(line)}: label {text!r} is not one of the training classes")
            mapping = np.array([index[t] for t in texts], dtype=np.int64)
            labels, k = mapping[ids], len(names)
        else:
            bad = self._earliest("not finite", "not an integer", "out of range")
            if bad is not None:
                line, text, kind = bad
                what = {"not finite": "(NaN/inf) is not allowed",
                        "not an integer": "is not an integer (class labels are integers 0.."
                                          f"{MAX_CLASSES - 1}; set task: regression to predict numbers)",
                        "out of range": f"out of range (class labels are integers 0..{MAX_CLASSES - 1})"}[kind]
                raise DataError(f"{where.format(line)}: label {text!r} {what}")
            labels = np.frombuffer(self.values, dtype=np.float32).astype(np.int64)
            k = int(labels.max()) + 1
            names = None
            if class_names is not None:
                if k > len(class_names):
                    raise DataError(f"{path}: label {k - 1} out of range 0..{len(class_names) - 1} of the "
                                    "training data")
                names = list(class_names)
            else:
                names = [str(i) for i in range(k)]
        return labels, names, task


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

    Features are parsed row by row into float32, so memory stays about 4 bytes
    per feature cell plus 24 per row, whatever the file's text looks like.
    """

    def __init__(self, path: str | os.PathLike, target: str, features: Sequence[str] | None = None,
                 task: str | None = None, transform: Callable | None = None,
                 class_names: Sequence[str] | None = None):
        self.path = path = Path(path)
        f = io.TextIOWrapper(open_regular(path), encoding="utf-8", newline="")
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
                columns = self._columns(header, target, features, path)
                x, column = self._read_rows(f, path, header, columns, header.index(target))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{path}: malformed CSV ({exc})") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if not len(x):
            raise DataError(f"{path}: no data rows after the header")
        y, classes, self.task_name = column.labels(task, path, target, class_names)
        self.feature_names = [header[c] for c in columns]
        super().__init__(x, y, transform=transform, classes=classes)

    @staticmethod
    def _columns(header: list[str], target: str, features: Sequence[str] | None, path: Path) -> list[int]:
        if len(set(header)) != len(header) or "" in header:
            raise DataError(f"{path}: line 1: column names must be non-empty and unique")
        if target not in header:
            raise DataError(f"{path}: no column {target!r} (columns: {', '.join(header[:20])})")
        features = [h for h in header if h != target] if features is None else list(features)
        missing = [c for c in features if c not in header]
        if missing or not features or target in features:
            raise DataError(f"{path}: bad feature columns {missing or features} (columns: {', '.join(header[:20])})")
        return [header.index(c) for c in features]

    @staticmethod
    def _read_rows(f, path: Path, header: list[str], columns: list[int], t_col: int):
        ncols = len(header)
        feats = array("f")
        column = _TargetColumn()
        physical = 1  # lines read so far (the header)

        def lines():
            nonlocal physical
            while True:
                text = f.readline(MAX_LINE)
                if not text:
                    return
                physical += 1
                if len(text) >= MAX_LINE and not text.endswith("\n"):
                    raise DataError(f"{path}: line {physical} is longer than {MAX_LINE} bytes")
                yield text

        reader = csv.reader(lines())
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue  # blank lines are not samples
            line = reader.line_num + 1  # +1: the header was read before the reader started
            if len(row) != ncols:
                raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {ncols}")
            feats.extend([CSVDataset._number(row[c], path, line, header[c]) for c in columns])
            column.add(row[t_col], line)
        x = np.frombuffer(feats, dtype=np.float32).reshape(-1, len(columns)) if feats else \
            np.empty((0, len(columns)), np.float32)
        return x, column

    @staticmethod
    def _number(cell: str, path: Path, line: int, column: str) -> float:
        try:
            v = float(cell)
        except ValueError:
            what = "an empty cell" if not cell.strip() else f"{cell.strip()!r} is not a number"
            raise DataError(f"{path}: line {line}, column {column!r}: {what}") from None
        if not -_F32_MAX <= v <= _F32_MAX:  # also false for NaN
            what = "(NaN/inf) is not allowed" if not math.isfinite(v) else "is beyond the float32 range"
            raise DataError(f"{path}: line {line}, column {column!r}: {cell.strip()!r} {what}")
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
            if y.min() < 0 or y.max() >= MAX_CLASSES:
                raise DataError(f"{path}: label {y.min() if y.min() < 0 else y.max()} out of range "
                                f"(class labels are integers 0..{MAX_CLASSES - 1})")
            y = y.astype(np.int64)
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
            if not np.all(np.isfinite(x)):  # float64 values beyond float32's range became inf
                raise DataError(f"{path}: x holds values beyond the float32 range")
        self.task_name = task
        super().__init__(x, y, transform=transform, classes=classes)

    @staticmethod
    def read(path: Path) -> dict[str, np.ndarray]:
        """All arrays of an npz file (see :func:`trainkit.data.readers.read_npz`: headers checked
        against member sizes before allocating, no object arrays, nothing unpickled)."""
        return read_npz(path)

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
