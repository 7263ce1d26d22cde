"""``charrnn conformance``: run the backend conformance suite against a registered backend.

Kept apart from :mod:`charrnn.testing` so that the suite's module is first imported by pytest,
after charrnn's ``pytest11`` plugin has asked for its assertions to be rewritten: failures then
show the values compared, as they do when a backend author runs the suite with pytest.

The exit status tells three outcomes apart, because a script acting on it (a CI job, a GPU
check) must not read "could not check here" as either "correct" or "wrong":

* 0 (``PASSED``): at least one case passed and none failed. Cases skipped for a capability
  the backend declares it lacks do not change that;
* 1 (``FAILED``): a case failed, or errored in its setup;
* 5 (``NOTHING_CHECKED``): no case passed and none failed: every case was skipped (the
  backend cannot run on this machine) or the arguments given to pytest selected none. It is
  pytest's own status for a run that collected nothing, which is the same outcome.

Any other status is pytest's own (2 interrupted, 3 internal error, 4 a usage error in the
arguments given to pytest).
"""
from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import uuid
from typing import Any, List, Sequence

from .errors import CharrnnError

PYTEST_MISSING = "the conformance suite needs pytest: pip install 'charrnn-kit[test]'"

#: Exit status: at least one case passed and none failed.
PASSED = 0
#: Exit status: a case failed, or errored in its setup.
FAILED = 1
#: Exit status: nothing was checked. Every case was skipped, or none was selected; pytest's
#: ``ExitCode.NO_TESTS_COLLECTED``.
NOTHING_CHECKED = 5


class _Tally:
    """A pytest plugin object counting outcomes and skip reasons of one run."""

    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = self.errors = 0
        self.skip_reasons: "collections.Counter[str]" = collections.Counter()

    def _skip(self, report: Any) -> None:
        self.skipped += 1
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        self.skip_reasons[re.sub(r"^Skipped: ", "", str(reason))] += 1

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call":
            if report.passed:
                self.passed += 1
            elif report.failed:
                self.failed += 1
            elif report.skipped:
                self._skip(report)
        elif report.failed:  # an error in setup or teardown
            self.errors += 1
        elif report.skipped and report.when == "setup":
            self._skip(report)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors += 1

    def summary(self, backend_name: str, origin: str) -> List[str]:
        counts = (f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
                  + (f", {self.errors} errors" if self.errors else ""))
        if self.failed or self.errors:
            verdict = "FAILED"
        elif self.passed:
            verdict = "passed"
        else:
            verdict = "nothing was checked"
        lines = [f"charrnn conformance: backend {backend_name!r} ({origin}): {verdict}: {counts}"]
        for reason, n in self.skip_reasons.most_common():
            lines.append(f"  skipped {n}: {reason}")
        return lines


def kernel_sources(backend_name: str) -> List[str]:
    """What runs each registered operation on the backend: a kernel (and whose), or the
    reference, which the suite then checked against itself. Empty when the backend cannot be
    made here."""
    from .registry import get_registry

    registry = get_registry()
    try:
        backend = registry.get("backend", backend_name)("float64")
    except Exception:  # unavailable here (CuPy without a GPU): its cases were skipped
        return []
    lines = ["  operations:"]
    for name in sorted(registry.items["operation"]):
        source = backend.kernel_source(registry.get("operation", name))
        if source == "reference":
            source = "no kernel for this backend: the reference runs (checked against itself)"
        lines.append(f"    {name:<16} {source}")
    return lines


def run_conformance(backend_name: str, extra_args: Sequence[str] = ()) -> int:
    """Run the conformance suite against the registered backend ``backend_name``.

    Writes a three-line test module subclassing ``charrnn.testing.BackendConformance`` into a
    temporary directory and runs pytest on it in this process, with ``extra_args`` appended
    (``-x``, ``-k softmax``, ``-v``...), and with a configuration of its own, so that the
    user's pytest settings do not change what is checked. Prints pytest's report, then one
    summary line: the verdict (``passed``, ``FAILED`` or ``nothing was checked``), the counts of
    passed, failed and skipped cases, and one line per skip reason.

    Returns the exit status of ``charrnn conformance``: 0 (``PASSED``) when at least one case
    passed and none failed; 1 (``FAILED``) when a case failed or errored; 5
    (``NOTHING_CHECKED``) when no case passed and none failed, because every case was skipped
    or none was selected. A run with every case skipped returns 5, not 0: pytest counts it a
    success, but a backend that could not run here has not been shown to be correct. Any other
    status is pytest's own (2 interrupted, 3 internal error, 4 a usage error in ``extra_args``).

    Raises :class:`~charrnn.errors.CharrnnError` for an unknown backend name or when pytest is
    not installed.
    """
    try:
        import pytest as _pytest
    except ImportError:
        raise CharrnnError(PYTEST_MISSING) from None
    from .registry import get_registry

    registry = get_registry()
    names = registry.names("backend")
    if backend_name not in names:
        raise CharrnnError(f"unknown backend {backend_name!r}; available: "
                           f"{', '.join(names) or 'none'}")
    plugin = registry.items["backend"][backend_name].plugin
    origin = f"{plugin.distribution} {plugin.version}"

    tally = _Tally()
    with tempfile.TemporaryDirectory(prefix="charrnn-conformance-") as tmp:
        # A unique module name: pytest caches test modules in sys.modules by name.
        stem = f"test_conformance_{re.sub(r'[^0-9A-Za-z_]', '_', backend_name)}_{uuid.uuid4().hex[:8]}"
        with open(os.path.join(tmp, stem + ".py"), "w", encoding="utf-8") as fh:
            fh.write("from charrnn.testing import BackendConformance\n\n\n"
                     "class TestConformance(BackendConformance):\n"
                     f"    backend = {backend_name!r}\n")
        # Our own ini file, so that the user's pytest configuration (addopts, plugins) does not
        # apply.
        ini = os.path.join(tmp, "pytest.ini")
        with open(ini, "w", encoding="utf-8") as fh:
            fh.write("[pytest]\n")
        args = [os.path.join(tmp, stem + ".py"), "-q", "-p", "no:cacheprovider", "-c", ini,
                "--rootdir", tmp, "--import-mode=importlib", *extra_args]
        try:
            code = _pytest.main(args, plugins=[tally])
        finally:
            roots = (tmp, os.path.realpath(tmp))
            for name in [n for n, mod in list(sys.modules.items())
                         if (getattr(mod, "__file__", None) or "").startswith(roots)]:
                del sys.modules[name]
    for line in tally.summary(backend_name, origin) + kernel_sources(backend_name):
        print(line)
    sys.stdout.flush()
    if code == 0 and not tally.passed:
        return NOTHING_CHECKED  # every case skipped: pytest's success, but nothing was shown
    return int(code)
