"""Text for language models: reading UTF-8 files, vocabularies, token streams and their batching.

    from trainkit.data.text import Vocabulary, TokenStream, RandomWindows, BPTTStream

The data sets YAML names (``tinyshakespeare``, ``text``) are declared in
:mod:`trainkit.data.datasets.text`.
"""
from .batching import BPTTStream, RandomWindows, SequentialWindows
from .corpus import VOCAB_FILE, TextBundle, TokenStream
from .files import MAX_TEXT_BYTES, decode_text, read_text_file
from .vocab import EOS, UNK, Vocabulary, tokenize_parts

__all__ = ["BPTTStream", "RandomWindows", "SequentialWindows", "TextBundle", "TokenStream", "VOCAB_FILE",
           "MAX_TEXT_BYTES", "decode_text", "read_text_file", "EOS", "UNK", "Vocabulary", "tokenize_parts"]
