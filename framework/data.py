"""Reading a corpus into a vocabulary and a compact array of character ids.

A ``--data`` file is never held as one Python string. It is decoded in chunks of
:data:`CHUNK_BYTES` bytes, twice: the first pass collects the vocabulary (the sorted set of
distinct characters, as ``sorted(set(text))`` gives it), the second writes every character's id
through a code-point lookup table into a compact id file (``uint8`` for at most 256 distinct
characters, ``uint16`` for at most 65536, else ``int32``), which training reads as a
``numpy.memmap``, as nanoGPT reads its ``train.bin``. The ids are those
:meth:`Corpus.from_text` gives the whole text, so runs and checkpoints do not depend on the path
the text took.

The id file and a small JSON (vocabulary, length, the id file's SHA-256) are kept in a cache, so
a second run on the same unchanged file starts at once: ``$CHARRNN_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/charrnn``, else ``~/.cache/charrnn``, never next to the user's data. An entry
is keyed on the file's real path, size, the SHA-256 of its bytes, encoding and
:data:`FORMAT_VERSION` (a file rewritten with its size and modification time kept is not
mistaken for the old one), its id file is checked against its recorded SHA-256 before it is used
(a damaged entry is encoded again), and both its files are written atomically, so an
interrupted encode never leaves a bad entry. When the cache cannot be written the ids are encoded into memory instead
(still chunk by chunk) and :attr:`Corpus.cache_note` says so.
"""
from __future__ import annotations

import codecs
import glob
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import numpy

from .errors import CharrnnError
from .files import atomic_write, atomic_write_text

DEFAULT_SOURCE = "pydoc_data.topics (the Python language reference shipped with CPython)"

#: Bytes of the file decoded at a time (up to a million characters). Each chunk briefly costs
#: about 9 times its size (its text, code points and ids); 4 MiB chunks were no faster.
#: Tests make it small.
CHUNK_BYTES = 1 << 20
#: Part of every cache key: raise it when the id file or its JSON change meaning.
FORMAT_VERSION = 1
#: One past the largest code point.
_CODE_POINTS = 0x110000


def ids_dtype(vocab_size: int) -> numpy.dtype:
    """The smallest id type for a vocabulary of ``vocab_size`` characters."""
    return numpy.dtype(numpy.uint8 if vocab_size <= 256 else
                       numpy.uint16 if vocab_size <= 65536 else numpy.int32)


def _code_points(text: str) -> numpy.ndarray:
    # surrogatepass: a lone surrogate (some codecs decode to one) is its own code point.
    return numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=numpy.uint32)


def _lookup_table(vocab: List[str], dtype) -> numpy.ndarray:
    """Code point -> id, for the code points of ``vocab`` (others read as 0)."""
    points = numpy.array([ord(c) for c in vocab], dtype=numpy.int64)
    table = numpy.zeros(int(points.max()) + 1 if len(vocab) else 1, dtype=dtype)
    table[points] = numpy.arange(len(vocab), dtype=dtype)
    return table


