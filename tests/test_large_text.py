"""Large texts in bounded memory: the chunked encoding into a cached id file, and streams that
read it as a memmap without copying it."""
from __future__ import annotations

import json
import os
import stat

import numpy
import pytest
from charrnn import data
from charrnn.data import Corpus, load_corpus, read_text
from charrnn.errors import CharrnnError
from charrnn.registry import get_registry
from charrnn.stream import TextStream
from helpers import LEAN, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory of this test's own."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(path))
    return path


@pytest.fixture
def small_chunks(monkeypatch):
    """Decode 7 bytes at a time, so multi-byte characters and CRLF straddle chunks."""
    monkeypatch.setattr(data, "CHUNK_BYTES", 7)


def write(tmp_path, text, encoding="utf-8", name="text.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))  # as is: no newline translation
    return str(path)


def entries(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


WIDE = "".join(chr(0x100 + i) for i in range(300))  # > 256 distinct: uint16 ids
TEXTS = {
    "ascii": ("the quick brown fox jumps over the lazy dog\n" * 40, "utf-8"),
    "multibyte": ("naïve café — über ünïcödé 日本語テキスト 😀🎉 ok\n" * 30, "utf-8"),
    "crlf": ("line one\r\nline two\rline three\n\r\n" * 30, "utf-8"),
    "latin-1": ("café crème brûlée, naïve façade ±§\r\n" * 30, "latin-1"),
    "utf-16": ("wide ☃ snow ❄ and 𝄞 clef\n" * 20, "utf-16"),
    "uint16": (WIDE * 3 + "tail", "utf-8"),
}


@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "7-byte-chunks"])
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_streamed_encoding_equals_from_text(tmp_path, cache, monkeypatch, name, chunked):
    text, encoding = TEXTS[name]
    if chunked:
        monkeypatch.setattr(data, "CHUNK_BYTES", 7)
        assert len(text.encode(encoding)) > 20 * data.CHUNK_BYTES
    corpus = load_corpus(write(tmp_path, text, encoding), encoding=encoding, seq_length=10)
    expected = Corpus.from_text(text, "x")
    assert corpus.chars == sorted(set(text)) == expected.chars
    assert corpus.ids.dtype == expected.ids.dtype
    numpy.testing.assert_array_equal(corpus.ids, expected.ids)
    assert corpus.length == len(text)
    assert corpus.text == text  # decoded from the ids on demand
    assert isinstance(corpus.ids, numpy.memmap)
    assert corpus.cache_path is not None and corpus.cache_path.startswith(str(cache))


def test_more_than_65536_characters_use_int32(tmp_path, cache):
    points = [c for c in range(0x20, 0x20 + 70_000) if not 0xD800 <= c < 0xE000]
    text = "".join(map(chr, points)) + "\n"
    corpus = load_corpus(write(tmp_path, text), seq_length=10)
    assert corpus.ids.dtype == numpy.int32
    assert corpus.vocab_size == len(set(text))
    numpy.testing.assert_array_equal(corpus.ids, Corpus.from_text(text, "x").ids)


@settings(max_examples=examples(60), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=("Cs",)), min_size=2, max_size=300),
       chunk=st.integers(1, 64))
def test_any_text_at_any_chunk_size_encodes_as_from_text(tmp_path, cache, text, chunk):
    path = tmp_path / f"t{abs(hash((text, chunk)))}.txt"  # a new file per example
    path.write_bytes(text.encode("utf-8"))
    old, data.CHUNK_BYTES = data.CHUNK_BYTES, chunk
    try:
        corpus = load_corpus(str(path), seq_length=1)
    finally:
        data.CHUNK_BYTES = old
    expected = Corpus.from_text(text, "x")
    assert corpus.chars == expected.chars
    numpy.testing.assert_array_equal(corpus.ids, expected.ids)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 22])
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3a", b"\xe6\x97"])
def test_undecodable_byte_is_reported_at_its_file_offset(tmp_path, cache, monkeypatch, chunk, bad):
    raw = "aé日😀\r\n".encode("utf-8") * 9 + bad + b"tail"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        expected = exc.start
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk)
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    with pytest.raises(CharrnnError) as info:
        load_corpus(str(path), seq_length=5)
    message = str(info.value)
    assert f"cannot be decoded as utf-8 (byte {expected})" in message
    assert "--encoding" in message and str(path) in message and "\n" not in message
    assert entries(cache) == []  # nothing cached for a text that cannot be read


