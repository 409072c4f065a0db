"""A trained run asked about new inputs: :func:`load_run` and the prediction stream behind ``trainkit predict``.

:func:`load_run` rebuilds a run's model from its ``config.yaml`` exactly as
``trainkit eval`` does (:func:`~trainkit.assemble.prepare.prepare` without an
optimizer: the same data set, the same evaluation transforms, with statistics
such as ``normalize``'s mean computed from the same training data), loads a
checkpoint's weights and returns them with the class names and how an input
file becomes a sample:

* image models (a per-sample input of (C, H, W)): image files are decoded as
  the training images were (:class:`~trainkit.data.images.ImageSpec`: an
  image folder's mode, size and resize policy; a fixed-size set's exact size
  and channels, anything else refused by name);
* tabular models: CSV rows, matched by column name to the training file's
  feature columns (data sets without column names: the first row's columns in
  order, as many as the model takes).

Then only the evaluation transforms run (no augmentation), in chunks of
``batch_size`` inputs, so that any number of inputs streams in bounded memory.
Prediction rows are plain dicts (see :func:`predict`); presenting them is
:mod:`trainkit.views.predict`'s job.
"""
from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..autograd.function import no_grad
from ..autograd.tensor import Tensor
from ..data.dataset import base_dataset
from ..data.images import BadImage, ImageSpec, decode_image, is_image_file
from ..data.readers import open_regular
from ..errors import DataError, RunDirError, TrainkitError
from .evaluate import with_tta
from .run import Run

__all__ = ["LoadedRun", "load_run", "collect_inputs", "predict", "PredictInput", "as_json", "DEFAULT_BATCH"]

#: Inputs decoded and run through the model at a time.
DEFAULT_BATCH = 256
_MAX_CSV_LINE = 4 << 20