@dataclass
class Corpus:
    """A text's sorted vocabulary and the text as ids into that vocabulary.

    ``ids`` is an in-memory array for :meth:`from_text`, and for a ``--data`` file a read-only
    ``numpy.memmap`` of the cached id file (an in-memory array when the cache could not be
    written, or when a resumed run's vocabulary numbers the characters differently).
    """

    chars: List[str]
    ids: numpy.ndarray
    source: str
    #: The cached id file the ids are read from; None for an in-memory corpus.
    cache_path: Optional[str] = None
    #: Whether ``cache_path`` was written by an earlier run (this one did not encode the text).
    cache_reused: bool = False
    #: One line for the launcher to print about the cache (None: nothing to say).
    cache_note: Optional[str] = None
    _text: Optional[str] = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The text: as given to :meth:`from_text`, else decoded from ``ids`` on each access
        (as large as the text: training never needs it)."""
        if self._text is not None:
            return self._text
        points = numpy.array([ord(c) for c in self.chars], dtype=numpy.uint32)
        return points[numpy.asarray(self.ids)].tobytes().decode("utf-32-le", "surrogatepass")

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def length(self) -> int:
        """Characters in the text (what ``ids`` holds)."""
        return int(self.ids.shape[0])

    @property
    def char_to_id(self) -> Dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @classmethod
    def from_text(cls, text: str, source: str, chars: Optional[List[str]] = None) -> "Corpus":
        """Encode ``text``. With ``chars`` given (a resumed run's vocabulary), every character
        of the text must be in it."""
        vocab = sorted(set(text)) if chars is None else list(chars)
        if chars is not None:
            _check_covered(set(text), vocab, source)
        # Encoding through a code-point lookup table keeps this vectorised for large texts.
        table = _lookup_table(vocab, ids_dtype(len(vocab)))
        return cls(chars=vocab, ids=table[_code_points(text)], source=source, _text=text)


def _check_covered(present, vocab: List[str], source: str) -> None:
    missing = sorted(set(present) - set(vocab))
    if missing:
        raise CharrnnError(
            f"{source} has {len(missing)} character(s) not in the checkpoint's vocabulary "
            f"(first: {missing[0]!r}); resume with the text the run was trained on"
        )


def default_text() -> str:
    """CPython's own language reference: offline, on every Python, nothing to download."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


# -- reading a file ------------------------------------------------------------------------------

def check_data_path(path: str, encoding: str = "utf-8", option: str = "--data") -> os.stat_result:
    """The file's status, once ``encoding`` is known and ``path`` is a regular file; else a
    one-line :class:`CharrnnError` that says what to pass to ``option``."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}; pass a Python codec name such as "
                           "utf-8 or latin-1") from None
    if not getattr(codec, "_is_text_encoding", True):  # rot13, base64, zlib, hex, ...
        raise CharrnnError(f"--encoding {encoding} is not a text encoding (it turns text into "
                           "text or bytes into bytes); pass the encoding the file was written "
                           "in, such as utf-8 or latin-1")
    what = "data " if option == "--data" else ""
    if not os.path.exists(path):
        raise CharrnnError(f"{what}file {path} does not exist; pass an existing text file to "
                           f"{option}")
    if os.path.isdir(path):
        raise CharrnnError(f"{what}path {path} is a directory; pass a text file to {option}")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CharrnnError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        raise CharrnnError(f"{what}path {path} is not a regular file (a device or pipe); pass a "
                           f"text file to {option}")
    return info


_SURROGATE = re.compile("[\ud800-\udfff]")


def _undecodable(path: str, encoding: str, offset: int) -> CharrnnError:
    return CharrnnError(f"{path} cannot be decoded as {encoding} (byte {offset}); "
                        "pass its encoding with --encoding, e.g. --encoding latin-1")


def _cannot_read(path: str, exc: OSError) -> CharrnnError:
    return CharrnnError(f"cannot read {path}: {exc.strerror}; check its permissions")


def read_text(path: str, encoding: str = "utf-8", option: str = "--data") -> str:
    """The whole file as one string (for short texts such as ``--prime-file``)."""
    check_data_path(path, encoding, option)
    return "".join(iter_chunks(path, encoding))


def iter_chunks(path: str, encoding: str) -> Iterator[str]:
    """The file's text, decoded ``CHUNK_BYTES`` bytes at a time, newlines as they are (as
    ``open(path, encoding=encoding, newline="")`` reads it). Undecodable bytes raise a one-line
    error with the file offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    fed = 0  # bytes handed to the decoder so far
    try:
        with open(path, "rb") as fh:
            while True:
                raw = fh.read(CHUNK_BYTES)
                final = not raw
                pending = decoder.getstate()[0]
                held = len(pending) if isinstance(pending, bytes) else 0
                try:
                    chunk = decoder.decode(raw, final=final)
                except UnicodeDecodeError as exc:
                    raise _undecodable(path, encoding, fed - held + exc.start) from None
                except UnicodeError as exc:  # a codec's own complaint (UTF-16 without a BOM)
                    raise CharrnnError(f"{path} cannot be decoded as {encoding} ({exc}); pass "
                                       "the encoding it was written in with --encoding") from None
                fed += len(raw)
                lone = _SURROGATE.search(chunk)
                if lone:  # only codecs such as unicode_escape make them; no file can hold them
                    raise CharrnnError(
                        f"{path} decodes with --encoding {encoding} to an unpaired surrogate "
                        f"(U+{ord(lone.group()):04X}), which is not a character; pass the "
                        "encoding the file was written in, e.g. --encoding utf-8")
                if chunk:
                    yield chunk
                if final:
                    return
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def _check_length(n: int, source: str, seq_length: int) -> None:
    if n == 0:
        raise CharrnnError(f"{source} is empty; pass a file with some text in it")
    if n < seq_length + 1:
        raise CharrnnError(
            f"{source} has {n} characters but --seq-length {seq_length} needs at least "
            f"{seq_length + 1}; use a longer text or a shorter --seq-length"
        )


