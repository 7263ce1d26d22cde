"""``docs/troubleshooting.md`` tells the truth: each documented ``Error:`` line is what is printed.

The table of error messages is parsed from the page: for each row the command is run as the page
shows it, in this process through the launcher's ``main``, in a folder set up as the page
describes (a ``book.txt``, runs trained in ``runs/``). The one line on stderr must be the
documented one in full, ``…`` standing for the parts that depend on the machine, and the exit
status must be 2, as the page says. The table of disk errors is checked against the function the
launcher formats operating-system errors with.
"""
from __future__ import annotations

import errno
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import struct
import zipfile
from pathlib import Path
from typing import List, Tuple

import numpy
import pytest
from charrnn.dirlock import DirectoryLock
from helpers import TEXT, launch

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "troubleshooting.md"
LEAN = ("--no-gradcheck", "--no-plot", "--no-report", "--quiet")


def section(text: str, heading: str) -> str:
    """The body under ``heading`` up to the next heading of any level."""
    lines = text.splitlines()
    body = []
    for line in lines[lines.index(heading) + 1:]:
        if re.match(r"#+ ", line):
            break
        body.append(line)
    return "\n".join(body)


def table(body: str) -> List[List[str]]:
    """The data rows of the first Markdown table in ``body``."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in body.splitlines() if line.startswith("|")]
    return [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]


def code(cell: str) -> str:
    (inner,) = re.findall(r"`([^`]+)`", cell)
    return inner


def line_pattern(message: str) -> "re.Pattern[str]":
    """The documented line as a pattern: ``Error: `` then the message, ``…`` for any text."""
    return re.compile("Error: " + ".+?".join(re.escape(p) for p in message.split("…")))


TEXT_OF_PAGE = DOC.read_text(encoding="utf-8")
ROWS: List[Tuple[str, str, str]] = [(r[0], code(r[1]), code(r[2]))
                                    for r in table(section(TEXT_OF_PAGE, "## Error messages"))]
DISK_ROWS = [(code(r[0]), code(r[1]))
             for r in table(section(TEXT_OF_PAGE, "### Disk and permission errors"))]


def rezip(source: Path, target: Path, edit) -> None:
    """``source`` copied member by member to ``target``, ``edit(name, bytes)`` applied."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info)))


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """The folder the page's commands run in: the texts and the runs they name."""
    root = tmp_path_factory.mktemp("troubleshooting")
    here = os.getcwd()
    os.chdir(root)
    try:
        Path("book.txt").write_text(TEXT * 4, encoding="utf-8")  # lower case only: no 'T'
        Path("notes.txt").write_bytes("caf\xe9 au lait, d\xe9j\xe0 vu\n".encode("latin-1") * 20)
        Path("empty.txt").write_bytes(b"")
        Path("books").mkdir()
        Path("books", "chapter1.txt").write_text(TEXT, encoding="utf-8")
        Path("draft.txt").write_text(TEXT, encoding="utf-8")
        for argv in (["--data", "book.txt", "--hidden", 8, "--iterations", 20,
                      "--checkpoint-every", 10, "--out", "runs/book"],
                     ["--data", "book.txt", "--hidden", 8, "--time-limit", 0.05,
                      "--out", "runs/overnight"],
                     ["--data", "draft.txt", "--hidden", 8, "--iterations", 10,
                      "--out", "runs/draft"]):
            status, _, err = launch("run", *argv, *LEAN)
            assert status == 0, err
        assert Path("runs/overnight/latest.npz").exists()
        with open("draft.txt", "a", encoding="utf-8") as fh:  # edited after training
            fh.write("Caf\u00e9 \u20ac\n")
        # What a run killed before its first checkpoint leaves behind.
        Path("runs/stopped-early").mkdir()
        shutil.copy("runs/book/config.json", "runs/stopped-early/config.json")
        Path("runs/stopped-early/metrics.csv").write_text("", encoding="utf-8")
        Path("runs/only-best").mkdir()
        shutil.copy("runs/book/best.npz", "runs/only-best/best.npz")
        # A byte of param.W changed on disk (its ZIP CRC no longer agrees).
        shutil.copytree("runs/book", "runs/damaged")
        raw = bytearray(Path("runs/damaged/latest.npz").read_bytes())
        with zipfile.ZipFile("runs/book/latest.npz") as zf:
            info = zf.getinfo("param.W.npy")
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                       info.header_offset + 30])
        data_end = info.header_offset + 30 + name_len + extra_len + info.compress_size
        raw[data_end - 1] ^= 0x01
        Path("runs/damaged/latest.npz").write_bytes(bytes(raw))
        # A checkpoint written by a later format version.

        def newer(name: str, data: bytes) -> bytes:
            if name != "meta.npy":
                return data
            meta = json.loads(numpy.load(io.BytesIO(data), allow_pickle=False).item())
            meta.update(format_version=meta["format_version"] + 1, charrnn_version="9.0.0")
            out = io.BytesIO()
            numpy.save(out, numpy.array(json.dumps(meta)), allow_pickle=False)
            return out.getvalue()

        Path("runs/newer").mkdir()
        rezip(Path("runs/book/latest.npz"), Path("runs/newer/latest.npz"), newer)
        # A run another process is training: its lock held, here by this one.
        shutil.copytree("runs/book", "runs/live")
        live = DirectoryLock(str(root / "runs" / "live")).acquire()
        live.claim()
    finally:
        os.chdir(here)
    yield root
    live.release()


def test_the_table_is_representative():
    assert 25 <= len(ROWS) <= 50, len(ROWS)
    assert len({command for _, command, _ in ROWS}) == len(ROWS), "a command is listed twice"
    commands = {shlex.split(command)[1] for _, command, _ in ROWS}
    assert {"run", "sample", "report"} <= commands
    for situation, command, message in ROWS:
        assert command.startswith("charrnn "), command
        assert situation and message and not message.startswith("Error:"), situation


@pytest.mark.parametrize("situation,command,message", ROWS, ids=[r[0] for r in ROWS])
def test_the_documented_line_is_printed(place, monkeypatch, situation, command, message):
    argv = shlex.split(command)[1:]
    if "cupy" in argv and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the row is about a machine without it")
    monkeypatch.chdir(place)
    status, _, err = launch(*argv)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert line_pattern(message).fullmatch(lines[0]), f"documented: {message}\nprinted: {lines[0]}"
    assert status == 2, (status, lines[0])


def test_the_damaged_row_is_the_crc_not_the_header(place, monkeypatch):
    """The damaged checkpoint is refused for its bytes, as the page's row implies."""
    monkeypatch.chdir(place)
    status, _, err = launch("run", "--resume", "runs/damaged")
    assert "array 'param.W' cannot be read" in err and status == 2


@pytest.mark.parametrize("name,message", DISK_ROWS, ids=[r[0] for r in DISK_ROWS])
def test_disk_errors_read_as_documented(name, message):
    from charrnn.errors import os_error_message

    number = getattr(errno, name)
    exc = OSError(number, os.strerror(number), "runs/book/latest.npz")
    assert "Error: " + os_error_message(exc) == "Error: " + message


def test_disk_table_covers_every_fix():
    from charrnn.errors import _WRITE_FIXES

    documented = {getattr(errno, name) for name, _ in DISK_ROWS}
    fixes = set(_WRITE_FIXES)
    # EPERM shares EACCES's fix; every other fix has its row.
    assert documented == fixes - {errno.EPERM}
