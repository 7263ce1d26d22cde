"""Property tests on arbitrary Unicode text: the corpus round-trips, a file reads as the string
does, and ``charrnn run`` then ``charrnn sample`` work end to end on any such text.

The texts mix every Unicode category but the surrogates (a lone surrogate cannot be written as
UTF-8): combining marks, emoji and their ZWJ sequences, astral-plane characters, control
characters (NUL, ESC, the C1 controls), every kind of line break (CRLF, a lone CR, U+2028), and
a single character repeated. Hypothesis runs derandomized, so a failure reproduces exactly.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import charrnn.data
import numpy
import pytest
from charrnn.checkpoint import load_checkpoint, resolve_checkpoint_path
from charrnn.data import Corpus, load_corpus
from charrnn.errors import CharrnnError
from helpers import call_in_process, examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# -- strategies -----------------------------------------------------------------------------------

#: Any code point UTF-8 can encode: every category but Cs (surrogates).
ANY_CHAR = st.characters(exclude_categories=("Cs",))
COMBINING = st.characters(categories=("Mn", "Mc", "Me"))
ASTRAL = st.characters(min_codepoint=0x10000, exclude_categories=("Cs",))
EMOJI = st.sampled_from([
    "\U0001F600", "\U0001F44D\U0001F3FD",                      # a face; a thumb with a skin tone
    "\U0001F468\u200D\U0001F469\u200D\U0001F467",              # a ZWJ family
    "\U0001F1EB\U0001F1F7", "\u2764\uFE0F",                     # a flag; a variation selector
    "#\uFE0F\u20E3",                                            # a keycap
])
BREAKS = st.sampled_from(["\r\n", "\r", "\n", "\r\r\n", "\u2028", "\u2029", "\x85", "\x0b",
                          "\x0c", "\x1c", "\x00", "\x1b[1m", "\ufeff"])
PIECE = st.one_of(
    st.text(ANY_CHAR, max_size=8),
    st.tuples(st.sampled_from("ae\u0131"), st.lists(COMBINING, min_size=1, max_size=3))
    .map(lambda t: t[0] + "".join(t[1])),                        # a base and its marks
    EMOJI, ASTRAL, BREAKS,
)
MIXED = st.lists(PIECE, max_size=12).map("".join)
REPEATED = st.builds(lambda c, n: c * n, ANY_CHAR, st.integers(min_value=1, max_value=40))
#: Any text, the empty one included.
TEXTS = st.one_of(MIXED, st.text(ANY_CHAR, max_size=50), REPEATED)

SETTINGS = dict(deadline=None, derandomize=True)


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """``load_corpus`` may cache what it reads: keep that cache in a directory of this module's
    own instead of the user's."""
    root = tmp_path_factory.mktemp("charrnn-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHARRNN_CACHE_DIR", str(root))
        yield root


def assert_ids_fit(corpus) -> None:
    ids = numpy.asarray(corpus.ids)
    assert ids.ndim == 1
    assert numpy.issubdtype(ids.dtype, numpy.integer)
    if corpus.vocab_size:
        assert numpy.iinfo(ids.dtype).max >= corpus.vocab_size - 1, (ids.dtype, corpus.vocab_size)
    if ids.size:
        assert int(ids.min()) >= 0 and int(ids.max()) < corpus.vocab_size


def write(path: Path, text: str) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return path


# -- the corpus -----------------------------------------------------------------------------------


@settings(max_examples=examples(300), **SETTINGS)
@given(text=TEXTS)
@example(text="")
@example(text="a\r\nb\rc\n")
@example(text="\U0001F600" * 7)
@example(text="e\u0301\u0327")
def test_from_text_round_trips(text):
    corpus = Corpus.from_text(text, "hypothesis")
    assert corpus.decode(corpus.ids) == text
    assert corpus.length == len(text)
    assert corpus.chars == sorted(set(corpus.chars)), "the vocabulary is sorted and distinct"
    assert set(corpus.chars) == set(text)
    assert corpus.vocab_size == len(set(text))
    assert_ids_fit(corpus)


@pytest.mark.parametrize("distinct, dtype", [(256, numpy.uint8), (257, numpy.uint16),
                                             (65536, numpy.uint16), (65537, numpy.int32)])
