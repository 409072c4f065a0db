"""Text data for language models: reading files, vocabularies, splits and batching, against the references.

The references are nanoGPT (character vocabulary ``sorted(set(text))``, split at
``int(0.9 * n)``, ``get_batch``'s random windows) and PyTorch's
word_language_model (``Dictionary``/``Corpus.tokenize``, ``batchify``,
``get_batch``), re-written here in plain Python as the oracle.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from trainkit.data import build
from trainkit.data.datasets.text import TINYSHAKESPEARE_MD5, TinyShakespeare, _shakespeare_text
from trainkit.data.text import BPTTStream, RandomWindows, SequentialWindows, Vocabulary, read_text_file
from trainkit.data.text.batching import decode_hidden, encode_hidden
from trainkit.data.text.vocab import tokenize_parts
from trainkit.errors import ConfigError, DataError

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20


# ----------------------------------------------------------------------------- reading files
@pytest.mark.parametrize("raw,offset,words", [
    (b"hello\x00world", 5, "NUL byte"),
    (b"caf\xc3\xa9 ok \xff more", 9, "invalid UTF-8"),
    (b"abc\xe2\x82", 3, "invalid UTF-8"),               # a truncated 3-byte sequence at the end
    (b"\xff\xfeh\x00i\x00", 0, "UTF-16"),
    (b"", None, "empty"),
])
def test_bad_text_files_are_refused_naming_file_and_byte_offset(tmp_path, raw, offset, words):
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    with pytest.raises(DataError) as e:
        read_text_file(path)
    msg = str(e.value)
    assert str(path) in msg and words in msg
    if offset is not None:
        assert f"byte offset {offset}:" in msg


def test_text_is_read_as_python_text_mode_reads_it(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa\r\nb\rc\nd".encode("utf-8"))
    assert read_text_file(path) == "a\nb\nc\nd"
    with pytest.raises(DataError, match="not a regular file|is a directory"):
        read_text_file(tmp_path)


# ----------------------------------------------------------------------------- vocabularies
def _reference_words(texts: list[str]) -> tuple[list[str], list[list[int]]]:
    """word_language_model's Corpus: one Dictionary over train, valid, test; '<eos>' ends every line."""
    idx2word, word2idx, out = [], {}, []
    for text in texts:
        lines = text.splitlines(keepends=True)  # what ``for line in f`` yields for \n-only text
        for line in lines:
            for w in line.split() + ["<eos>"]:
                if w not in word2idx:
                    word2idx[w] = len(idx2word)
                    idx2word.append(w)
        out.append([word2idx[w] for line in lines for w in line.split() + ["<eos>"]])
    return idx2word, out


@pytest.mark.parametrize("texts", [
    ["the cat sat\non the mat\n", "the dog <unk>\n", "a cat\n"],
    ["no final line end", "x  y\n\n\nz", "  leading spaces\n"],
    [SAMPLE, "Speak speak\n", "All: First\n"],
])
def test_word_vocabulary_and_ids_are_word_language_models(texts):
    vocab, ids = tokenize_parts([(f"part{i}", t) for i, t in enumerate(texts)], "word", 1000)
    ref_vocab, ref_ids = _reference_words(texts)
    assert vocab.itos == ref_vocab and vocab.level == "word"
    for got, want in zip(ids, ref_ids):
        assert got.tolist() == want
    assert "<eos>" in vocab


def test_char_vocabulary_and_ids_are_nanogpts():
    text = SAMPLE + "é€\t"
    vocab, (ids,) = tokenize_parts([("t", text)], "char", 1000)
    chars = sorted(set(text))
    assert vocab.itos == chars
    assert ids.tolist() == [chars.index(c) for c in text]
    assert vocab.decode(ids) == text


def test_vocabulary_limit_names_the_file_and_byte_offset():
    with pytest.raises(DataError) as e:
        tokenize_parts([("a.txt", "abcabc"), ("b.txt", "ab\u00e9d")], "char", 4)
    # 'a','b','c' then 'é' (4th: fits), then 'd' at char 3 of b.txt = byte 4 (é is 2 bytes)
    assert "b.txt: byte offset 4:" in str(e.value) and "'d'" in str(e.value) and "max_vocab" in str(e.value)
    with pytest.raises(DataError) as e:
        tokenize_parts([("w.txt", "one two\nthree one four\n")], "word", 4)
    # one two <eos> three -> 'four' is the 5th word, at byte 8 + 10 = 18
    assert "w.txt: byte offset 18:" in str(e.value) and "'four'" in str(e.value)


