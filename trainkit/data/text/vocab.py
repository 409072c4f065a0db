"""Vocabularies of text data sets: characters (as nanoGPT) or words (as PyTorch's word_language_model).

* **Character level**: every distinct character of the data is a token, ids in
  code-point order (``sorted(set(text))``, nanoGPT's ``stoi``); line ends are
  the character ``"\\n"``.
* **Word level**: each line is split on whitespace and ends with the token
  ``<eos>``; ids in order of first appearance over train, valid, test (the
  ``Dictionary`` of word_language_model). ``<unk>`` is an ordinary word: WikiText
  writes it in place of rare words.

Both are built from every part of the data (train, then validation, then
test), as both references do, so every token of every split has an id. A
vocabulary larger than ``max_vocab`` is refused, naming the file and the byte
offset where the first token beyond the limit appears.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from trainkit.errors import DataError

__all__ = ["EOS", "UNK", "LEVELS", "Vocabulary", "tokenize_parts", "VOCAB_FORMAT"]

EOS = "<eos>"
UNK = "<unk>"
LEVELS = ("char", "word")
VOCAB_FORMAT = "trainkit-vocab/1"
# vocab.json is read back from run directories: a file larger than this is not one of ours.
_MAX_VOCAB_JSON = 256 << 20


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _lines(text: str, final_eos: bool = True) -> list[list[str]]:
    """Words per line as word_language_model reads a file (``for line in f: line.split() + ['<eos>']``)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the text ends with a line end: no further line
        lines.pop()
        final_eos = True
    words = [line.split() + [EOS] for line in lines]
    if words and not final_eos:
        words[-1].pop()
    return words


class Vocabulary:
    """The tokens of a text data set and their ids.

    Args:
        tokens: the tokens in id order.
        level: ``"char"`` or ``"word"``.

    ``encode(text)`` gives int64 ids, ``decode(ids)`` text (word tokens joined by
    spaces, ``<eos>`` shown as a line end); ``unknown(text)`` lists the tokens of
    ``text`` that have no id.
    """

    def __init__(self, tokens: Sequence[str], level: str):
        if level not in LEVELS:
            raise ValueError(f"level must be char or word, not {level!r}")
        self.level = level
        self.itos = [str(t) for t in tokens]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary lists each token once")
        if level == "char":
            if any(len(t) != 1 for t in self.itos):
                raise ValueError("a character vocabulary holds single characters")
            codes = np.array([ord(t) for t in self.itos], dtype=np.int64)
            self._order = np.argsort(codes, kind="stable")
            self._sorted = codes[self._order]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} {self.level} tokens)"

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and (self.level, self.itos) == (other.level, other.itos)

    # ------------------------------------------------------------------ text <-> ids
    def tokens_of(self, text: str, final_eos: bool = True) -> list[str]:
        """``text`` as tokens (characters, or words with ``<eos>`` ending each line)."""
        if self.level == "char":
            return list(text)
        return [w for line in _lines(text, final_eos) for w in line]

    def unknown(self, text: str, final_eos: bool = False) -> list[str]:
        """The distinct tokens of ``text`` that are not in the vocabulary, in order of appearance."""
        seen: dict[str, None] = {}
        for t in self.tokens_of(text, final_eos):
            if t not in self.stoi:
                seen.setdefault(t)
        return list(seen)

    def encode(self, text: str, final_eos: bool = True) -> np.ndarray:
        """Token ids of ``text`` (int64); ValueError naming the tokens that have none.

        ``final_eos`` (words): end a last line that has no line end with ``<eos>``, as
        a corpus file's is; a prompt's is not.
        """
        if self.level == "char":
            cp = _code_points(text).astype(np.int64)
            if not len(self._sorted):
                idx = np.zeros(len(cp), dtype=np.int64)
                ok = np.zeros(len(cp), dtype=bool)
            else:
                idx = np.minimum(np.searchsorted(self._sorted, cp), len(self._sorted) - 1)
                ok = self._sorted[idx] == cp
            if not ok.all():
                raise ValueError(f"not in the vocabulary: {_listing(self.unknown(text))}")
            return self._order[idx].astype(np.int64)
        words = self.tokens_of(text, final_eos)
        missing = [w for w in words if w not in self.stoi]
        if missing:
            raise ValueError(f"not in the vocabulary: {_listing(list(dict.fromkeys(missing)))}")
        return np.fromiter((self.stoi[w] for w in words), dtype=np.int64, count=len(words))

    def decode(self, ids) -> str:
        """The text of token ``ids`` (words: spaces between them, ``<eos>`` as a line end)."""
        tokens = [self.itos[int(i)] for i in np.asarray(ids).reshape(-1)]
        if self.level == "char":
            return "".join(tokens)
        out: list[str] = []
        for t in tokens:
            if t == EOS:
                out.append("\n")
            else:
                if out and out[-1] != "\n":
                    out.append(" ")
                out.append(t)
        return "".join(out)

    # ------------------------------------------------------------------ vocab.json
    def to_json(self) -> dict:
        """The JSON form written to a run directory's ``vocab.json``."""
        return {"format": VOCAB_FORMAT, "level": self.level, "size": len(self), "tokens": list(self.itos)}

    @classmethod
    def from_json(cls, data, source: str = "vocab.json") -> "Vocabulary":
        """A vocabulary from :meth:`to_json`'s form; DataError naming ``source`` when it is not one."""
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DataError(f"{source}: not a trainkit vocabulary (expected format {VOCAB_FORMAT!r})")
        tokens, level = data.get("tokens"), data.get("level")
        if level not in LEVELS:
            raise DataError(f"{source}: level must be char or word, found {level!r}")
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
            raise DataError(f"{source}: 'tokens' must be a non-empty list of non-empty strings")
        try:
            return cls(tokens, level)
        except ValueError as exc:
            raise DataError(f"{source}: {exc}") from None

    @classmethod
    def read(cls, path) -> "Vocabulary":
        """Read a ``vocab.json`` file (size-checked before reading)."""
        from ..readers import read_regular

        raw = read_regular(path, _MAX_VOCAB_JSON, "a vocabulary file")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise DataError(f"{path}: not a JSON vocabulary ({exc})") from None
        return cls.from_json(data, str(path))