def test_ids_dtype_holds_large_vocabularies(distinct, dtype):
    """The id type widens at 256 and 65,536 distinct characters (astral ones here, so that the
    code points are above every id)."""
    chars = [chr(0x10000 + i) for i in range(distinct)]
    text = "".join(chars) + chars[-1] + chars[0]
    corpus = Corpus.from_text(text, "wide")
    assert corpus.ids.dtype == dtype
    assert corpus.vocab_size == distinct
    assert_ids_fit(corpus)
    assert int(corpus.ids[-2]) == distinct - 1 and int(corpus.ids[-1]) == 0
    assert corpus.decode(corpus.ids) == text


@contextlib.contextmanager
def chunk_bytes(size: int):
    """``charrnn.data`` decodes a file ``CHUNK_BYTES`` bytes at a time; a small size makes short
    texts cross chunk boundaries inside a CRLF or a multi-byte character."""
    if not hasattr(charrnn.data, "CHUNK_BYTES"):
        yield
        return
    saved = charrnn.data.CHUNK_BYTES
    charrnn.data.CHUNK_BYTES = size
    try:
        yield
    finally:
        charrnn.data.CHUNK_BYTES = saved


@settings(max_examples=examples(150), **SETTINGS)
@given(text=TEXTS, seq_length=st.integers(min_value=1, max_value=6),
       chunk=st.sampled_from([1, 2, 3, 5, 4096]))
@example(text="ab\r\ncd\r\n", seq_length=4, chunk=3)
@example(text="\ufeffbom first", seq_length=2, chunk=1)
@example(text="x\U0001F600\u20ac\r\n", seq_length=2, chunk=2)
def test_file_reads_as_the_string_does(text, seq_length, chunk):
    """A file written as UTF-8 with ``newline=""`` (line ends kept as they are) loads into the
    same ids and vocabulary as the string, whatever the size of the chunks it is decoded in, and
    again from the cache; a text too short for ``seq_length`` is one clean error."""
    with tempfile.TemporaryDirectory() as tmp, chunk_bytes(chunk):
        path = write(Path(tmp) / "text.txt", text)
        for _ in range(2):
            if len(text) < seq_length + 1:
                with pytest.raises(CharrnnError) as info:
                    load_corpus(str(path), "utf-8", seq_length)
                message = str(info.value)
                assert message and "\n" not in message
                assert str(path) in message
                continue
            corpus = load_corpus(str(path), "utf-8", seq_length)
            expected = Corpus.from_text(text, str(path))
            assert list(corpus.chars) == expected.chars
            assert numpy.array_equal(numpy.asarray(corpus.ids), expected.ids)
            assert corpus.length == len(text)
            assert corpus.decode(corpus.ids) == text
            assert_ids_fit(corpus)


@pytest.mark.parametrize("unit, prefix", [("\r\n", "x"), ("\u20ac", ""), ("\U0001F600", "x"),
                                          ("e\u0301", "")],
                         ids=["crlf", "3-byte", "4-byte", "combining"])
def test_large_file_across_read_boundaries(tmp_path, unit, prefix):
    """A text over 4 MiB whose power-of-two offsets (in bytes and in characters) fall inside a
    CRLF or a multi-byte character, so that reading it in chunks of any such size splits one."""
    count = (4 * 2**20) // len(unit.encode("utf-8")) + 1000
    text = prefix + unit * count + "!"
    path = write(tmp_path / "big.txt", text)
    corpus = load_corpus(str(path), "utf-8", 25)
    expected = Corpus.from_text(text, str(path))
    assert list(corpus.chars) == expected.chars
    ids = numpy.asarray(corpus.ids)
    assert ids.shape == expected.ids.shape
    assert numpy.array_equal(ids, expected.ids)


# -- charrnn run, then charrnn sample, in this process -----------------------------------------




def assert_one_clean_line(code, out, err, *parts):
    assert code != 0, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]


SEQ = 4
#: A tiny run that still takes every part of a real one but the plot: the gradient check, a sample
#: and a checkpoint at every update, the report.
RUN = ("--iterations", 3, "--hidden", 8, "--seq-length", SEQ, "--quiet", "--no-plot",
       "--checkpoint-every", 1, "--sample-every", 1, "--sample-length", 5,
       "--report-passage-length", 5)
LENGTH = 20

