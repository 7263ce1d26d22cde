"""Reading a corpus: vocabulary, compact ids, the default text, encodings and user errors."""
from __future__ import annotations

import os

import numpy
import pytest
from charrnn import data
from charrnn.data import DEFAULT_SOURCE, Corpus, load_corpus
from charrnn.errors import CharrnnError


def write(tmp_path, content, name="text.txt"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))  # as is: no newline translation
    return path


def test_vocabulary_is_the_sorted_set_of_distinct_characters(tmp_path):
    text = "hello, world!\nHELLO again\r\n\tzebra é ü"
    corpus = load_corpus(str(write(tmp_path, text)), seq_length=5)
    assert corpus.chars == sorted(set(text))
    assert corpus.vocab_size == len(set(text))
    assert corpus.text == text  # newlines (\r\n included) are kept as they are
    assert corpus.char_to_id == {c: i for i, c in enumerate(sorted(set(text)))}
    assert corpus.source == str(tmp_path / "text.txt")


def test_ids_are_compact_unsigned_and_decode_back(tmp_path):
    text = "abracadabra — über naïve café\n" * 3
    corpus = load_corpus(str(write(tmp_path, text)), seq_length=5)
    assert isinstance(corpus.ids, numpy.ndarray)
    assert corpus.ids.dtype == numpy.uint8
    assert corpus.ids.shape == (len(text),)
    assert corpus.ids.max() == corpus.vocab_size - 1
    assert [corpus.chars[i] for i in corpus.ids[:5]] == list(text[:5])
    assert corpus.decode(corpus.ids) == text


def test_more_than_256_characters_use_uint16():
    text = "".join(chr(0x100 + i) for i in range(300)) * 2
    corpus = Corpus.from_text(text, "wide")
    assert corpus.vocab_size == 300
    assert corpus.ids.dtype == numpy.uint16
    assert corpus.decode(corpus.ids) == text
    assert Corpus.from_text("ab" * 10, "narrow").ids.dtype == numpy.uint8


def test_default_corpus_loads():
    corpus = load_corpus(None)
    assert corpus.source == DEFAULT_SOURCE
    assert len(corpus.text) > 100_000
    assert corpus.vocab_size > 60 and "a" in corpus.chars and "\n" in corpus.chars
    assert corpus.chars == sorted(set(corpus.text))
    assert corpus.ids.dtype == (numpy.uint8 if corpus.vocab_size <= 256 else numpy.uint16)
    assert corpus.decode(corpus.ids[:2000]) == corpus.text[:2000]


def test_latin1_file_with_encoding_option(tmp_path):
    text = "café crème brûlée, naïve façade\n" * 2
    path = write(tmp_path, text.encode("latin-1"))
    corpus = load_corpus(str(path), encoding="latin-1", seq_length=10)
    assert corpus.text == text
    assert "é" in corpus.chars
    # the same bytes are not valid UTF-8: a clear error that names the fix
    with pytest.raises(CharrnnError, match="--encoding"):
        load_corpus(str(path), encoding="utf-8", seq_length=10)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", r"does not exist"),
        ("directory", r"is a directory"),
        ("empty", r"is empty"),
        ("short", r"has 5 characters but --seq-length 25 needs at least 26"),
        ("undecodable", r"cannot be decoded as utf-8 \(byte 0\).*--encoding"),
        ("bad-encoding", r"unknown encoding 'no-such-codec'"),
        ("fifo", r"is not a regular file \(a device or pipe\); pass a text file to --data"),
    ],
)
def test_errors_raise_charrnn_error_with_a_useful_message(tmp_path, monkeypatch, case, expected):
    encoding = "utf-8"
    if case == "missing":
        path = tmp_path / "nope.txt"
    elif case == "directory":
        path = tmp_path / "adir"
        path.mkdir()
    elif case == "empty":
        path = write(tmp_path, "")
    elif case == "short":
        path = write(tmp_path, "abcde")
    elif case == "undecodable":
        path = write(tmp_path, b"\xff\xfe\xfa")
    elif case == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        path = tmp_path / "pipe"
        os.mkfifo(path)
        # opening it for reading would block until a writer came
        monkeypatch.setattr(data, "iter_chunks", lambda *a: pytest.fail("the FIFO was opened"))
    else:
        path, encoding = write(tmp_path, "plenty of text here, more than enough" * 2), "no-such-codec"
    with pytest.raises(CharrnnError, match=expected) as info:
        load_corpus(str(path), encoding=encoding, seq_length=25)
    message = str(info.value)
    assert "\n" not in message
    if case != "bad-encoding":
        assert str(path) in message  # says which file


def test_exactly_seq_length_plus_one_characters_is_enough(tmp_path):
    corpus = load_corpus(str(write(tmp_path, "abcdef")), seq_length=5)
    assert len(corpus.ids) == 6
    with pytest.raises(CharrnnError):
        load_corpus(str(write(tmp_path, "abcde")), seq_length=5)


def test_checkpoint_vocabulary_is_reused_and_enforced():
    corpus = Corpus.from_text("abba", "t", chars=["a", "b", "c"])
    assert corpus.chars == ["a", "b", "c"]
    assert corpus.ids.tolist() == [0, 1, 1, 0]
    with pytest.raises(CharrnnError, match="not in the checkpoint's vocabulary"):
        Corpus.from_text("abd", "t", chars=["a", "b", "c"])


def test_a_file_corpus_says_where_its_ids_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    text = "cached once, memmapped after\n" * 4
    corpus = load_corpus(str(write(tmp_path, text)), seq_length=5)
    assert corpus.cache_path.startswith(str(tmp_path / "cache") + os.sep)
    assert corpus.cache_note == f"encoded text cached in {corpus.cache_path}"
    assert numpy.fromfile(corpus.cache_path, dtype=corpus.ids.dtype).tolist() == \
        corpus.ids.tolist()
    assert corpus.text == text  # decoded from the ids when asked for
    in_memory = Corpus.from_text(text, "string")
    assert (in_memory.cache_path, in_memory.cache_reused, in_memory.cache_note) == \
        (None, False, None)
    assert in_memory.text is text


def test_a_codec_that_yields_lone_surrogates_is_refused_in_one_line(tmp_path):
    from charrnn.data import read_text
    from charrnn.errors import CharrnnError

    path = tmp_path / "escaped.txt"
    path.write_text("abc\\udc80def", encoding="ascii")
    with pytest.raises(CharrnnError, match=r"unpaired surrogate \(U\+DC80\).*--encoding utf-8"):
        read_text(str(path), "unicode_escape")
    assert read_text(str(path), "ascii") == "abc\\udc80def"  # as plain text it is fine


def test_a_missing_prime_file_is_not_called_a_data_file(tmp_path):
    from charrnn.data import read_text
    from charrnn.errors import CharrnnError

    with pytest.raises(CharrnnError) as info:
        read_text(str(tmp_path / "nowhere.txt"), option="--prime-file")
    assert str(info.value).startswith("file ") and "--prime-file" in str(info.value)