def test_vocabulary_round_trips_through_json_and_refuses_a_bad_file(tmp_path):
    vocab, _ = tokenize_parts([("t", "hello <unk> world\nhello\n")], "word", 100)
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab.to_json()))
    again = Vocabulary.read(path)
    assert again == vocab
    ids = again.encode("hello world <unk>", final_eos=False)
    assert again.decode(ids) == "hello world <unk>"
    assert again.unknown("hello there mars") == ["there", "mars"]
    for bad in ({"format": "x"}, {"format": "trainkit-vocab/1", "level": "char", "tokens": ["ab"]},
                {"format": "trainkit-vocab/1", "level": "word", "tokens": ["a", "a"]}, []):
        path.write_text(json.dumps(bad))
        with pytest.raises(DataError, match="vocab.json"):
            Vocabulary.read(path)
    path.write_bytes(b"\xff{")
    with pytest.raises(DataError, match="not a JSON vocabulary"):
        Vocabulary.read(path)


# ----------------------------------------------------------------------------- tinyshakespeare
def test_tinyshakespeare_is_nanogpts_split_of_the_verified_text():
    text = _shakespeare_text()
    assert hashlib.md5(text.encode()).hexdigest() == TINYSHAKESPEARE_MD5
    assert len(text) == 1_115_394
    train, val = TinyShakespeare("train", block_size=64), TinyShakespeare("val", block_size=64)
    chars = sorted(set(text))
    assert train.vocab.itos == chars and len(chars) == 65
    n = int(0.9 * len(text))
    assert train.num_tokens == n and val.num_tokens == len(text) - n
    assert train.vocab.decode(val.tokens[:200]) == text[n:n + 200]
    x, y = train[3]
    assert train.vocab.decode(x) == text[192:256] and train.vocab.decode(y) == text[193:257]


# ----------------------------------------------------------------------------- batching
def test_random_windows_are_next_token_pairs_and_resume_exactly():
    tokens = np.arange(1000, dtype=np.int32) % 97
    loader = RandomWindows(tokens, block_size=16, batch_size=5, steps=7, seed=3)
    first = [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]
    assert len(first) == 7
    for x, y in first:
        assert x.shape == (5, 16) and x.dtype == np.int64
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        starts = [int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(tokens, 16) == row, axis=1))[0])
                  for row in x]
        assert all(0 <= s <= len(tokens) - 17 for s in starts)
    second = [x.numpy().copy() for x, _ in loader]
    assert not all(np.array_equal(a, b) for (a, _), b in zip(first, second))  # a new draw every epoch
    # the state after 3 batches of epoch 2 restores the rest of epoch 2 and epoch 3 exactly
    ref = RandomWindows(tokens, 16, 5, 7, seed=3)
    list(ref)
    it = iter(ref)
    [next(it) for _ in range(3)]
    state = json.loads(json.dumps(ref.state_dict()))
    rest = [x.numpy().copy() for x, _ in it] + [x.numpy().copy() for x, _ in ref]
    again = RandomWindows(tokens, 16, 5, 7, seed=99)
    again.load_state_dict(state)
    got = [x.numpy().copy() for x, _ in again] + [x.numpy().copy() for x, _ in again]
    assert len(got) == len(rest) == 4 + 7
    for a, b in zip(got, rest):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        again.load_state_dict({"generator": {"bit_generator": "MT19937"}, "batches_done": 0})
    with pytest.raises(ValueError):
        again.load_state_dict({**state, "batches_done": 8})


def test_sequential_windows_cover_the_split_once_in_order():
    tokens = np.arange(103, dtype=np.int32)
    batches = list(SequentialWindows(tokens, block_size=10, batch_size=4))
    xs = np.concatenate([x.numpy() for x, _ in batches])
    ys = np.concatenate([y.numpy() for _, y in batches])
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(xs.reshape(-1), np.arange(100))
    np.testing.assert_array_equal(ys.reshape(-1), np.arange(1, 101))


