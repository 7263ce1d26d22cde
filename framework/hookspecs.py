"""Hook specifications for charrnn plugins.

A plugin is a module (or object) with functions marked ``@charrnn.hookimpl`` whose names match the
specifications below. It is found through the ``charrnn`` entry-point group, exactly as the
built-in backends, optimizers and callbacks are.
"""
from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "charrnn"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Callable[[type], None]) -> None:
    """Register array backends.

    :param register: call ``register(BackendClass)`` once per backend. The class's ``name``
        attribute is the name users pass to ``--backend``.

    Called once, when the plugin registry is first read (for ``--help``, shell completion,
    ``charrnn plugins`` or a run). The return value is ignored.
    """


@hookspec
def register_optimizers(register: Callable[[type], None]) -> None:
    """Register optimizers.

    :param register: call ``register(OptimizerClass)`` once per optimizer. The class's ``name``
        attribute is the name users pass to ``--optimizer``.

    Called once, when the plugin registry is first read. The return value is ignored.
    """


@hookspec
def register_callbacks(register: Callable[[type], None]) -> None:
    """Register training callbacks.

    :param register: call ``register(CallbackClass)`` once per callback. Every registered
        callback is offered to each run; its ``from_options`` decides whether it takes part.

    Called once, when the plugin registry is first read. The return value is ignored.
    """

