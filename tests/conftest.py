"""Shared fixtures: the NumPy backend and a way to run the installed ``charrnn`` command."""
from __future__ import annotations

import os

import pytest
from helpers import charrnn_cmd
from hypothesis import settings

# Hypothesis: a quick look by default, the full search in CI (`--hypothesis-profile thorough`,
# an option of Hypothesis's own pytest plugin). Tests size their searches with
# helpers.examples(), in the thorough profile's terms.
settings.register_profile("fast", max_examples=20)
settings.register_profile("thorough", max_examples=100)
settings.load_profile("fast")

#: Not tests of this project: fixtures (the 0.5.0 plugins, frozen, with their own test files).
collect_ignore_glob = ["data/*"]

#: With several pytest-xdist workers on as many cores, the processes the tests start use one BLAS
#: thread each, as the sweep's trials do: two workers each starting runs that spread their
#: matrix products over every core would slow both down several times over.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1) > 1:
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                  "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(_name, "1")


@pytest.fixture
def backend():
    """The built-in NumPy backend in float64, looked up through the plugin registry."""
    from charrnn.registry import get_registry

    return get_registry().get("backend", "numpy")(dtype="float64")


@pytest.fixture
def run_charrnn(tmp_path):
    """``run_charrnn(*args, launcher="inprocess", env=None, cwd=None)`` runs the launcher (cwd:
    a fresh temporary directory) and returns a CompletedProcess. In this process by default;
    ``launcher="script"`` or ``"module"`` for the tests about the process itself."""

    def run(*args, launcher: str = "inprocess", env=None, cwd=None, timeout: float = 120):
        return charrnn_cmd(*args, cwd=cwd or tmp_path, env=env, launcher=launcher,
                           timeout=timeout)

    return run


@pytest.fixture
def with_examples(tmp_path):
    """``with_examples(*names)`` puts the example plugins ``names`` (folders under
    ``examples/``) on this process's path with their entry points (helpers.examples_on_path);
    afterwards they are gone again, from the path, the imported modules and the registry."""
    import importlib
    import sys

    from charrnn.registry import get_registry
    from helpers import examples_on_path

    patch = pytest.MonkeyPatch()
    modules = []

    def install(*names: str) -> None:
        modules.extend(examples_on_path(patch, tmp_path / "site", *names))

    yield install
    patch.undo()
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()
    get_registry(refresh=True)


@pytest.fixture(autouse=True, scope="session")
def _charrnn_cache_dir(tmp_path_factory):
    """Encoded ``--data`` texts are cached in a temporary directory, never in the real
    ``~/.cache/charrnn``; session-wide, so module-scoped fixtures and subprocesses (which inherit
    the environment) see it too. Tests about the cache set their own with ``monkeypatch``."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CHARRNN_CACHE_DIR", str(tmp_path_factory.mktemp("charrnn-cache")))
    yield
    patch.undo()


def _gpu_unavailable_reason():
    """Why the CuPy backend cannot run here (with the fix), or None where it can."""
    from charrnn.errors import BackendUnavailable
    from charrnn.registry import get_registry

    try:
        get_registry().get("backend", "cupy").check_available()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """Fold the expected CuPy skips (no CuPy or no GPU here) into one line of the summary.

    ``-ra`` would list them at every place they were skipped from; any other skip is still
    listed on its own, and the final count keeps every skip.
    """
    reason = _gpu_unavailable_reason()
    skipped = terminalreporter.stats.get("skipped", [])
    expected = [r for r in skipped if reason and _skip_reason(r).endswith(reason)]
    if expected:
        terminalreporter.stats["skipped"] = [r for r in skipped if r not in expected]
    yield
    if expected:
        terminalreporter.stats["skipped"] = skipped
        terminalreporter.write_line(
            f"SKIPPED {len(expected)} CuPy backend cases, as expected here: {reason}")
