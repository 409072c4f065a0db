"""Text data sets for language models: the embedded ``tinyshakespeare`` and users' UTF-8 files (``text``).

Both give a :class:`~trainkit.data.text.corpus.TextBundle` to the config stage
(task ``language_model``: a sample is a window of ``block_size`` token ids, the
targets the same window one token later) and are, in Python, map-style
datasets of consecutive windows (:class:`~trainkit.data.text.corpus.TokenStream`).

* ``tinyshakespeare``: 1,115,394 characters of Shakespeare's plays (public
  domain; compiled by A. Karpathy for char-rnn), 65 distinct characters. The
  first 90% is train, the last 10% validation, as nanoGPT splits it; there is
  no test part. The text is checked against its MD5 when read.
* ``text``: one file, cut ``[train | val | test]`` by ``val_split`` and
  ``test_split``; or a folder of WikiText-style files (``train.txt``,
  ``valid.txt``, ``test.txt``, or ``wiki.train.tokens``...). Character or word
  vocabulary (see :mod:`trainkit.data.text.vocab`).
"""
from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from trainkit.errors import ConfigError, DataError, Problem
from trainkit.registry import REQUIRED, Checker, Field, Float, Int, Nullable, Str, dataset

from ..text.corpus import TextBundle, TokenStream, make_bundle, split_points
from ..text.files import read_text_file
from ..text.vocab import LEVELS, Vocabulary, tokenize_parts
from .embedded import EMBEDDED_DIR

__all__ = ["TinyShakespeare", "TextFiles", "TINYSHAKESPEARE_MD5", "SPLIT_FILES"]

TINYSHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"
_SHAKESPEARE_FILE = "tinyshakespeare.txt.gz"

#: File names of the parts of a WikiText-style folder, in the order they are looked for.
SPLIT_FILES = {"train": ("train.txt", "wiki.train.tokens", "wiki.train.raw"),
               "val": ("valid.txt", "wiki.valid.tokens", "wiki.valid.raw", "val.txt"),
               "test": ("test.txt", "wiki.test.tokens", "wiki.test.raw")}

#: Keys every text data set takes (besides data.batch_size).
LM_FIELDS = {
    "block_size": Field(Int(lo=1), 64, "tokens per window: the model's context length in random batching, "
                                       "the BPTT length in stream batching"),
    "batching": Field(Str(("random", "stream"), "batching"), "random",
                      "random: windows at random positions (nanoGPT); stream: batch_size contiguous columns read "
                      "block_size tokens at a time, recurrent layers carrying their hidden state across batches "
                      "(word_language_model)"),
    "steps_per_epoch": Field(Nullable(Int(lo=1)), None,
                             "random batching: batches per epoch; null: train tokens / (batch_size x block_size)"),
    "eval_batch_size": Field(Nullable(Int(lo=1)), None, "batch size (stream: columns) of evaluation; null: "
                                                        "batch_size"),
}


def _check_lm(args: dict, path: tuple, ck: Checker) -> None:
    if args.get("batching") == "stream" and args.get("steps_per_epoch") is not None:
        ck.error(path + ("steps_per_epoch",), "steps_per_epoch applies to random batching; a stream's epoch is "
                                              "one pass over the training text")


def _shape(args) -> tuple:
    return (args["block_size"],)


@lru_cache(maxsize=1)
def _shakespeare_text() -> str:
    path = EMBEDDED_DIR / _SHAKESPEARE_FILE
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: embedded data file unreadable ({exc}); reinstall trainkit") from None
    if hashlib.md5(raw).hexdigest() != TINYSHAKESPEARE_MD5:
        raise DataError(f"{path}: the text does not match its MD5 {TINYSHAKESPEARE_MD5}; reinstall trainkit")
    return raw.decode("utf-8")


@lru_cache(maxsize=1)
def _shakespeare_ids() -> tuple[Vocabulary, np.ndarray]:
    vocab, (ids,) = tokenize_parts([(_SHAKESPEARE_FILE, _shakespeare_text())], "char", 1 << 16)
    ids.flags.writeable = False
    return vocab, ids


@dataset("tinyshakespeare", shape=_shape, task="language_model", check=_check_lm,
         fields={**LM_FIELDS, "val_split": Field(Float(0, 1, hi_open=True), 0.1,
                                                 "the share at the end of the text held out for validation "
                                                 "(nanoGPT: 0.1)")},
         doc="embedded: Tiny Shakespeare, 1,115,394 characters, 65-character vocabulary; 90% train, 10% val")
class TinyShakespeare(TokenStream):
    """Tiny Shakespeare at character level: windows of ``block_size`` character ids and their next characters.

    Args:
        split: ``"train"`` (the first ``1 - val_fraction`` of the text) or ``"val"`` (the rest).
        block_size: characters per window.
        val_fraction: share at the end held out for validation, default 0.1 (nanoGPT's split).
    """

    def __init__(self, split: str = "train", block_size: int = 64, val_fraction: float = 0.1):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        vocab, ids = _shakespeare_ids()
        cut, _ = split_points(len(ids), val_fraction, 0.0)
        part = ids[:cut] if split == "train" else ids[cut:]
        super().__init__(part, vocab, block_size, f"{_SHAKESPEARE_FILE} ({split})")

    @classmethod
    def from_config(cls, args) -> tuple:
        """The train part and, as its held-out part, the validation text."""
        return (cls("train", args["block_size"], args["val_split"]),
                cls("val", args["block_size"], args["val_split"]) if args["val_split"] else None)

    @classmethod
    def build_bundle(cls, spec, seed: int = 0, locate=None) -> TextBundle:
        """The run's :class:`TextBundle` for a resolved ``data:`` section."""
        args = dict(spec.args)
        vocab, ids = _shakespeare_ids()
        cut, _ = split_points(len(ids), float(args["val_split"]), 0.0)
        parts = {"train": (ids[:cut], f"{_SHAKESPEARE_FILE} (train)"),
                 "val": (ids[cut:], f"{_SHAKESPEARE_FILE} (val)") if cut < len(ids) else None, "test": None}
        return make_bundle("tinyshakespeare", args, _common(spec), seed, parts, vocab, locate)