def _reference_bptt(tokens: list[int], bsz: int, bptt: int) -> list[tuple[list, list]]:
    """word_language_model's batchify + get_batch, transposed to batch-first."""
    nbatch = len(tokens) // bsz
    cols = [tokens[j * nbatch:(j + 1) * nbatch] for j in range(bsz)]
    out = []
    for i in range(0, nbatch - 1, bptt):
        seq = min(bptt, nbatch - 1 - i)
        out.append(([c[i:i + seq] for c in cols], [c[i + 1:i + 1 + seq] for c in cols]))
    return out


@pytest.mark.parametrize("n,bsz,bptt", [(100, 4, 7), (1000, 20, 35), (37, 3, 50), (64, 2, 31)])
def test_bptt_stream_is_word_language_models_batchify_and_get_batch(n, bsz, bptt):
    tokens = (np.arange(n) * 7 % 23).astype(np.int32)
    got = [(x.numpy().tolist(), y.numpy().tolist()) for x, y in BPTTStream(tokens, bptt, bsz)]
    assert got == _reference_bptt(tokens.tolist(), bsz, bptt)


def test_bptt_stream_state_holds_position_and_carried_state_exactly():
    from trainkit.autograd.tensor import Tensor

    stream = BPTTStream(np.arange(200, dtype=np.int32), 5, 4)
    it = iter(stream)
    next(it), next(it)
    h = Tensor(np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32))
    stream.hidden = {"lstm": (h, h * 2), "gru": h}
    state = json.loads(json.dumps(stream.state_dict()))
    assert state["batches_done"] == 2
    again = BPTTStream(np.arange(200, dtype=np.int32), 5, 4)
    again.load_state_dict(state)
    rest = [x.numpy().tolist() for x, _ in again]
    assert rest == [x.numpy().tolist() for x, _ in it]
    np.testing.assert_array_equal(again.hidden["lstm"][1].numpy(), (h * 2).numpy())
    np.testing.assert_array_equal(again.hidden["gru"].numpy(), h.numpy())
    list(again)
    assert again.hidden == {}  # a new pass starts from zeros
    bad = encode_hidden({"x": h})
    bad["x"]["arrays"][0]["shape"] = [2, 4, 4]
    with pytest.raises(ValueError, match="does not match"):
        decode_hidden(bad)


# ----------------------------------------------------------------------------- the data section
def _spec(**data):
    return {"dataset": "text", **data}


def test_text_data_set_from_one_file_splits_at_the_end(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE)
    b = build(_spec(path=str(path), block_size=8, batch_size=4, val_split=0.2, test_split=0.1))
    n = len(SAMPLE)
    assert (b.train.num_tokens, b.val.num_tokens, b.test.num_tokens) == (int(0.7 * n), int(0.9 * n) - int(0.7 * n),
                                                                         n - int(0.9 * n))
    assert b.task == "language_model" and b.input_shape == (8,) and b.num_classes == len(set(SAMPLE))
    assert len(b.train_loader()) == b.train.num_tokens // 32
    assert b.info()["units"] == "tokens"


def test_text_data_set_from_a_wikitext_folder(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text(" = Title = \n the cat sat \n")
    (tmp_path / "wiki.valid.tokens").write_text(" the dog sat \n" * 3)
    (tmp_path / "wiki.test.tokens").write_text(" a <unk> sat \n" * 3)
    b = build(_spec(path=str(tmp_path), level="word", block_size=2, batch_size=2, batching="stream"))
    assert b.vocab.itos[:5] == ["=", "Title", "<eos>", "the", "cat"]
    assert "<unk>" in b.vocab and b.console_metrics == ("ppl",)
    assert b.test.num_tokens == 12 and b.val.num_tokens == 12
    with pytest.raises(ConfigError, match="its files are the splits"):
        build(_spec(path=str(tmp_path), level="word", val_split=0.1))


@pytest.mark.parametrize("data,key,words", [
    ({"block_size": 400}, "data.val_split", "shorter than one window"),
    ({"batching": "stream", "steps_per_epoch": 3}, "data.steps_per_epoch", "applies to random batching"),
    ({"val_split": 0.6, "test_split": 0.5}, "data.test_split", "leave nothing to train on"),
    ({"transforms": ["random_horizontal_flip"]}, "data.transforms", ""),
])
def test_bad_text_data_sections_are_refused_at_their_key(tmp_path, data, key, words):
    path = tmp_path / "c.txt"
    path.write_text(SAMPLE[:2000])
    with pytest.raises(ConfigError) as e:
        build(_spec(path=str(path), **data))
    assert key in str(e.value) and words in str(e.value)
