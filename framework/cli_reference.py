"""The command table the documentation's CLI reference is generated from.

The launcher's group gains its subcommands (``sample``, ``gradcheck``, ``report``) and most of
``run``'s options from plugins at start-up. The reference is built from that assembled table,
with charrnn's own plugins only, so it documents what every install has and never what happens
to be installed on the machine that builds the docs.
"""
from __future__ import annotations

import os

import click

from .cli import NO_PLUGINS_ENV, cli as _group
from .registry import get_registry


def assembled_cli() -> click.Group:
    """The ``charrnn`` group as ``charrnn --no-plugins`` sees it, every plugin option included."""
    saved = os.environ.get(NO_PLUGINS_ENV)
    os.environ[NO_PLUGINS_ENV] = "1"
    try:
        registry = get_registry(refresh=True)
        if not getattr(_group, "_charrnn_commands_added", False):
            registry.add_commands(_group)
            _group._charrnn_commands_added = True  # type: ignore[attr-defined]
        run = _group.commands["run"]
        run.get_params(click.Context(run))  # pulls in the options plugins add to run
    finally:
        if saved is None:
            os.environ.pop(NO_PLUGINS_ENV, None)
        else:
            os.environ[NO_PLUGINS_ENV] = saved
    return _group


#: What mkdocs-click imports (``:module: charrnn.cli_reference``, ``:command: cli``).
cli = assembled_cli()
