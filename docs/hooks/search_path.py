"""MkDocs hook: keep the console-script folder off the API reference's module search path.

``mkdocs`` started as a console script puts its own folder (a virtual environment's ``bin/``)
first on ``sys.path``. That folder also holds the ``charrnn`` console script, which the API
reference's module finder would take for the ``charrnn`` package. Dropping that folder lets the
finder reach the installed package, editable or not.
"""
from __future__ import annotations

import sys
from pathlib import Path


def on_startup(**_kwargs) -> None:
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "charrnn").is_file()]
