"""Refusing a damaged file in one line that names the file, the field and what to do."""
from __future__ import annotations

import json
from typing import Any


from ..errors import CharrnnError
from .format import ADVICE


def shown_path(path: str) -> str:
    return path if path.isprintable() else ascii(path)


def show(value: Any) -> str:
    """A short, one-line, ASCII rendering of a header value for a message."""
    if isinstance(value, dict):
        return f"an object of {len(value)} keys" if len(value) > 4 else dumps_one_line(value)
    if isinstance(value, list):
        return f"a list of {len(value)} items" if len(value) > 8 else dumps_one_line(value)
    return dumps_one_line(value)


def dumps_one_line(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except Exception:  # an integer too long to print, say
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def brief(text: str) -> str:
    """``text`` on one line, in ASCII, at most 80 characters."""
    text = ascii(text)[1:-1]
    return text if len(text) <= 80 else text[:77] + "..."


class Refusal:
    """Builds the one-line errors for one file."""

    def __init__(self, path: str) -> None:
        self.where = shown_path(path)

    def unreadable(self) -> CharrnnError:
        return CharrnnError(f"{self.where} is not a readable charrnn checkpoint (truncated, "
                            "corrupted or another program's file); pass a latest.npz or best.npz "
                            "written by charrnn run")

    def field(self, name: str, value: Any, expected: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: header field {name!r} is {show(value)}, not "
                            f"{expected}; {ADVICE}")

    def header(self, problem: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: {problem}; {ADVICE}")

    def array(self, name: str, problem: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: array {name!r} {problem}; {ADVICE}")
