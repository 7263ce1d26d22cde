"""MkDocs hook: show the code's Sphinx cross-reference roles as code in the API reference.

The docstrings are written for reading in the source and in ``help()``, with Sphinx roles
(``:class:`Backend```, ``:meth:`~charrnn.backend.Backend.segment_sum```) and ``::`` before a
literal block. The reference's renderer leaves both as they are; this turns a role into the
code name it points at (the last part only, after ``~``, as Sphinx shows it) and a closing
``::`` into ``:``.
"""
from __future__ import annotations

import re

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj|const):<code>(~?)([^<]+)</code>")
_LITERAL = re.compile(r"::</p>")


def _name(match: re.Match) -> str:
    target = match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if match.group(1) else target}</code>"


def on_page_content(html: str, **_kwargs) -> str:
    return _LITERAL.sub(":</p>", _ROLE.sub(_name, html))
