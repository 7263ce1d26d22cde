"""Shared fixtures: the NumPy backend and a way to run the installed ``charrnn`` command."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def backend():
    """The built-in NumPy backend in float64, looked up through the plugin registry."""
    from charrnn.registry import get_registry

    return get_registry().get("backend", "numpy")(dtype="float64")


def _console_script() -> str:
    # The script installed next to this interpreter (the venv's bin/ or Scripts/) comes first,
    # so that a `charrnn` from some other environment on PATH is never tested by mistake.
    found = shutil.which("charrnn", path=str(Path(sys.executable).parent)) or shutil.which("charrnn")
    if found is None:
        pytest.fail("the `charrnn` console script is not installed next to "
                    f"{sys.executable} nor on PATH; install the package first")
    return found


@pytest.fixture
def run_charrnn(tmp_path):
    """``run_charrnn(*args, launcher="script", env=None, cwd=None)`` runs the launcher in a
    subprocess (cwd: a fresh temporary directory) and returns the CompletedProcess."""

    def run(*args, launcher: str = "script", env=None, cwd=None, timeout: float = 120):
        cmd = [_console_script()] if launcher == "script" else [sys.executable, "-m", "charrnn"]
        full_env = dict(os.environ)
        full_env.pop("PYTHONPATH", None)
        full_env.update(env or {})
        return subprocess.run(cmd + [str(a) for a in args], cwd=str(cwd or tmp_path),
                              env=full_env, capture_output=True, text=True, timeout=timeout)

    return run
