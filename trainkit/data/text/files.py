"""Reading users' text files: UTF-8 text only, every refusal naming the file and the byte offset at fault.

A text data set reads whole files into memory, so a file is refused by its
size before it is read (:data:`MAX_TEXT_BYTES`); then its bytes must be UTF-8
text: no NUL byte (a binary file, or UTF-16, which a BOM identifies), no
invalid UTF-8 sequence, not empty. Line ends are read as Python's text mode
reads them (``\\r\\n`` and ``\\r`` become ``\\n``), as nanoGPT and PyTorch's
word_language_model read their files, and a leading UTF-8 BOM is dropped.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainkit.errors import DataError

from ..readers import read_regular

__all__ = ["MAX_TEXT_BYTES", "read_text_file", "decode_text"]

#: Largest text file read (its characters, the token ids and the vocabulary all live in memory).
MAX_TEXT_BYTES = 1 << 30

_UTF16_BOMS = {b"\xff\xfe": "UTF-16 (little-endian)", b"\xfe\xff": "UTF-16 (big-endian)"}


def decode_text(raw: bytes, source: str) -> str:
    """The text of ``raw`` (a file's bytes); DataError naming ``source`` and the byte offset when it is not text."""
    if not raw:
        raise DataError(f"{source}: the file is empty; a text data set needs text")
    for bom, name in _UTF16_BOMS.items():
        if raw.startswith(bom):
            raise DataError(f"{source}: byte offset 0: the file is {name} text (byte-order mark "
                            f"{bom.hex(' ')}); text files must be UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{source}: byte offset {nul}: a NUL byte; this is a binary file, not UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: byte offset {exc.start}: invalid UTF-8 (byte 0x{raw[exc.start]:02x}, "
                        f"{exc.reason}); text files must be UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise DataError(f"{source}: the file holds only a byte-order mark; a text data set needs text")
    return text


def read_text_file(path: str | os.PathLike) -> str:
    """The UTF-8 text of regular file ``path`` (refused before reading when larger than :data:`MAX_TEXT_BYTES`)."""
    raw = read_regular(Path(path), MAX_TEXT_BYTES, "a text data file")
    return decode_text(raw, str(path))
