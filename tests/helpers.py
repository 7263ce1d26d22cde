"""Helpers shared by the test modules (pytest puts this folder on ``sys.path``)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple, Union

from charrnn.callbacks import Callback

TEXT = "the quick brown fox jumps over the lazy dog.\nhow vexingly quick daft zebras jump!\n" * 5
VOCAB = sorted(set(TEXT))
#: Options that only cost time in tests that are not about those parts.
LEAN = ("--no-gradcheck", "--no-plot", "--no-report", "--quiet")


def examples(thorough: int) -> int:
    """How many examples a Hypothesis test tries: ``thorough`` under the thorough profile (CI),
    a fifth of it (at least 10) under the default fast one."""
    from hypothesis import settings

    return max(10, thorough * settings.default.max_examples // 100)


def console_script() -> str:
    """The installed ``charrnn`` script, the one next to this interpreter first, so that a
    ``charrnn`` from some other environment on PATH is never tested by mistake."""
    found = shutil.which("charrnn", path=str(Path(sys.executable).parent)) or shutil.which("charrnn")
    if found is None:
        raise AssertionError(f"the `charrnn` console script is not installed next to "
                             f"{sys.executable} nor on PATH; install the package first")
    return found


#: Variables a process reads at start-up (interpreter, locale, import path): a command that sets
#: one of them runs in a subprocess even when an in-process run was asked for.
_STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_")


def charrnn_cmd(*args, cwd, env=None, launcher: str = "script",
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the launcher: ``launcher="script"`` runs the console script and ``"module"`` runs
    ``python -m charrnn``, each in a subprocess without any PYTHONPATH this process was given;
    ``"inprocess"`` calls the launcher's ``main`` in this process, in ``cwd`` and with ``env``
    added to the environment, and returns the same kind of result. A test that is not about the
    process itself (signals, the console script, start-up) uses the in-process launcher: it
    is several times faster."""
    if launcher == "inprocess":
        if not any(k.startswith(_STARTUP_VARIABLES) for k in (env or {})):
            return run_in_process(*args, cwd=cwd, env=env)
        launcher = "script"
    cmd = [console_script()] if launcher == "script" else [sys.executable, "-m", "charrnn"]
    full_env = dict(os.environ)
    full_env.pop("PYTHONPATH", None)
    full_env.update(env or {})
    return subprocess.run(cmd + [str(a) for a in args], cwd=str(cwd), env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def charrnn_inproc(*args, cwd, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """:func:`charrnn_cmd` in this process (see ``launcher="inprocess"``)."""
    return charrnn_cmd(*args, cwd=cwd, env=env, launcher="inprocess", timeout=timeout)


def run_options(*args) -> dict:
    """The options ``charrnn run ARGS`` would pass, plugin options and defaults included."""
    from charrnn.cli import run

    return dict(run.make_context("run", [str(a) for a in args]).params)


def assert_one_line_error(proc, *parts, quiet_stdout: bool = False,
                          deprecated: int = 0) -> str:
    """The command failed with exactly one ``Error: ...`` line naming ``parts``, no traceback;
    before it, ``deprecated`` one-line notices of a plugin's use of the 0.5 interface."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    notices = [line for line in lines[:deprecated] if line.startswith("Deprecated: ")]
    assert len(notices) == deprecated, proc.stderr
    lines = lines[deprecated:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]
    if quiet_stdout:
        assert proc.stdout == ""
    return lines[0]


def read_samples(path: Path) -> dict:
    """``samples.md`` as {update: text}; a repeated update would be a bug, so it is refused."""
    found = re.findall(r"## Update (\d+) \(smooth loss [^)]*\)\n\n(`{3,})text\n(.*?)\n\2\n",
                       path.read_text(encoding="utf-8"), re.S)
    updates = [int(u) for u, _, _ in found]
    assert len(updates) == len(set(updates)), updates
    return {int(u): text for u, _, text in found}


def make_trainer(backend, corpus, *, model: str = "rnn", hidden: int = 8, layers: int = 1,
                 batch: int = 1, seq_length: int = 25, optimizer: str = "adagrad", eta=None,
                 clip: float = 5.0, dropout: float = 0.0, iterations=1000, callbacks=(),
                 seed: int = 0, params=None, **trainer_args):
    """A trainer on ``backend`` (a backend object, perhaps a test's own subclass) and
    ``corpus``, built by ``build_trainer`` as ``charrnn.train`` builds one, with ``callbacks``
    in place of the registered ones."""
    from charrnn import RunConfig
    from charrnn.assembly import build_trainer

    run_dir, val_ids = trainer_args.pop("run_dir", None), trainer_args.pop("val_ids", None)
    config = RunConfig(model=model, hidden=hidden, layers=layers, batch_size=batch,
                       seq_length=seq_length, optimizer=optimizer, eta=eta, clip=clip,
                       dropout=dropout, iterations=iterations, seed=seed,
                       dtype=backend.dtype.name, **trainer_args)
    trainer = build_trainer(config, run_dir, corpus=corpus, backend=backend, plugins=False,
                            callbacks=list(callbacks))
    if params is not None:
        trainer.model.set_params(params)
    trainer.val_ids = val_ids
    return trainer


class Crash(Callback):
    """Fails as a real crash would: an exception at update ``at``, after the last checkpoint and
    without the one a clean end writes. Append it to ``trainer.callbacks``, after the built-ins."""

    name = "crash"
    order = 1000

    def __init__(self, at: int) -> None:
        self.at = at

    def on_update_end(self, trainer) -> None:
        if trainer.update == self.at:
            raise RuntimeError("simulated crash")


def call_in_process(capsys, *argv):
    """``charrnn ARGV`` in this process, through the launcher's ``main``: (exit code, stdout,
    stderr). An exception other than SystemExit propagates, and fails the test."""
    from charrnn.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def run_in_process(*args, cwd, env=None) -> subprocess.CompletedProcess:
    """``charrnn ARGS`` through the launcher's ``main`` in this process, run in ``cwd`` with
    ``env`` added to the environment; the working directory, the environment and the plugin
    registry are as they were afterwards."""
    from charrnn.registry import get_registry

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    os.chdir(cwd)
    plugins_env = any(k.startswith("CHARRNN_DISABLE") for k in (env or {})) or \
        "--no-plugins" in args or "--disable" in args
    try:
        if plugins_env:
            get_registry(refresh=True)
        code, out, err = launch(*args)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        if plugins_env:
            get_registry(refresh=True)
    return subprocess.CompletedProcess(["charrnn", *map(str, args)], code, out, err)


def launch(*argv):
    """``charrnn ARGV`` in this process with its output captured here rather than by capsys,
    so that module-scoped fixtures can use it too: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from charrnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example_metadata(folder: Path) -> Tuple[str, str, Dict[str, str]]:
    """An example's distribution name, version and ``charrnn`` entry points, from its
    pyproject.toml (simple enough to read without a TOML parser on Python 3.10)."""
    text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    name = re.search(r'^name = "([^"]+)"', text, re.M).group(1)
    version = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    section = text.split("[project.entry-points.charrnn]", 1)[1].split("\n[", 1)[0]
    points = dict(re.findall(r'^(\w+) = "([^"]+)"', section, re.M))
    return name, version, points


def examples_on_path(monkeypatch, site: Path, *names: Union[str, Path]) -> List[str]:
    """Make the examples ``names`` (folders under ``examples/``, or paths) importable in this process and
    discoverable through their ``charrnn`` entry points, as an editable install makes them:
    each gets a ``*.dist-info`` folder with its metadata in ``site``, and its source folder goes
    on ``sys.path``. The registry then loads them as it loads any installed plugin, through
    ``importlib.metadata``; ``monkeypatch`` takes them away again. Returns the modules the
    entry points name. Tests about installing (pip, the metadata pip writes) are in
    ``test_third_party.py``."""
    import importlib

    from charrnn.registry import get_registry

    site.mkdir(parents=True, exist_ok=True)
    modules: List[str] = []
    for example in names:
        folder = example if isinstance(example, Path) else EXAMPLES / example
        name, version, points = _example_metadata(folder)
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(
            "[charrnn]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()),
            encoding="utf-8")
        monkeypatch.syspath_prepend(str(folder))
        for module in points.values():
            modules.append(module.split(":")[0])
            monkeypatch.delitem(sys.modules, modules[-1], raising=False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    get_registry(refresh=True)
    return modules


def pytest_outcomes(folder: Path, name: str, source: str) -> Tuple[dict, int, str]:
    """Run pytest, in a process of its own, on the test module ``source`` written to
    ``folder/name`` with an empty configuration (no project ini; a conftest that only stops
    Hypothesis shrinking its counterexamples). Returns
    ``({class: {test id: (outcome, message)}}, exit status, stdout)``: outcome ``passed``,
    ``failure``, ``error`` or ``skipped``."""
    import xml.etree.ElementTree as ET

    (folder / name).write_text(source, encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    # The backends run here are wrong on purpose: no time goes to shrinking what Hypothesis
    # finds against them.
    (folder / "conftest.py").write_text(
        "from hypothesis import Phase, settings\n"
        "settings.register_profile('no-shrink', phases=[Phase.explicit, Phase.reuse, "
        "Phase.generate])\n"
        "settings.load_profile('no-shrink')\n", encoding="utf-8")
    report = folder / "report.xml"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini",
         "--rootdir", str(folder), f"--junitxml={report}", "-W", "ignore::RuntimeWarning",
         name], cwd=str(folder), env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), proc.stdout + proc.stderr
    outcomes: dict = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname").rsplit(".", 1)[-1]
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message") or ""
        outcomes.setdefault(cls, {})[case.get("name")] = (outcome, message)
    return outcomes, proc.returncode, proc.stdout
