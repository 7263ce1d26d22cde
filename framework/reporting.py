"""The run report's parts: sections that plugins contribute (the ``report_sections`` hook), and
the Markdown helpers they share, so that no plugin needs another plugin's code to write one."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence, Tuple


@dataclass(frozen=True)
class ReportSection:
    """One ``## title`` section of report.md. ``order`` places it among the others (lower
    first); the report's own configuration comes before every section, its passage and its
    table of options after."""

    title: str
    body: str
    order: int = 50


#: Where the built-in plugins' sections sit; a plugin picks any number.
GRADIENT_CHECK_SECTION = 10
LOSS_SECTION = 20
SAMPLES_SECTION = 30


def fenced(text: str) -> str:
    """``text`` in a Markdown code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def cell(value: Any) -> str:
    """A value made safe for one Markdown table cell."""
    text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table(rows: Sequence[Tuple[Any, Any]], head: Tuple[str, str] = ("", "")) -> str:
    """A two-column Markdown table."""
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {cell(k)} | {cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def round_step(count: int, most: int) -> int:
    """The first of 1, 2, 5, 10, 20, 50, ... that has at most ``most`` multiples up to
    ``count``: marks (or samples) at round intervals, few enough to read, for any length."""
    scale = 1
    while True:
        for m in (1, 2, 5):
            if int(count) // (m * scale) <= most:
                return m * scale
        scale *= 10