# -- the cache -----------------------------------------------------------------------------------

def test_second_load_reuses_the_cache_without_reading_the_text_again(tmp_path, cache, monkeypatch):
    text = "to be, or not to be: that is the question\n" * 50
    path = write(tmp_path, text)
    first = load_corpus(path, seq_length=10)
    assert not first.cache_reused
    assert first.cache_note == f"encoded text cached in {first.cache_path}"
    assert os.path.dirname(first.cache_path) == str(cache)
    assert sorted(os.listdir(tmp_path / "cache")) == entries(cache)
    assert len(entries(cache)) == 2  # the ids and their JSON
    assert sorted(os.listdir(tmp_path)) == ["cache", "text.txt"]  # nothing next to the data
    stamp = os.stat(first.cache_path).st_mtime_ns

    def no_reading(*args, **kwargs):
        raise AssertionError("the text was read again")

    monkeypatch.setattr(data, "iter_chunks", no_reading)
    second = load_corpus(path, seq_length=10)
    assert second.cache_reused and second.cache_path == first.cache_path
    assert second.cache_note == f"reusing encoded text from {first.cache_path}"
    assert os.stat(second.cache_path).st_mtime_ns == stamp
    assert second.chars == first.chars
    numpy.testing.assert_array_equal(second.ids, Corpus.from_text(text, "x").ids)
    meta = json.loads(open(first.cache_path[: -len(".ids")] + ".json", encoding="utf-8").read())
    assert meta["length"] == len(text) and meta["chars"] == sorted(set(text))
    assert meta["key"]["version"] == data.FORMAT_VERSION


@pytest.mark.parametrize("change", ["content", "content-mtime-kept", "encoding"])
def test_the_cache_is_invalidated_when_the_file_changes(tmp_path, cache, change):
    path = write(tmp_path, "abcabcabc" * 20)
    first = load_corpus(path, seq_length=5)
    encoding, text = "utf-8", "abcabcabc" * 20
    if change == "content":  # same size, new content and modification time
        text = "xyzxyzxyz" * 20
        write(tmp_path, text)
        info = os.stat(path)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    elif change == "content-mtime-kept":  # as cp -p, rsync -t and tar leave a file
        info = os.stat(path)
        text = "xyzxyzxyz" * 20
        write(tmp_path, text)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert os.stat(path).st_mtime_ns == info.st_mtime_ns
    else:
        encoding = "latin-1"
    second = load_corpus(path, encoding=encoding, seq_length=5)
    assert not second.cache_reused and second.cache_path != first.cache_path
    assert second.chars == sorted(set(text))
    numpy.testing.assert_array_equal(second.ids, Corpus.from_text(text, "x").ids)
    # the entry of the file's earlier version is removed with it
    assert not os.path.exists(first.cache_path)
    assert len(entries(cache)) == 2


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == str(tmp_path / "explicit")
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    assert data.cache_dir() == str(tmp_path / "xdg" / "charrnn")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == str(tmp_path / "home" / ".cache" / "charrnn")
    # and a load really writes there
    corpus = load_corpus(write(tmp_path, "hello world, hello\n" * 5), seq_length=5)
    assert corpus.cache_path.startswith(str(tmp_path / "home" / ".cache" / "charrnn") + os.sep)


def test_an_unwritable_cache_falls_back_to_memory_and_says_so(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    monkeypatch.setattr(data, "CHUNK_BYTES", 5)
    text = "streamed into memory, chunk by chunk ü\n" * 20
    corpus = load_corpus(write(tmp_path, text), seq_length=10)
    assert corpus.cache_path is None and not corpus.cache_reused
    assert not isinstance(corpus.ids, numpy.memmap)
    assert "cannot cache the encoded text in" in corpus.cache_note
    assert "in memory" in corpus.cache_note and "\n" not in corpus.cache_note
    numpy.testing.assert_array_equal(corpus.ids, Corpus.from_text(text, "x").ids)


def test_an_interrupted_encode_leaves_no_cache_entry(tmp_path, cache, monkeypatch):
    text = "interrupted halfway through\n" * 40
    path = write(tmp_path, text)
    monkeypatch.setattr(data, "CHUNK_BYTES", 64)
    real = data.encode_chunks

    def killed(*args):
        chunks = real(*args)
        yield next(chunks)
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "encode_chunks", killed)
    with pytest.raises(KeyboardInterrupt):
        load_corpus(path, seq_length=10)
    assert [name for name in entries(cache) if not name.startswith(".")] == []
    assert entries(cache) == []  # nor a temporary file
    monkeypatch.setattr(data, "encode_chunks", real)
    corpus = load_corpus(path, seq_length=10)
    assert not corpus.cache_reused
    numpy.testing.assert_array_equal(corpus.ids, Corpus.from_text(text, "x").ids)


