"""Shared fixtures: the NumPy backend and a way to run the installed ``charrnn`` command."""
from __future__ import annotations

import pytest
from helpers import charrnn_cmd


@pytest.fixture
def backend():
    """The built-in NumPy backend in float64, looked up through the plugin registry."""
    from charrnn.registry import get_registry

    return get_registry().get("backend", "numpy")(dtype="float64")


@pytest.fixture
def run_charrnn(tmp_path):
    """``run_charrnn(*args, launcher="script", env=None, cwd=None)`` runs the launcher in a
    subprocess (cwd: a fresh temporary directory) and returns the CompletedProcess."""

    def run(*args, launcher: str = "script", env=None, cwd=None, timeout: float = 120):
        return charrnn_cmd(*args, cwd=cwd or tmp_path, env=env, launcher=launcher,
                           timeout=timeout)

    return run


@pytest.fixture(autouse=True, scope="session")
def _charrnn_cache_dir(tmp_path_factory):
    """Encoded ``--data`` texts are cached in a temporary directory, never in the real
    ``~/.cache/charrnn``; session-wide, so module-scoped fixtures and subprocesses (which inherit
    the environment) see it too. Tests about the cache set their own with ``monkeypatch``."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CHARRNN_CACHE_DIR", str(tmp_path_factory.mktemp("charrnn-cache")))
    yield
    patch.undo()
