"""Plugins written against 0.5.0's documented interfaces keep working: the frozen copies of two
0.5.0 example distributions (``tests/data/v05-plugins``), a backend that overrides the 0.5
``Backend`` methods and a model plugin, installed as plugins (entry points, metadata) and run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import TEXT, examples_on_path, run_in_process

FROZEN = Path(__file__).resolve().parent / "data" / "v05-plugins"
CHECKED, BIGRAM = FROZEN / "charrnn-checked-backend", FROZEN / "charrnn-bigram-model"


@pytest.fixture
def frozen(tmp_path):
    """Both 0.5.0 plugins on the path with their entry points; gone afterwards."""
    import importlib
    import sys

    from charrnn.registry import get_registry

    patch = pytest.MonkeyPatch()
    modules = examples_on_path(patch, tmp_path / "site", CHECKED, BIGRAM)
    yield
    patch.undo()
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()
    get_registry(refresh=True)


def metrics(run: Path):
    import charrnn

    return [(r["update"], r["loss"]) for r in charrnn.read_metrics(run)]


def test_the_05_backend_trains_as_the_reference_through_the_adapter(frozen, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    common = ("--data", data, "--model", "lstm", "--hidden", 8, "--seq-length", 10,
              "--iterations", 30, "--log-every", 10, "--quiet", "--no-plot")
    runs = {}
    for backend in ("reference", "checked"):
        runs[backend] = tmp_path / backend
        proc = run_in_process("run", "--backend", backend, *common, "--out", runs[backend],
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        notices = [line for line in proc.stderr.splitlines() if line.startswith("Deprecated: ")]
        # One line, naming what replaces the 0.5 methods the checked backend overrides.
        assert len(notices) == 1, proc.stderr
        assert "backend 'checked' of charrnn-checked-backend overrides" in notices[0]
        assert "register_kernels" in notices[0]
    # The checked backend's overrides ran as its kernels and computed what the reference does.
    assert metrics(runs["checked"]) == metrics(runs["reference"])


def test_the_05_backend_passes_the_conformance_suite_through_the_adapter(frozen, capsys):
    from charrnn.conformance import run_conformance

    capsys.readouterr()
    code = run_conformance("checked", ["-q", "-k", "kernel and (lstm or adagrad)"])
    report = capsys.readouterr().out
    assert code == 0, report
    assert re.search(r"^    lstm\.forward +0\.5 method CheckedBackend\.lstm_forward$", report,
                     flags=re.M), report


def test_the_05_model_trains_and_samples(frozen, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    out = tmp_path / "bigram"
    proc = run_in_process("run", "--model", "bigram", "--data", data, "--iterations", 50,
                          "--out", out, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Its interface has not changed: the one notice is the installed 0.5 backend's.
    assert "bigram" not in proc.stderr, proc.stderr
    proc = run_in_process("sample", "--checkpoint", out, "--length", 30, cwd=tmp_path)
    assert proc.returncode == 0 and len(proc.stdout.strip()) >= 20, proc.stdout + proc.stderr


@pytest.mark.e2e  # a pytest process of its own
def test_the_05_backends_own_tests_still_pass(tmp_path):
    """The frozen backend's own test file, as 0.5.0 shipped it, run by pytest against this
    charrnn: its direct calls of the 0.5 methods still compute what they did."""
    import os
    import shutil
    import subprocess
    import sys

    site = tmp_path / "site"
    info = site / "charrnn_checked_backend-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: charrnn-checked-backend\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text("[charrnn]\nchecked = charrnn_checked_backend\n")
    work = tmp_path / "checked"
    shutil.copytree(CHECKED, work)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(work)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::FutureWarning", str(work)], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout
