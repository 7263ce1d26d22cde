"""Reading a corpus into a vocabulary and a compact array of character ids."""
from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy

from .errors import CharrnnError

DEFAULT_SOURCE = "pydoc_data.topics (the Python language reference shipped with CPython)"


@dataclass
class Corpus:
    """A text, its sorted vocabulary and the text as ids into that vocabulary."""

    text: str
    chars: List[str]
    ids: numpy.ndarray
    source: str

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
        lookup = {c: i for i, c in enumerate(vocab)}
        dtype = numpy.uint8 if len(vocab) <= 256 else numpy.uint16 if len(vocab) <= 65536 else numpy.int32
        if chars is not None:
            missing = sorted(set(text) - set(lookup))
            if missing:
                raise CharrnnError(
                    f"{source} has {len(missing)} character(s) not in the checkpoint's vocabulary "
                    f"(first: {missing[0]!r}); resume with the text the run was trained on"
                )
        # Encoding through a code-point lookup table keeps this vectorised for large texts.
        codes = numpy.frombuffer(text.encode("utf-32-le"), dtype=numpy.uint32)
        table = numpy.zeros(max(map(ord, vocab)) + 1 if vocab else 1, dtype=dtype)
        for c, i in lookup.items():
            table[ord(c)] = i
        return cls(text=text, chars=vocab, ids=table[codes], source=source)


def default_text() -> str:
    """CPython's own language reference: offline, on every Python, nothing to download."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def read_text(path: str, encoding: str = "utf-8", option: str = "--data") -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}; pass a Python codec name such as "
                           "utf-8 or latin-1") from None
    if not os.path.exists(path):
        raise CharrnnError(f"data file {path} does not exist; pass an existing text file to {option}")
    if os.path.isdir(path):
        raise CharrnnError(f"data path {path} is a directory; pass a text file to {option}")
    try:
        with open(path, encoding=encoding, newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise CharrnnError(
            f"{path} cannot be decoded as {encoding} (byte {exc.start}); "
            "pass its encoding with --encoding, e.g. --encoding latin-1"
        ) from None
    except OSError as exc:
        raise CharrnnError(f"cannot read {path}: {exc.strerror}; check its permissions") from None


def load_corpus(path: Optional[str], encoding: str = "utf-8", seq_length: int = 25,
                chars: Optional[List[str]] = None) -> Corpus:
    """The corpus from ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        text, source = default_text(), DEFAULT_SOURCE
    else:
        text, source = read_text(path, encoding), str(path)
    if not text:
        raise CharrnnError(f"{source} is empty; pass a file with some text in it")
    if len(text) < seq_length + 1:
        raise CharrnnError(
            f"{source} has {len(text)} characters but --seq-length {seq_length} needs at least "
            f"{seq_length + 1}; use a longer text or a shorter --seq-length"
        )
    return Corpus.from_text(text, source, chars)