@dataclass
class LoadedRun:
    """A run's model with its weights, its evaluation transforms and its classes.

    Unpacks as ``model, transform, class_names = trainkit.load_run(run)``.

    Attributes:
        model: the model in eval mode, with the checkpoint's weights.
        transform: the evaluation transforms (``ToTensor`` and the deterministic
            ones, no augmentation): ``transform.apply_batch(x)`` on a batch of raw samples.
        class_names: the class of each output (None for regression).
        task: ``classification`` or ``regression``.
        sample_shape: the shape of one raw sample, before the transforms (e.g. (3, 64, 64)).
        image_spec: how an image file becomes a raw sample; None for a model that does not take images.
        feature_names: the training file's feature columns (tabular data with a header), else None.
        path, checkpoint, epoch: the run directory, the checkpoint label and its epoch.
        tta: the run's ``data.tta``: predictions average the outputs as its evaluations did.
    """

    model: Any
    transform: Any
    class_names: list[str] | None
    task: str
    sample_shape: tuple
    image_spec: ImageSpec | None
    feature_names: list[str] | None
    path: Path
    checkpoint: str
    epoch: int | None
    config: Any = field(default=None, repr=False)
    tta: str = "none"

    def __iter__(self):
        return iter((self.model, self.transform, self.class_names))

    def outputs(self, samples: np.ndarray) -> np.ndarray:
        """The model's outputs for a batch of raw samples (uint8 images or float features)."""
        x = self.transform.apply_batch(np.asarray(samples), None)
        with no_grad():
            return with_tta(self.model, self.tta)(Tensor(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def decode(self, path: str | os.PathLike) -> np.ndarray:
        """One image file as a raw sample of this model (uint8 (C, H, W)); BadImage naming it otherwise."""
        if self.image_spec is None:
            raise DataError(f"{path}: this run's model takes {_what_it_takes(self)}, not images")
        return decode_image(path, self.image_spec)


def _what_it_takes(run: LoadedRun) -> str:
    if run.image_spec is not None:
        return run.image_spec.describe()
    n = int(np.prod(run.sample_shape)) if run.sample_shape else 0
    return f"rows of {n} feature(s) from CSV files"


def _image_spec(base, shape: tuple) -> ImageSpec | None:
    spec = getattr(base, "spec", None)
    if isinstance(spec, ImageSpec):
        return spec
    if len(shape) == 3 and shape[0] in (1, 3):
        return ImageSpec("RGB" if shape[0] == 3 else "L", (int(shape[1]), int(shape[2])), fit=None,
                         transpose=bool(getattr(base, "transposed", False)))
    return None


def load_run(run_dir: str | os.PathLike, checkpoint: str = "best", trust_code: bool = False) -> LoadedRun:
    """Rebuild a run's model, load ``checkpoint`` (best, last, or a path) and return it with what
    ``trainkit predict`` needs (see :class:`LoadedRun`).

    The run's training data must be where its config says (as for ``trainkit
    eval``): the evaluation transforms and class names are rebuilt from it. Custom layer code named
    by the run's config is imported only if it is the code the run recorded (or ``trust_code``).
    """
    import warnings

    from ..assemble.prepare import prepare
    from ..data.images import DataWarning
    from .session import _check_run_code, _load_weights

    run = Run.open(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
    _check_run_code(run, trust_code)  # before the config imports any custom layer
    with warnings.catch_warnings():
        # Skipped training files were reported when the run trained; predicting is not the time.
        warnings.simplefilter("ignore", DataWarning)
        try:
            prep = prepare(run.config_path, with_optimizer=False)
        except DataError as exc:
            raise DataError(f"{run.path}: the run's training data are needed for its classes and evaluation "
                            f"transforms, as for trainkit eval: {exc}") from None
    bundle = prep.bundle
    recorded = (run.info.data.get("data") or {}).get("class_names") if run.info is not None else None
    if recorded is not None and bundle.class_names is not None and list(recorded) != list(bundle.class_names):
        raise DataError(f"{run.path}: the training data's classes changed since the run trained (now "
                        f"{', '.join(bundle.class_names[:10])}; the run was trained on {', '.join(recorded[:10])}); "
                        "its outputs would be named wrongly")
    label, epoch = _load_weights(run.path, prep, checkpoint)
    prep.model.eval()
    base = base_dataset(bundle.train)
    shape = tuple(int(s) for s in base.input_shape)
    return LoadedRun(prep.model, bundle.eval_transform, bundle.class_names, bundle.task, shape,
                     _image_spec(base, shape), getattr(base, "feature_names", None), run.path, label, epoch,
                     prep.config, getattr(bundle, "tta", "none"))


# ----------------------------------------------------------------------------- inputs
@dataclass
class PredictInput:
    """One thing to predict: ``name`` as shown, the image ``path`` or a CSV row's ``values``."""

    name: str
    path: Path | None = None
    values: np.ndarray | None = None


def collect_inputs(run: LoadedRun, inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The files the command-line inputs name: files as given, folders searched for images (sorted).

    For a tabular model, the inputs must be CSV files.
    """
    out: list[Path] = []
    if run.task not in ("classification", "regression"):
        raise TrainkitError(f"{run.path}: trainkit predict takes classification and regression runs; this run's "
                            f"task is {run.task}")
    for item in inputs:
        p = Path(item)
        if not p.exists():
            hint = ""
            if any(ch.isspace() for ch in str(item)) or not p.suffix:
                hint = ("; text prompts are for language-model runs, which this version of trainkit does not have "
                        "(trainkit generate is not part of it yet)")
            raise DataError(f"{item}: no such file or folder{hint}")
        if p.is_dir():
            if run.image_spec is None:
                raise DataError(f"{p}: a folder; this run's model takes {_what_it_takes(run)}")
            found = sorted(Path(root) / f for root, _, files in os.walk(p, followlinks=False) for f in files
                           if is_image_file(f))
            if not found:
                raise DataError(f"{p}: no image files ({', '.join(('.png', '.jpg', '.jpeg', '.bmp', '.webp'))}) "
                                "in this folder")
            out += found
        else:
            out.append(p)
    return out


def _csv_rows(run: LoadedRun, path: Path, chunk: int) -> Iterator[list[PredictInput]]:
    """Rows of a CSV file as feature vectors, ``chunk`` at a time (columns matched by name)."""
    from ..data.datasets.tabular import CSVDataset

    n_features = int(np.prod(run.sample_shape))
    try:
        f = io.TextIOWrapper(open_regular(path), encoding="utf-8", newline="")
        with f:
            header_line = f.readline(_MAX_CSV_LINE)
            if not header_line.strip():
                raise DataError(f"{path}: empty file; a header line naming the columns is required")
            header = [h.strip() for h in next(csv.reader([header_line]))]
            if run.feature_names is not None:
                missing = [c for c in run.feature_names if c not in header]
                if missing:
                    raise DataError(f"{path}: line 1: no column {missing[0]!r}; the model takes the training "
                                    f"file's features {', '.join(run.feature_names)}")
                cols = [header.index(c) for c in run.feature_names]
                names = list(run.feature_names)
            else:
                if len(header) != n_features:
                    raise DataError(f"{path}: line 1: {len(header)} columns; the model takes {n_features} "
                                    "features, in the order it was trained on (one column each)")
                cols, names = list(range(n_features)), header
            rows: list[PredictInput] = []
            reader = csv.reader(f)
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                line = reader.line_num + 1
                if len(row) != len(header):
                    raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")
                values = np.array([CSVDataset._number(row[c], path, line, names[k]) for k, c in enumerate(cols)],
                                  dtype=np.float32)
                rows.append(PredictInput(f"{path}:{line}", values=values.reshape(run.sample_shape)))
                if len(rows) == chunk:
                    yield rows
                    rows = []
            if rows:
                yield rows
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def _image_chunks(run: LoadedRun, paths: list[Path], chunk: int, skip_bad: bool,
                  skipped: list) -> Iterator[tuple[list[PredictInput], np.ndarray]]:
    workers = max(1, min(8, os.cpu_count() or 1))

    def one(path: Path):
        try:
            return run.decode(path)
        except BadImage as exc:
            if exc.reason.startswith(("not an image", "empty file")) and not is_image_file(path):
                return BadImage(path, f"{exc.reason}; this run's model takes {_what_it_takes(run)}")
            return exc
        except DataError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            items, arrays = [], []
            for path, out in zip(part, pool.map(one, part)):
                if isinstance(out, DataError):
                    if not skip_bad:
                        raise out
                    skipped.append((str(path), str(out)))
                    continue
                items.append(PredictInput(str(path), path=path))
                arrays.append(out)
            if items:
                yield items, np.stack(arrays)


def _rows(run: LoadedRun, items: list[PredictInput], outputs: np.ndarray, top_k: int) -> list[dict]:
    if run.task == "regression":
        flat = outputs.reshape(len(items), -1).astype(np.float64)
        return [{"input": it.name, "value": float(v[0]) if v.size == 1 else [float(a) for a in v]}
                for it, v in zip(items, flat)]
    logits = outputs.reshape(len(items), -1).astype(np.float64)
    if logits.shape[1] == 1:  # one logit of a binary classifier: P(class 1) is its sigmoid
        p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        probs = np.stack([1.0 - p1, p1], axis=1)
    else:
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True)
    names = run.class_names or [str(i) for i in range(probs.shape[1])]
    k = max(1, min(top_k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for it, p, top in zip(items, probs, order):
        best = int(top[0])
        out.append({"input": it.name, "class": names[best], "index": best, "probability": float(p[best]),
                    "top_k": [{"class": names[int(i)], "index": int(i), "probability": float(p[i])} for i in top]})
    return out


def predict(run: LoadedRun, inputs: Sequence[str | os.PathLike], *, top_k: int = 3, batch_size: int = DEFAULT_BATCH,
            skip_bad_files: bool = False, skipped: list | None = None,
            progress: Callable[[int, int], None] | None = None) -> Iterator[list[dict]]:
    """Prediction rows for ``inputs`` (files, folders, CSV files), a list per chunk of ``batch_size``.

    A row is ``{"input", "class", "index", "probability", "top_k": [{"class", "index", "probability"}]}``
    for classification (probabilities from the softmax of the outputs, or the
    sigmoid of a single output), ``{"input", "value"}`` for regression.
    Unusable inputs raise :class:`DataError` naming the file, or with
    ``skip_bad_files`` are appended to ``skipped`` as ``(input, reason)``.
    ``progress(done, total)`` is called after every chunk.
    """
    if top_k < 1:
        raise TrainkitError(f"--top-k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise TrainkitError(f"--batch-size must be at least 1, got {batch_size}")
    skipped = skipped if skipped is not None else []
    files = collect_inputs(run, inputs)
    if run.image_spec is not None:
        total = len(files)
        done = 0
        for items, arrays in _image_chunks(run, files, batch_size, skip_bad_files, skipped):
            rows = _rows(run, items, run.outputs(arrays), top_k)
            done += len(items)
            if progress is not None:
                progress(done + len(skipped), total)
            yield rows
        return
    for path in files:
        if path.suffix.lower() != ".csv" and is_image_file(path):
            raise DataError(f"{path}: an image; this run's model takes {_what_it_takes(run)}")
        for items in _csv_rows(run, path, batch_size):
            values = np.stack([it.values for it in items])
            yield _rows(run, items, run.outputs(values), top_k)


def as_json(run: LoadedRun, rows: list[dict], skipped: list) -> str:
    """The ``--json`` document: the run, its checkpoint and classes, every prediction and every skipped input."""
    doc = {"run": run.path.name, "checkpoint": run.checkpoint, "epoch": run.epoch, "task": run.task,
           "classes": run.class_names, "predictions": rows,
           "skipped": [{"input": i, "reason": r} for i, r in skipped]}
    return json.dumps(doc, indent=2)