def scan_vocabulary(path: str, encoding: str) -> Tuple[List[str], int]:
    """Pass 1: the sorted distinct characters of the file and its length in characters."""
    seen = numpy.zeros(_CODE_POINTS, dtype=bool)
    n = 0
    for chunk in iter_chunks(path, encoding):
        seen[_code_points(chunk)] = True  # no temporary the size of the chunk, unlike bincount
        n += len(chunk)
    return [chr(int(c)) for c in numpy.flatnonzero(seen)], n


def encode_chunks(path: str, encoding: str, vocab: List[str]) -> Iterator[numpy.ndarray]:
    """Pass 2: the file's ids in ``vocab``'s numbering, chunk by chunk."""
    table = _lookup_table(vocab, ids_dtype(len(vocab)))
    for chunk in iter_chunks(path, encoding):
        codes = _code_points(chunk)
        if codes.max() >= table.shape[0]:
            raise CharrnnError(f"{path} changed while it was being read; run again")
        yield table[codes]


# -- the cache -----------------------------------------------------------------------------------

def cache_dir() -> str:
    """Where encoded texts are cached: ``$CHARRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/charrnn``,
    else ``~/.cache/charrnn``."""
    explicit = os.environ.get("CHARRNN_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "charrnn")
    return os.path.join(os.path.expanduser("~"), ".cache", "charrnn")


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, read a chunk at a time: one pass over the file, several times
    faster than the two decoding passes a cache hit saves."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(path: str, info: os.stat_result, encoding: str,
              content: Optional[str] = None) -> Dict[str, object]:
    """What a cache entry is valid for: the file (real path, size and the SHA-256 of its bytes;
    a file rewritten with its size and modification time kept is another file), the codec (its
    canonical name) and the format."""
    return {"path": os.path.realpath(path), "size": int(info.st_size),
            "sha256": content if content is not None else file_digest(path),
            "encoding": codecs.lookup(encoding).name, "version": FORMAT_VERSION}


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def cache_entry(key: Dict[str, object]) -> str:
    """The entry's path without its suffix (``.ids``, ``.json``): a hash of the file's path, then
    of the whole key, so entries of earlier versions of the same file can be found and removed."""
    return os.path.join(cache_dir(), f"{_digest(key['path'])[:12]}-{_digest(key)}")