def test_a_touched_file_with_the_same_bytes_reuses_the_cache(tmp_path, cache):
    path = write(tmp_path, "abcabcabc" * 20)
    first = load_corpus(path, seq_length=5)
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    again = load_corpus(path, seq_length=5)
    assert again.cache_reused and again.cache_path == first.cache_path


@pytest.mark.parametrize("damage", ["truncated-ids", "broken-json", "no-json", "byte-out-of-range",
                                    "byte-still-an-id"])
def test_a_damaged_cache_entry_is_encoded_again(tmp_path, cache, damage):
    text = "damage control\n" * 30
    path = write(tmp_path, text)
    ids_path = load_corpus(path, seq_length=5).cache_path
    json_path = ids_path[: -len(".ids")] + ".json"
    if damage == "truncated-ids":
        with open(ids_path, "r+b") as fh:
            fh.truncate(10)
    elif damage.startswith("byte"):  # one id changed: past the vocabulary, or another valid id
        with open(ids_path, "r+b") as fh:
            fh.seek(7)
            old = fh.read(1)[0]
            fh.seek(7)
            fh.write(bytes([250 if damage == "byte-out-of-range" else (old + 1) % 5]))
    elif damage == "broken-json":
        with open(json_path, "w") as fh:
            fh.write('{"key": ')
    else:
        os.remove(json_path)
    again = load_corpus(path, seq_length=5)
    assert not again.cache_reused and again.cache_path == ids_path
    numpy.testing.assert_array_equal(again.ids, Corpus.from_text(text, "x").ids)
    assert load_corpus(path, seq_length=5).cache_reused


def test_a_cached_text_too_short_for_a_later_seq_length_is_refused(tmp_path, cache):
    path = write(tmp_path, "abcdefghij")
    assert load_corpus(path, seq_length=5).length == 10
    with pytest.raises(CharrnnError, match="has 10 characters but --seq-length 25 needs at least 26"):
        load_corpus(path, seq_length=25)


# -- refusing what is not a text file ------------------------------------------------------------

def _fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_non_regular_files_are_refused_in_one_line(tmp_path, cache, monkeypatch, kind):
    if kind == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = "/dev/zero"
    else:
        path = _fifo(tmp_path)

    def never(*args):  # opening would block (FIFO) and reading never end (/dev/zero)
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(data, "iter_chunks", never)
    expected = (f"data path {path} is not a regular file (a device or pipe); pass a text file "
                "to --data")
    with pytest.raises(CharrnnError) as info:
        load_corpus(path, seq_length=5)
    assert str(info.value) == expected
    with pytest.raises(CharrnnError, match="--prime-file"):
        read_text(path, option="--prime-file")
    assert entries(cache) == []


def test_unreadable_file_is_a_one_line_error(tmp_path, cache, monkeypatch):
    path = write(tmp_path, "secret text, more than enough of it\n")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        os.chmod(path, 0)
    else:  # root reads files whatever their permissions: the operating system's answer then
        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(data, "open", denied, raising=False)
    try:
        with pytest.raises(CharrnnError) as info:
            load_corpus(path, seq_length=5)
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert str(info.value) == f"cannot read {path}: Permission denied; check its permissions"
    assert entries(cache) == []


# -- a resumed run's vocabulary ------------------------------------------------------------------

