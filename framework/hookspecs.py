"""Hook specifications for charrnn plugins.

A plugin is a module (or object) with functions marked ``@charrnn.hookimpl`` whose names match the
specifications below. It is found through the ``charrnn`` entry-point group, exactly as the
built-in backends, models, optimizers and callbacks are.

As with pluggy's own hooks, an implementation may take fewer arguments than its specification
names: it is called with only the ones it asks for.
"""
from __future__ import annotations

from typing import Any, TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import click

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
def register_models(register: Callable[[type], None]) -> None:
    """Register models.

    :param register: call ``register(ModelClass)`` once per model, a subclass of
        :class:`charrnn.model.Model`. The class's ``name`` attribute is the name users pass to
        ``--model``.

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
def register_operations(register: Callable[[Any], None]) -> None:
    """Register operations: the heavy work a model or optimizer defines, each with its reference.

    :param register: call ``register(operation)`` once per :class:`charrnn.kernels.Operation`.
        Its ``name`` (``"lstm.forward"``) is what kernels are registered for, and the
        conformance suite checks every backend's kernel for it against its reference.

    Called once, when the plugin registry is first read. The return value is ignored.
    """


@hookspec
def register_kernels(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register kernels: a faster function for an operation on a backend.

    :param register: call ``register(operation_name, backend_name, kernel)``; the kernel is
        called as ``kernel(backend, *arguments)`` and must compute what the operation's reference
        computes. Any plugin may register one for any operation on any backend, a third-party
        model's operations included; the first registration of a pair wins (charrnn's own
        plugins come first). A backend derived from another (``class Mine(NumpyBackend)``)
        uses the other's kernels unless it has its own.

    Called once, when the plugin registry is first read. The return value is ignored.
    """


@hookspec
def register_callbacks(register: Callable[[type], None]) -> None:
    """Register training callbacks.

    :param register: call ``register(CallbackClass)`` once per callback. Every registered
        callback is offered to each run; its ``from_options`` decides whether it takes part.

    Called once, when the plugin registry is first read. The return value is ignored.
    """


@hookspec
def register_presets(register: Callable[[Any], None]) -> None:
    """Register presets: named sets of ``charrnn run`` options (``--preset NAME``).

    :param register: call ``register(Preset("name", "--model lstm --eta 4e-3 ...", help=...))``
        once per preset (:class:`charrnn.presets.Preset`). The options are parsed exactly as if
        typed before the rest of the command line, so they are checked by the same types and
        whatever the user types after ``--preset`` wins.

    Called once, when the plugin registry is first read. The return value is ignored.
    """


@hookspec
def add_run_options(add_option: Callable[..., None]) -> None:
    """Add options to every run, as ``pytest_addoption`` does for pytest.

    :param add_option: call ``add_option(charrnn.Option("sample_every", int, 10_000, min=1,
        help=...))`` once per option. It becomes a ``charrnn run`` flag (``--sample-every``)
        and a ``charrnn.train`` keyword (``sample_every=``), checked the same way by both, and
        its value reaches every callback's ``from_options(options)`` under its name
        (``options["sample_every"]``).

    Called once, when the plugin registry is first read, so that the options show in
    ``charrnn run --help`` and in shell completion. The return value is ignored. An option whose
    name is already taken is dropped and reported by ``charrnn plugins``.

    Given with ``--resume``, an option is applied to the continued run. Pass
    ``fixed_on_resume=True`` for one a resumed run cannot honour (it shapes the model or the
    data, seeds a stream the checkpoint already holds, or acts only when a run starts): a
    resume that changes it is then refused in one line, not silently ignored.

    Deprecated since 0.6: ``add_option("--sample-every", type=click.IntRange(min=1), ...)``
    with :class:`click.Option`'s arguments, as 0.5 documented it. It still works, with one
    ``Deprecated:`` line naming the replacement.
    """


@hookspec
def report_sections(trainer: Any) -> Any:
    """Sections of the run's report (report.md) about what this plugin did.

    :param trainer: the run's :class:`charrnn.trainer.Trainer`, at the end of training (its
        ``callbacks``, ``logs``, ``config`` and ``run_dir``).
    :return: a :class:`charrnn.reporting.ReportSection`, a list of them, or None. Called for
        every installed plugin, whether or not its callbacks took part in the run, so that a
        plugin can say that it was left out (``--no-gradcheck``).

    A plugin whose implementation raises gets a section saying so; the report is still written.
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the ``charrnn`` launcher.

    :param cli: the top-level :class:`click.Group`; decorate functions with ``@cli.command()``.

    Called once, before the command line is parsed. The return value is ignored.
    """