def _open_cached(entry: str, key: Dict[str, object]) -> Optional[Tuple[List[str], numpy.ndarray]]:
    """The vocabulary and memmapped ids of a complete entry for ``key``, else None."""
    try:
        with open(entry + ".json", encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("key") != key:
            return None
        chars, n, dtype = list(meta["chars"]), int(meta["length"]), numpy.dtype(meta["dtype"])
        if n < 1 or dtype != ids_dtype(len(chars)) or \
                os.path.getsize(entry + ".ids") != n * dtype.itemsize:
            return None
        # Every byte of the id file is checked: a damaged one is encoded again, never trained on.
        if meta.get("ids_sha256") != file_digest(entry + ".ids"):
            return None
        return chars, numpy.memmap(entry + ".ids", dtype=dtype, mode="r", shape=(n,))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_entry(entry: str, key: Dict[str, object], path: str, encoding: str,
                 vocab: List[str], n: int) -> None:
    """Pass 2 into ``entry``: the ids first, then the JSON that makes the entry valid, each
    written to a temporary file and renamed."""
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    written = 0

    digest = hashlib.sha256()

    def write_ids(fh) -> None:
        nonlocal written
        for block in encode_chunks(path, encoding, vocab):
            data = block.tobytes()
            fh.write(data)
            digest.update(data)
            written += int(block.shape[0])

    atomic_write(entry + ".ids", write_ids)
    if written != n:
        os.remove(entry + ".ids")
        raise CharrnnError(f"{path} changed while it was being read; run again")
    meta = {"key": key, "length": n, "dtype": ids_dtype(len(vocab)).name, "chars": vocab,
            "ids_sha256": digest.hexdigest()}
    atomic_write_text(entry + ".json", json.dumps(meta, ensure_ascii=True))
    # Entries of earlier versions of this file are of no further use.
    prefix = os.path.basename(entry).split("-")[0]
    for stale in glob.glob(os.path.join(os.path.dirname(entry), prefix + "-*")):
        if not os.path.basename(stale).startswith(os.path.basename(entry) + "."):
            try:
                os.remove(stale)
            except OSError:
                pass


def _encode_in_memory(path: str, encoding: str, vocab: List[str], n: int) -> numpy.ndarray:
    ids = numpy.empty(n, dtype=ids_dtype(len(vocab)))
    at = 0
    for block in encode_chunks(path, encoding, vocab):
        if at + block.shape[0] > n:
            raise CharrnnError(f"{path} changed while it was being read; run again")
        ids[at : at + block.shape[0]] = block
        at += int(block.shape[0])
    if at != n:
        raise CharrnnError(f"{path} changed while it was being read; run again")
    return ids


def encode_file(path: str, encoding: str = "utf-8",
                seq_length: int = 0) -> Tuple[List[str], numpy.ndarray, Optional[str], bool, str]:
    """The file's vocabulary and ids (memmapped from the cache, encoded there first unless an
    earlier run did), the cached id file (None when the cache could not be written), whether it
    was reused, and a line that says which happened."""
    info = check_data_path(path, encoding)
    try:
        content = file_digest(path)
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    key = cache_key(path, info, encoding, content)
    entry = cache_entry(key)
    cached = _open_cached(entry, key)
    if cached is not None:
        return cached[0], cached[1], entry + ".ids", True, \
            f"reusing encoded text from {entry}.ids"
    vocab, n = scan_vocabulary(path, encoding)
    _check_length(n, str(path), seq_length)
    try:
        _write_entry(entry, key, path, encoding, vocab, n)
        ids = numpy.memmap(entry + ".ids", dtype=ids_dtype(len(vocab)), mode="r", shape=(n,))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return vocab, _encode_in_memory(path, encoding, vocab, n), None, False, \
            f"cannot cache the encoded text in {os.path.dirname(entry)} ({reason}); " \
            "encoded it in memory"
    if os.stat(path).st_mtime_ns != info.st_mtime_ns:
        raise CharrnnError(f"{path} changed while it was being read; run again")
    return vocab, ids, entry + ".ids", False, f"encoded text cached in {entry}.ids"


def load_corpus(path: Optional[str], encoding: str = "utf-8", seq_length: int = 25,
                chars: Optional[List[str]] = None) -> Corpus:
    """The corpus from ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        text = default_text()
        _check_length(len(text), DEFAULT_SOURCE, seq_length)
        return Corpus.from_text(text, DEFAULT_SOURCE, chars)
    source = str(path)
    vocab, ids, cache_path, reused, note = encode_file(source, encoding, seq_length)
    _check_length(int(ids.shape[0]), source, seq_length)
    if chars is not None and list(chars) != vocab:
        # A resumed run's vocabulary: renumber through a small id -> id table.
        chars = list(chars)
        _check_covered(vocab, chars, source)
        position = {c: i for i, c in enumerate(chars)}
        dtype = ids_dtype(len(chars))
        remap = numpy.array([position[c] for c in vocab], dtype=dtype)
        ids, vocab = remap[ids], chars
    return Corpus(chars=vocab, ids=ids, source=source, cache_path=cache_path,
                  cache_reused=reused, cache_note=note)