def _common(spec) -> dict:
    return {"batch_size": spec.batch_size, "transforms": spec.transforms, "limit": spec.limit}


def _split_files(folder: Path) -> dict:
    found = {}
    for split, names in SPLIT_FILES.items():
        found[split] = next((folder / n for n in names if (folder / n).exists()), None)
    if found["train"] is None:
        raise DataError(f"{folder}: a text data folder needs a training file ({' or '.join(SPLIT_FILES['train'])}); "
                        "or set data.path to one file")
    return found


def _check_text(args: dict, path: tuple, ck: Checker) -> None:
    _check_lm(args, path, ck)
    val, test = args.get("val_split"), args.get("test_split")
    if isinstance(val, float) and isinstance(test, float) and val + test >= 1:
        ck.error(path + ("test_split",), f"val_split {val} and test_split {test} leave nothing to train on; "
                                         "their sum must be below 1")


@dataset("text", shape=_shape, task="language_model", check=_check_text, fields={
    "path": Field(Str(), REQUIRED, "a UTF-8 text file, or a folder of train.txt/valid.txt/test.txt (or "
                                   "wiki.train.tokens...) files"),
    "level": Field(Str(LEVELS, "level"), "char", "char: one token per character; word: whitespace-separated "
                                                 "words, <eos> ending each line (WikiText)"),
    "max_vocab": Field(Int(lo=2), 100_000, "refuse data whose vocabulary has more tokens than this"),
    **LM_FIELDS,
    "val_split": Field(Nullable(Float(0, 1, hi_open=True)), None,
                       "one file: the share after the training text held out for validation (null: 0.1); "
                       "a folder: null (its valid file is the validation part)"),
    "test_split": Field(Nullable(Float(0, 1, hi_open=True)), None,
                        "one file: the share at the end held out as test (null: 0); a folder: null"),
}, doc="UTF-8 text files: one file split by val_split/test_split, or a WikiText-style folder; char or word level")
class TextFiles(TokenStream):
    """Users' UTF-8 text as a language-model data set (see the module docstring).

    Args:
        path: a text file, or a folder with ``train.txt``/``valid.txt``/``test.txt``
            (or WikiText's ``wiki.train.tokens``... names).
        split: ``"train"``, ``"val"`` or ``"test"``.
        level: ``"char"`` or ``"word"``.
        block_size: tokens per window.
        max_vocab: largest vocabulary accepted.
        val_split, test_split: for one file, the shares of its tokens held out at
            its end (defaults 0.1 and 0).
    """

    def __init__(self, path, split: str = "train", level: str = "char", block_size: int = 64,
                 max_vocab: int = 100_000, val_split: float | None = None, test_split: float | None = None):
        parts, vocab = _read_parts(Path(path), level, max_vocab, val_split, test_split)
        if split not in parts or parts[split] is None:
            raise ValueError(f"{path}: has no {split} part")
        ids, source = parts[split]
        super().__init__(ids, vocab, block_size, source)

    @classmethod
    def from_config(cls, args) -> tuple:
        """The train part and the test part (None when there is none)."""
        parts, vocab = _read_parts(Path(args["path"]), args["level"], args["max_vocab"], args["val_split"],
                                   args["test_split"])
        test = parts.get("test")
        return (TokenStream(parts["train"][0], vocab, args["block_size"], parts["train"][1]),
                TokenStream(test[0], vocab, args["block_size"], test[1]) if test else None)

    @classmethod
    def build_bundle(cls, spec, seed: int = 0, locate=None) -> TextBundle:
        """The run's :class:`TextBundle` for a resolved ``data:`` section."""
        args = dict(spec.args)
        path = Path(args["path"])
        if path.is_dir() and (args["val_split"] is not None or args["test_split"] is not None):
            key = "val_split" if args["val_split"] is not None else "test_split"
            problem = (("data", key), f"{path} is a folder: its files are the splits; remove {key}")
            raise ConfigError([locate(*problem)] if locate else [Problem(None, None, None, f"data.{key}", problem[1])])
        parts, vocab = _read_parts(path, args["level"], args["max_vocab"], args["val_split"], args["test_split"])
        return make_bundle("text", args, _common(spec), seed, parts, vocab, locate)


def _read_parts(path: Path, level: str, max_vocab: int, val_split, test_split) -> tuple[dict, Vocabulary]:
    """``({"train": (ids, source), "val": ..., "test": ...}, vocabulary)`` of one file or a folder."""
    if path.is_dir():
        files = _split_files(path)
        texts = [(str(f), read_text_file(f)) for f in files.values() if f is not None]
        vocab, ids = tokenize_parts(texts, level, max_vocab)
        it = iter(zip(ids, (t[0] for t in texts)))
        return {split: (next(it) if f is not None else None) for split, f in files.items()}, vocab
    val = 0.1 if val_split is None else float(val_split)
    test = 0.0 if test_split is None else float(test_split)
    vocab, (ids,) = tokenize_parts([(str(path), read_text_file(path))], level, max_vocab)
    a, b = split_points(len(ids), val, test)
    return {"train": (ids[:a], f"{path} (train)"), "val": (ids[a:b], f"{path} (val)") if val else None,
            "test": (ids[b:], f"{path} (test)") if test else None}, vocab
