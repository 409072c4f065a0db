"""A tokenized text split into train/validation/test, and the bundle a language-model run trains from.

:class:`TokenStream` is one split: its token ids and vocabulary, usable as a
PyTorch-style map-style dataset of consecutive windows. :class:`TextBundle` is
what :func:`trainkit.data.build` returns for a text data set: the same
interface as :class:`~trainkit.data.build.DataBundle` (``train_loader``,
``eval_loader``, ``input_shape``, ``num_classes`` = the vocabulary size, ``task``
= ``language_model``), plus the vocabulary, which a run writes to
``vocab.json`` and ``trainkit generate`` reads back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trainkit.errors import ConfigError, DataError, Problem

from ..dataset import Dataset
from .batching import BPTTStream, RandomWindows, SequentialWindows
from .vocab import Vocabulary

__all__ = ["TokenStream", "TextBundle", "split_points", "VOCAB_FILE"]

#: The vocabulary's file in a run directory.
VOCAB_FILE = "vocab.json"


class TokenStream(Dataset):
    """One split of a tokenized text, as a dataset of consecutive windows.

    Args:
        tokens: the split's token ids (1-D).
        vocab: the data set's :class:`~trainkit.data.text.vocab.Vocabulary`.
        block_size: tokens per window.
        source: where the tokens come from (for messages).

    ``ds[i]`` is ``(x, y)``: window ``i`` of ``block_size`` token ids (int64) and
    the same window one token later (the next-token targets), as PyTorch
    language-model examples cut their data. ``num_tokens`` is the split's size.
    """

    def __init__(self, tokens: np.ndarray, vocab: Vocabulary, block_size: int = 64, source: str = ""):
        self.tokens = np.asarray(tokens)
        self.vocab = vocab
        self.block_size = int(block_size)
        self.source = source

    @property
    def num_tokens(self) -> int:
        """Tokens in this split."""
        return int(len(self.tokens))

    def __len__(self) -> int:
        return max((len(self.tokens) - 1) // self.block_size, 0)

    def __getitem__(self, index: int):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"window {index} out of range for {n} windows")
        i = (index % n) * self.block_size
        return (self.tokens[i:i + self.block_size].astype(np.int64),
                self.tokens[i + 1:i + 1 + self.block_size].astype(np.int64))

    def get_batch(self, indices, rng=None):
        """Windows ``indices`` at once: ``(x, y)`` int64 arrays ``(len(indices), block_size)``."""
        starts = np.asarray(indices, dtype=np.int64) * self.block_size
        offsets = starts[:, None] + np.arange(self.block_size)
        return self.tokens[offsets].astype(np.int64), self.tokens[offsets + 1].astype(np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_tokens} tokens, {len(self.vocab)} {self.vocab.level} vocabulary)"


def split_points(n: int, val: float, test: float) -> tuple[int, int]:
    """Where train ends and where validation ends in ``n`` tokens: ``[train | val | test]``.

    ``int((1 - val - test) * n)`` as nanoGPT's ``int(0.9 * len(data))``.
    """
    return int((1.0 - val - test) * n), int((1.0 - test) * n)


@dataclass
class TextBundle:
    """What a language-model run trains from (see the module docstring).

    Attributes:
        name: the data set's YAML name.
        train, val, test: :class:`TokenStream` splits (``val``/``test`` None when absent).
        vocab: the vocabulary.
        block_size: tokens per window (per BPTT step in stream batching).
        batching: ``"random"`` (random windows) or ``"stream"`` (BPTT with carried state).
        steps_per_epoch: random batches per epoch.
    """

    name: str
    train: TokenStream
    val: TokenStream | None
    test: TokenStream | None
    vocab: Vocabulary
    block_size: int
    batching: str = "random"
    batch_size: int = 32
    eval_batch_size: int = 32
    steps_per_epoch: int = 1
    seed: int = 0
    task: str = "language_model"
    extra: dict = field(default_factory=dict)
    shuffle: bool = False
    drop_last: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(block_size,)``: one sample is a window of token ids."""
        return (self.block_size,)

    @property
    def num_classes(self) -> int:
        """The vocabulary size: the model outputs one logit per token of it."""
        return len(self.vocab)

    @property
    def class_names(self) -> None:
        return None

    @property
    def meter_options(self) -> dict:
        """Options of the language-model meter: bits per character only for a character vocabulary."""
        return {"chars": self.vocab.level == "char"}

    @property
    def unavailable_metrics(self) -> tuple[str, ...]:
        """Metrics of the task these data cannot give: bits per character of a word vocabulary."""
        return () if self.vocab.level == "char" else ("bpc",)

    @property
    def console_metrics(self) -> tuple[str, ...]:
        """The metrics the epoch table shows after the loss."""
        return ("ppl", "bpc") if self.vocab.level == "char" else ("ppl",)

    def train_loader(self, seed: int | None = None):
        """The training batches: random windows, or the BPTT stream."""
        if self.batching == "stream":
            return BPTTStream(self.train.tokens, self.block_size, self.batch_size)
        return RandomWindows(self.train.tokens, self.block_size, self.batch_size, self.steps_per_epoch,
                             seed=self.seed if seed is None else seed)

    def eval_loader(self, split: str = "val", batch_size: int | None = None):
        """Batches over a whole split in order (None when the split is absent)."""
        if split not in ("val", "test", "train"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        part = getattr(self, split)
        if part is None:
            return None
        bs = batch_size or self.eval_batch_size
        if self.batching == "stream":
            return BPTTStream(part.tokens, self.block_size, bs)
        return SequentialWindows(part.tokens, self.block_size, bs)

    def info(self) -> dict:
        """JSON-friendly summary for run.json (sizes in tokens)."""
        return {"dataset": self.name, "task": self.task, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "class_names": None, "vocab_size": len(self.vocab),
                "level": self.vocab.level, "batching": self.batching,
                "train": self.train.num_tokens, "val": self.val.num_tokens if self.val is not None else 0,
                "test": self.test.num_tokens if self.test is not None else 0, "units": "tokens"}

    # ------------------------------------------------------------------ the run directory
    def run_files(self) -> dict:
        """Files a run directory keeps for this data: ``{name: JSON content}`` (the vocabulary, which
        ``trainkit generate`` reads)."""
        return {VOCAB_FILE: self.vocab.to_json()}

    def check_run_files(self, run_dir: Path) -> None:
        """Refuse to resume a run whose data now give another vocabulary than its ``vocab.json``."""
        path = Path(run_dir) / VOCAB_FILE
        saved = Vocabulary.read(path)
        if saved != self.vocab:
            raise DataError(f"{path}: the run was trained with a {len(saved)}-token {saved.level} vocabulary, but "
                            f"its data now give a {len(self.vocab)}-token {self.vocab.level} one; the data "
                            "files changed since the run started")


def make_bundle(name: str, args: dict, common: dict, seed: int, parts: dict, vocab: Vocabulary,
                locate: Callable | None) -> TextBundle:
    """A :class:`TextBundle` from encoded parts (``{"train": (ids, source), ...}``), with its sizes checked.

    ``args`` are the data set's resolved arguments, ``common`` the ``data:`` keys
    every data set has (batch_size, transforms). Problems the sizes reveal are
    placed at the config key that can fix them.
    """
    block, bs = int(args["block_size"]), int(common["batch_size"])
    ebs = int(args.get("eval_batch_size") or bs)
    batching = args["batching"]
    problems = []
    if common.get("transforms"):
        problems.append((("data", "transforms"), f"{name} is text: transforms apply to images and features, "
                                                 "not to token ids; remove them"))
    limit = common.get("limit")
    streams = {}
    for split, value in parts.items():
        if value is None:
            streams[split] = None
            continue
        ids, source = value
        if limit is not None:  # a smoke run (data.limit): the first N windows of each part
            ids = ids[:int(limit) * block + 1]
        streams[split] = TokenStream(ids, vocab, block, source)
        need = bs if split == "train" else ebs
        if batching == "stream" and len(ids) // need < 2:
            problems.append((("data", "batch_size" if split == "train" else "eval_batch_size"),
                             f"the {split} part ({len(ids):,} tokens of {source}) cut into {need} columns leaves "
                             "fewer than 2 tokens per column; use a smaller batch size"))
        elif len(ids) < block + 1:
            key = "block_size" if split == "train" else ("val_split" if split == "val" else "test_split")
            problems.append((("data", key), f"the {split} part ({len(ids):,} tokens of {source}) is shorter than "
                                            f"one window of block_size {block} plus its target; use a smaller "
                                            "block_size" + ("" if split == "train" else f" or a larger {key}")))
    if problems:
        if locate is not None:
            raise ConfigError([locate(path, msg) for path, msg in problems])
        raise ConfigError([Problem(None, None, None, ".".join(path), msg) for path, msg in problems])
    steps = args.get("steps_per_epoch") or max(streams["train"].num_tokens // (bs * block), 1)
    if limit is not None:  # an epoch of a smoke run draws about N windows
        steps = min(int(steps), max(-(-int(limit) // bs), 1))
    return TextBundle(name, streams["train"], streams.get("val"), streams.get("test"), vocab, block, batching,
                      bs, ebs, int(steps), int(seed))

