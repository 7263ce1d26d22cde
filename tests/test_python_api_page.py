"""docs/python-api.md's examples, run in order as a reader would run them (in one fresh directory,
so that later examples read the runs earlier ones wrote), with what each prints checked where
the page says what it prints."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import charrnn

PAGE = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"

def python_blocks(text: str):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_page_has_examples_for_train_load_and_errors():
    code = "\n".join(python_blocks(PAGE.read_text(encoding="utf-8")))
    for call in ("charrnn.train(", "charrnn.load(", ".sample(", ".stream(", ".loss(",
                 "charrnn.RunConfig(", "callbacks=", "except charrnn.InvalidOption"):
        assert call in code, call


@pytest.mark.e2e
def test_every_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = []
    for number, block in enumerate(python_blocks(PAGE.read_text(encoding="utf-8")), 1):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, f"{PAGE.name}, example {number}", "exec"), {})
        printed.append(out.getvalue())
    assert len(printed) == 6
    first = printed[0].splitlines()
    assert first[-3].startswith("runs/api-first 200 None")
    assert printed[1].splitlines()[-1] == "200 100"
    assert printed[2].splitlines()[0].startswith("charrnn run ")
    assert printed[3].splitlines()[-1].startswith("100 (100, ")
    lines = printed[4].splitlines()
    assert lines[-1].endswith("nats per character") and float(lines[-1].split()[0]) > 0
    assert printed[5].strip() == "Invalid value for '--hidden': -1 is not in the range x>=1."


@pytest.mark.e2e
def test_the_readme_example_runs(tmp_path, monkeypatch):
    readme = PAGE.parent.parent / "README.md"
    blocks = python_blocks(readme.read_text(encoding="utf-8"))
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), {})
    printed = out.getvalue()
    assert "done: 5,000 updates" in printed
    assert (tmp_path / "runs" / "from-python" / "best.npz").is_file()
    # The 300 sampled characters and a newline, then the 100 streamed ones with none after.
    generator = charrnn.load(tmp_path / "runs" / "from-python")
    tail = printed[-100:]
    assert set(tail) <= set(generator.vocab)
    assert printed[:-100].endswith(generator.sample(300, temperature=0.8, seed=1) + "\n")
