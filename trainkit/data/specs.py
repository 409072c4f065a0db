"""YAML fields shared by the data set declarations (``data.root``, ``data.test_split``, ...)."""
from __future__ import annotations

from trainkit.registry import REQUIRED, Bool, Field, Float, Int, ListOf, Nullable, Str

__all__ = ["ROOT", "DOWNLOAD", "TEST_SPLIT", "PATH", "TASK"]

#: Arguments of the downloadable sets: where their files live and whether to fetch them.
ROOT = Nullable(Str())
ROOT_DOC = "download/cache folder; null: $TRAINKIT_DATA, else ~/.cache/trainkit/datasets"
DOWNLOAD_DOC = "fetch the files when they are missing"
DOWNLOAD = Bool()

#: The share held out as the test set by sets that have no test part of their own.
TEST_SPLIT = Field(Float(0, 1, lo_open=True, hi_open=True), 0.2,
                   "fraction held out as the test set (seeded, stratified for classification) when the data "
                   "has no test part")
#: A data file.
PATH = Field(Str(), REQUIRED, "the data file, relative to the working directory")
#: What the targets are, for files that could hold either.
TASK = Field(Nullable(Str(("classification", "regression"), "task")), None,
             "classification or regression; null: guessed from the targets (integers: classification)")
#: Feature column names.
FEATURES = Field(Nullable(ListOf(Str(), min_len=1)), None,
                 "names of the feature columns; null: every column except the target")
#: A count of generated samples or features.
COUNT = Int
