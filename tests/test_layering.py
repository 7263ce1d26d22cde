"""The layering the design card asks for, checked by import-linter's contracts (pyproject's
``[tool.importlinter]``): Click only in the command-line modules (the launcher, and each plugin's
``cli.py``), no import cycle among the core's modules, a core that imports no backend, model,
optimizer or plugin, plugins that import no other plugin, and backends that import only the core.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The package-dir mapping of pyproject.toml: the folder each part of ``charrnn`` lives in.
PARTS = {"backends": "backends", "models": "models", "optimizers": "optimizers",
         "plugins": "plugins"}

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11),
                                reason="import-linter needs Python 3.11")


def package_tree(where: Path) -> Path:
    """``charrnn`` as one folder of links, as the import graph builder reads a package: the core's
    modules from framework/, each subpackage from its own folder."""
    package = where / "charrnn"
    package.mkdir(parents=True)
    for module in (ROOT / "framework").glob("*.py"):
        (package / module.name).symlink_to(module)
    for sub in (ROOT / "framework").iterdir():  # the core's own subpackages (checkpoint, ...)
        if (sub / "__init__.py").is_file():
            (package / sub.name).symlink_to(sub, target_is_directory=True)
    for name, folder in PARTS.items():
        (package / name).symlink_to(ROOT / folder, target_is_directory=True)
    return where


def lint(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    tree = package_tree(tmp_path / "tree")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    linter = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(linter), "--config", str(config), "--no-cache"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold(tmp_path):
    proc = lint(tmp_path, ROOT / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 5 kept, 0 broken." in proc.stdout, proc.stdout


def test_the_contracts_catch_a_click_import_and_a_cycle(tmp_path):
    """The same contracts on a copy with one click import and one cycle added to the core, and
    one plugin importing another: each is reported, so the check above could fail."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config = tmp_path / "pyproject.toml"
    config.write_text(text, encoding="utf-8")
    tree = package_tree(tmp_path / "tree")
    trainer = tree / "charrnn" / "trainer.py"
    trainer.unlink()
    trainer.write_text((ROOT / "framework" / "trainer.py").read_text(encoding="utf-8")
                       + "\n\ndef _bad():\n    import click\n    from . import session\n",
                       encoding="utf-8")
    plugins = tree / "charrnn" / "plugins"
    plugins.unlink()  # the linked folder, replaced by a copy with one module changed
    shutil.copytree(ROOT / "plugins", plugins)
    progress = plugins / "progress.py"
    progress.write_text(progress.read_text(encoding="utf-8")
                        + "\n\ndef _bad():\n    from charrnn.plugins import lossplot\n",
                        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(linter), "--config", str(config), "--no-cache"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert "charrnn.trainer -> click" in proc.stdout
    assert "No import cycles among charrnn's modules BROKEN" in proc.stdout
    assert "No plugin imports another plugin BROKEN" in proc.stdout
    assert "charrnn.plugins.progress -> charrnn.plugins.lossplot" in proc.stdout