#: Texts long enough to train on.
TRAINABLE = st.one_of(MIXED, st.text(ANY_CHAR, max_size=40), REPEATED).filter(
    lambda t: len(t) >= SEQ + 1)


def foreign_chars(vocab):
    return ANY_CHAR.filter(lambda c: c not in vocab)


@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow], **SETTINGS)
@given(text=TRAINABLE, data=st.data())
@example(text="aaaaaaaa", data=None)
@example(text="a\r\nb\r\n\U0001F600e\u0301\x00", data=None)
def test_run_then_sample_on_any_text(capsys, text, data):
    vocab = sorted(set(text))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "text.txt", text)
        run_dir = Path(tmp) / "run"
        code, out, err = call_in_process(capsys, "run", "--data", path, "--out", run_dir, *RUN)
        assert code == 0 and err == "", (code, err)
        assert f"{len(text):,} characters, {len(vocab)} distinct" in out
        ckpt = load_checkpoint(resolve_checkpoint_path(str(run_dir)))
        assert ckpt.vocab == vocab

        # Primes from the text: stdout is the prime, LENGTH characters of the vocabulary, "\n".
        if data is not None:
            primes = [text[:SEQ], data.draw(st.text(st.sampled_from(vocab), min_size=1,
                                                    max_size=6), label="prime")]
        else:
            primes = [text[:SEQ], text[-1]]
        for prime in primes:
            code, out, err = call_in_process(capsys, "sample", "--checkpoint", run_dir,
                                             "--prime", prime, "--length", LENGTH, "--seed", 3)
            assert code == 0 and err == "", (prime, code, err)
            assert out.endswith("\n"), repr(out)
            printed = out[:-1]
            assert printed.startswith(prime), (prime, printed)
            generated = printed[len(prime):]
            assert len(generated) == LENGTH, (prime, printed)
            assert set(generated) <= set(vocab), (prime, printed)

        # A prime with a character the vocabulary lacks: one line on stderr, nothing on stdout.
        if data is not None:
            foreign = data.draw(foreign_chars(vocab), label="foreign character")
            known = data.draw(st.text(st.sampled_from(vocab), max_size=4), label="known part")
            at = data.draw(st.integers(min_value=0, max_value=len(known)), label="position")
        else:
            foreign, known, at = ("Z" if "Z" not in vocab else "\u2603"), text[:2], 1
        bad = known[:at] + foreign + known[at:]
        code, out, err = call_in_process(capsys, "sample", "--checkpoint", run_dir,
                                         "--prime", bad, "--length", LENGTH)
        assert_one_clean_line(code, out, err, "prime character", f"U+{ord(foreign):04X}")
        assert out == ""


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture],
          **SETTINGS)
@given(text=st.one_of(MIXED, st.text(ANY_CHAR, max_size=SEQ), REPEATED)
       .filter(lambda t: len(t) < SEQ + 1))
@example(text="")
@example(text="\r\n\r\n")
@example(text="\U0001F468\u200D\U0001F469")  # 3 code points, though one glyph
def test_run_on_a_text_too_short_is_one_clean_line(capsys, text):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "text.txt", text)
        code, out, err = call_in_process(capsys, "run", "--data", path,
                                         "--out", Path(tmp) / "run", *RUN)
        assert_one_clean_line(code, out, err, str(path))
        assert not (Path(tmp) / "run" / "latest.npz").exists()


# -- known problems -----------------------------------------------------------------------------


def test_sample_prints_escape_sequences_verbatim(capsys, tmp_path):
    """Found by test_run_then_sample_on_any_text on text='00@\\x1b[', prime '\\x1b[@'."""
    text = "plain \x1b[1mbold\x1b[0m plain \x1b[31mred\x1b[0m\n" * 3
    path = write(tmp_path / "ansi.txt", text)
    code, out, err = call_in_process(capsys, "run", "--data", path, "--out", tmp_path / "run",
                                     *RUN)
    assert code == 0, err
    prime = "\x1b[1mbold"
    code, out, err = call_in_process(capsys, "sample", "--checkpoint", tmp_path / "run",
                                     "--prime", prime, "--length", LENGTH)
    assert code == 0 and err == ""
    assert out.startswith(prime), repr(out)
    assert len(out) == len(prime) + LENGTH + 1, repr(out)
