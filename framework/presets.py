"""Presets: recipes of ``charrnn run`` options that are easy to share (``--preset``).

A preset is nothing but options as a user would type them. ``--preset NAME`` (a registered
preset) or ``--preset FILE`` (a text file of options, ``#`` starting a comment) puts them on the
command line ahead of everything else, so they pass through the same option types as typed ones,
end up in ``config.json`` like typed ones, and any option the user also types wins. Plugins
register presets through the ``register_presets`` hook, as the built-in ones are registered.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .errors import CharrnnError


@dataclass(frozen=True)
class Preset:
    """A named recipe: ``args`` are ``charrnn run`` options; ``help`` says what it is for."""

    name: str
    args: str
    help: str = ""

    def argv(self) -> List[str]:
        return shlex.split(self.args, comments=True)


def preset_argv(value: str) -> List[str]:
    """The options a ``--preset`` value stands for: a registered name, or a file of options."""
    from .registry import get_registry

    registry = get_registry()
    if value in registry.names("preset"):
        argv = registry.get("preset", value).argv()
    elif os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as fh:
                argv = shlex.split(fh.read(), comments=True)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CharrnnError(f"cannot read the preset file {value} ({exc}); pass a text file "
                               "of charrnn run options") from None
    else:
        names = ", ".join(registry.names("preset")) or "none installed"
        raise CharrnnError(f"no preset named {value!r} and no such file; pass one of: {names}, "
                           "or a file of charrnn run options")
    if any(a == "--preset" or a.startswith("--preset=") for a in argv):
        raise CharrnnError(f"preset {value} names another --preset; list its options instead")
    return argv


def preset_value(args: Sequence[str]) -> Optional[str]:
    """The value of ``--preset`` in ``args`` (before any ``--``), or None; refuses two."""
    found: List[str] = []
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg == "--preset" and i + 1 < len(args):
            found.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("--preset="):
            found.append(arg.split("=", 1)[1])
        i += 1
    if len(found) > 1:
        raise CharrnnError("--preset is given more than once; pass one preset and add options "
                           "after it")
    return found[0] if found else None