def test_a_resumed_vocabulary_renumbers_the_cached_ids(tmp_path, cache):
    text = "abba cab\n" * 10
    path = write(tmp_path, text)
    plain = load_corpus(path, seq_length=5)
    chars = ["\n", " ", "a", "b", "c", "d", "z"]  # a superset, numbered differently
    resumed = load_corpus(path, seq_length=5, chars=chars)
    assert resumed.chars == chars
    assert resumed.cache_reused  # the text was encoded once, then renumbered
    numpy.testing.assert_array_equal(resumed.ids, Corpus.from_text(text, "x", chars=chars).ids)
    assert resumed.decode(resumed.ids) == text
    # the same vocabulary: the cached ids themselves, no copy
    same = load_corpus(path, seq_length=5, chars=list(plain.chars))
    assert isinstance(same.ids, numpy.memmap) and same.ids.filename == plain.ids.filename
    # a character the run never saw
    with pytest.raises(CharrnnError, match=r"has 1 character\(s\) not in the checkpoint's "
                                           r"vocabulary \(first: '\\n'\)"):
        load_corpus(path, seq_length=5, chars=[" ", "a", "b", "c"])


def test_a_wider_resumed_vocabulary_gets_wider_ids(tmp_path, cache):
    text = "plain ascii text\n" * 5
    chars = sorted(set(text) | set(WIDE))
    corpus = load_corpus(write(tmp_path, text), seq_length=5, chars=chars)
    assert corpus.ids.dtype == numpy.uint16
    numpy.testing.assert_array_equal(corpus.ids, Corpus.from_text(text, "x", chars=chars).ids)


# -- streams over a memmap -----------------------------------------------------------------------

def reference_blocks(ids, batch, T, updates):
    """What the stream read before it gathered blocks: slices of a transposed copy."""
    length = len(ids) // batch
    stripes = numpy.ascontiguousarray(ids[: batch * length].reshape(batch, length).T)
    p, out = 0, []
    for _ in range(updates):
        wrapped = p + T + 1 > length
        if wrapped:
            p = 0
        out.append((stripes[p : p + T], stripes[p + 1 : p + T + 1], wrapped))
        p += T
    return out


@pytest.mark.parametrize("batch", [1, 3])
def test_stream_over_a_memmap_reads_what_an_in_memory_copy_gives(tmp_path, batch):
    be = get_registry().get("backend", "numpy")(dtype="float64")
    rng = numpy.random.default_rng(0)
    ids = rng.integers(0, 200, size=301).astype(numpy.uint8)
    file = tmp_path / "ids.bin"
    ids.tofile(file)
    mapped = numpy.memmap(file, dtype=numpy.uint8, mode="r", shape=(301,))
    T = 7
    stream = TextStream(be, mapped, batch, T)
    assert numpy.shares_memory(stream._stripes, mapped)  # the ids are not copied
    expected = reference_blocks(ids, batch, T, updates=3 * (301 // batch) // T)
    assert sum(w for _, _, w in expected) >= 2  # the check crosses epoch wraps
    for x_ref, y_ref, wrapped_ref in expected:
        nxt = stream.next_inputs()
        x, y, wrapped = stream.next()
        assert wrapped == wrapped_ref
        assert x.shape == y.shape == (T, batch) and x.dtype == y.dtype == numpy.uint8
        numpy.testing.assert_array_equal(x, x_ref)
        numpy.testing.assert_array_equal(y, y_ref)
        numpy.testing.assert_array_equal(nxt, x_ref)
    assert stream.epoch >= 2
    # the whole-stripes view for tools and tests
    length = 301 // batch
    numpy.testing.assert_array_equal(stream.data, ids[: batch * length].reshape(batch, length).T)


def test_a_run_trains_from_the_cache_and_reuses_it(tmp_path, cache, run_charrnn):
    text = "".join(chr(97 + (i * 7) % 26) for i in range(3000)) + "\n"
    path = write(tmp_path, text)
    first = run_charrnn("run", "--data", path, "--iterations", "5", "--hidden", "8",
                        "--out", tmp_path / "one", *LEAN)
    assert first.returncode == 0, first.stderr
    made = entries(cache)
    assert len(made) == 2 and any(name.endswith(".ids") for name in made)
    ids_file = cache / next(name for name in made if name.endswith(".ids"))
    stamp = ids_file.stat().st_mtime_ns
    second = run_charrnn("run", "--data", path, "--iterations", "5", "--hidden", "8",
                         "--out", tmp_path / "two", *LEAN)
    assert second.returncode == 0, second.stderr
    assert entries(cache) == made and ids_file.stat().st_mtime_ns == stamp
    numpy.testing.assert_array_equal(numpy.fromfile(ids_file, dtype=numpy.uint8),
                                     Corpus.from_text(text, "x").ids)