def _listing(tokens: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(t) for t in tokens[:limit])
    return shown + (f" and {len(tokens) - limit} more" if len(tokens) > limit else "")


def _byte_offset(text: str, char_index: int) -> int:
    return len(text[:char_index].encode("utf-8"))


def _char_vocab(parts: list[tuple[str, str]], max_vocab: int) -> Vocabulary:
    seen = np.zeros(0, dtype=np.int64)
    for source, text in parts:
        codes, first = np.unique(_code_points(text).astype(np.int64), return_index=True)
        new = ~np.isin(codes, seen)
        if len(seen) + int(new.sum()) > max_vocab:
            where = np.sort(first[new])[max_vocab - len(seen)]
            raise DataError(f"{source}: byte offset {_byte_offset(text, int(where))}: character "
                            f"{text[where]!r} makes the vocabulary larger than its limit of {max_vocab:,} "
                            "distinct characters (data.max_vocab)")
        seen = np.union1d(seen, codes)
    return Vocabulary([chr(c) for c in seen], "char")


def _word_vocab(parts: list[tuple[str, list[list[str]], str]], max_vocab: int) -> Vocabulary:
    stoi: dict[str, int] = {}
    for source, lines, text in parts:
        for n, line in enumerate(lines):
            for w in line:
                if w in stoi:
                    continue
                if len(stoi) == max_vocab:
                    raise DataError(f"{source}: byte offset {_word_offset(text, n, w)}: word {w!r} makes the "
                                    f"vocabulary larger than its limit of {max_vocab:,} words (data.max_vocab)")
                stoi[w] = len(stoi)
    return Vocabulary(list(stoi), "word")


def _word_offset(text: str, line: int, word: str) -> int:
    """Byte offset of the first ``word`` on line ``line`` (0-based) of ``text``."""
    start = 0
    for _ in range(line):
        start = text.index("\n", start) + 1
    end = text.find("\n", start)
    at = text.find(word, start, end if end >= 0 else len(text)) if word != EOS else (end if end >= 0 else len(text))
    return _byte_offset(text, at if at >= 0 else start)


def tokenize_parts(parts: list[tuple[str, str]], level: str, max_vocab: int) -> tuple[Vocabulary, list[np.ndarray]]:
    """Build the vocabulary of ``(source, text)`` parts (train first) and encode each part.

    Returns the vocabulary and one int32 id array per part. DataError when a part
    holds no token or the vocabulary would exceed ``max_vocab``.
    """
    if level == "char":
        vocab = _char_vocab(parts, max_vocab)
        return vocab, [vocab.encode(text).astype(np.int32) for _, text in parts]
    split = [(source, _lines(text), text) for source, text in parts]
    for source, lines, _ in split:
        if not any(len(line) > 1 for line in lines):
            raise DataError(f"{source}: holds no words (only empty lines)")
    vocab = _word_vocab(split, max_vocab)
    stoi = vocab.stoi
    ids = []
    for _, lines, _ in split:
        n = sum(len(line) for line in lines)
        ids.append(np.fromiter((stoi[w] for line in lines for w in line), dtype=np.int32, count=n))
    return vocab, ids
