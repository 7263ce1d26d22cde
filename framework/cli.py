"""The ``charrnn`` launcher: assembles a backend, an optimizer and callbacks from the registry.

Errors a user can fix are printed as one line (``Error: ...``) with a non-zero exit and no
traceback, whether they come from option parsing or from the run itself.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

import click

from . import DISTRIBUTION, __version__
from .errors import CharrnnError, os_error_message
from .config import Option, Schema
from .registry import (DISABLE_ENV, check_disabled, check_reference_kernels, get_registry,
                       run_schema)
from .run_config import RunConfig


class RegistryChoice(click.Choice):
    """A ``click.Choice`` whose choices are read from the plugin registry when first needed.

    ``click.Choice`` freezes its choices when the module is imported; reading them lazily lets a
    plugin installed later appear in ``--help``, in error messages and in shell completion.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return tuple(get_registry().names(self.kind))

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass




#: Environment variables with the same effect as ``--debug`` and ``--no-plugins``.
DEBUG_ENV = "CHARRNN_DEBUG"
NO_PLUGINS_ENV = "CHARRNN_DISABLE_PLUGINS"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


class Interrupted(Exception):
    """Ctrl-C inside a command, carried past Click (which would print "Aborted.") to main."""


class CharrnnGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


@click.group(cls=CharrnnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", package_name=DISTRIBUTION, prog_name="charrnn")
@click.option("--debug", is_flag=True, expose_value=False,
              help=f"Show the full traceback of an error, for a bug report (or set {DEBUG_ENV}=1).")
@click.option("--no-plugins", is_flag=True, expose_value=False,
              help="Run with charrnn's built-in plugins only, leaving out every third-party one "
                   f"(or set {NO_PLUGINS_ENV}=1).")
@click.option("--disable", multiple=True, expose_value=False, metavar="NAME",
              help="Leave out the plugin NAME (its entry point's name, as charrnn plugins lists "
                   f"it), built-in or not; repeat for more (or set {DISABLE_ENV}=a,b).")
def cli() -> None:
    """Train character-level recurrent networks that write text."""


class CheckedType:
    """Conversion by the run schema (:meth:`charrnn.Option.check`), so that the command line
    and ``charrnn.train`` accept and refuse the same values with the same words; the Click
    type it is mixed into only renders help and completes choices."""

    option: Option
    schema: Schema

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        try:
            return self.schema.check_value(self.option, value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)  # type: ignore[attr-defined]


class CheckedInt(CheckedType, click.IntRange):
    pass


class CheckedFloat(CheckedType, click.FloatRange):
    name = "float"


class CheckedChoice(CheckedType, RegistryChoice):
    def __init__(self, option: Option, schema: Schema) -> None:
        self.option, self.schema = option, schema
        super().__init__(option.registry or "")

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return tuple(self.schema.choices(self.option) or ())

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass


class CheckedText(CheckedType, click.ParamType):
    name = "text"


def click_option(option: Option, schema: Schema) -> click.Option:
    """The ``charrnn run`` option for one schema entry."""
    attrs: Dict[str, Any] = dict(help=option.help, show_default=option.show_default,
                                 default=option.default, metavar=option.metavar)
    if option.is_flag:
        decls = [f"{option.flag}/--no-{option.flag[2:]}" if option.default else option.flag]
        return click.Option(decls, is_flag=True, **{**attrs, "default": bool(option.default)})
    if option.type is int or option.type is float:
        kind = CheckedInt if option.type is int else CheckedFloat
        ptype: click.ParamType = kind(min=option.min, max=option.max, min_open=option.min_open,
                                      max_open=option.max_open)
    elif option.choices is not None or option.registry is not None:
        ptype = CheckedChoice(option, schema)
    else:
        ptype = CheckedText()
    ptype.option, ptype.schema = option, schema  # type: ignore[attr-defined]
    return click.Option([option.flag, option.name], type=ptype, **attrs)


class RunCommand(click.Command):
    """``charrnn run``: its options generated from the run schema, the core's and those plugins
    add through ``add_run_options`` (read from the registry on first use, so that they appear in
    ``--help`` and shell completion like the core's)."""

    #: The registry the options were generated from.
    _options_from: Any = None

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        from .presets import preset_argv, preset_value

        given = preset_value(args)
        preset = preset_argv(given) if given is not None else []
        try:
            return super().parse_args(ctx, preset + list(args))
        except click.UsageError as exc:
            message = exc.format_message()
            named = {a.split("=", 1)[0] for a in preset if a.startswith("--")}
            typed = {a.split("=", 1)[0] for a in args if a.startswith("--")}
            if any(f"'{name}'" in message for name in named - typed):  # where the bad value is
                raise click.UsageError(f"{message} (from --preset {given})", ctx) from None
            raise

    def get_params(self, ctx: click.Context) -> List[click.Parameter]:
        registry = get_registry()
        if self._options_from is not registry:  # first use, or the plugins were loaded again
            self._options_from = registry
            schema = run_schema()
            self.params = [click_option(option, schema) for option in schema]
        return super().get_params(ctx)


@cli.command(cls=RunCommand)
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Train a character-level model on a text, printing progress and samples."""
    from .api import train_config
    from .stops import Stop

    explicit = [name for name in options
                if ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,
                                                      click.core.ParameterSource.ENVIRONMENT)]
    # Checked already, and the preset's options are in the arguments: only assembled here.
    config = RunConfig(options, explicit=explicit, _expand_preset=False)
    done = train_config(config)
    kind = getattr(done.stop_reason, "kind", None)
    if kind is Stop.INTERRUPTED:
        click.echo(f"continue with: charrnn run --resume {done.directory}", err=True)
        raise SystemExit(128 + int(done.interrupt_signal or signal.SIGINT))
    if kind is Stop.TIME_LIMIT:
        click.echo(f"continue with: charrnn run --resume {done.directory} --time-limit SECONDS "
                   "(a larger total)")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List what is installed, what cannot run here, and what failed to load.

    Backends, models, optimizers, callbacks and presets, each with the distribution that ships
    it; a backend that cannot compute on this machine (CuPy without a GPU) says why and how to
    fix it.
    """
    reg = get_registry()
    run.get_params(click.get_current_context())  # records plugin options that clash with run's
    rows: List[Dict[str, Any]] = []
    for kind in reg.KINDS:
        for name in reg.names(kind):
            item = reg.items[kind][name]
            rows.append({"kind": kind, "name": name, "distribution": item.plugin.distribution,
                         "version": item.plugin.version, "entry_point": item.plugin.name})
            if kind == "preset":
                rows[-1].update(args=item.obj.args, help=item.obj.help)
            if kind == "backend":  # installed is not runnable: CuPy without a GPU, say
                rows[-1]["unavailable"] = _unavailable_reason(item.obj)
    failed = [{"entry_point": p.name, "value": p.value, "distribution": p.distribution,
               "version": p.version, "error": p.error} for p in reg.failures]
    kernels = [{"operation": op, "backend": be, "from": origin}
               for op, be, origin in reg.kernels.pairs()]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "kernels": kernels, "failed": failed,
                               "deprecated": list(reg.deprecations)}, indent=2))
        return
    for kind in reg.KINDS:
        click.echo(f"{kind}s:")
        for row in (r for r in rows if r["kind"] == kind):
            click.echo(f"  {row['name']:<14} {row['distribution']} {row['version']}"
                       f"  (entry point {row['entry_point']})")
            if row.get("unavailable"):
                click.echo(f"  {'':<14} cannot run here: {row['unavailable']}")
            if kind == "preset":  # what it stands for, so a user can read a recipe before use
                click.echo(f"  {'':<14} {row['help']}\n  {'':<14} {row['args']}")
    if kernels:  # the operations a backend runs faster than their reference
        click.echo("kernels:")
        for k in kernels:
            click.echo(f"  {k['operation'] + ' on ' + k['backend']:<24} {k['from']}")
    if failed:
        click.echo("failed to load:")
        for f in failed:
            click.echo(f"  {f['entry_point']:<14} {f['distribution']} {f['version']}: {f['error']}")
    if reg.deprecations:
        click.echo("deprecated interfaces in use:")
        for note in reg.deprecations:
            click.echo(f"  {note}")


def _unavailable_reason(backend_cls: Any) -> Optional[str]:
    """Why a registered backend cannot compute here (with the fix), or None when it can."""
    from .errors import BackendUnavailable

    try:
        backend_cls.check_available()
    except BackendUnavailable as exc:
        return str(exc)
    except Exception as exc:  # a third-party probe that fails is itself the answer
        return f"its availability check failed: {type(exc).__name__}: {exc}"
    return None


@cli.command("conformance", context_settings={"ignore_unknown_options": True})
@click.option("--backend", "backend_name", type=RegistryChoice("backend"), required=True,
              help="Registered backend to check against the NumPy reference.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def conformance_cmd(ctx: click.Context, backend_name: str, pytest_args: Sequence[str]) -> None:
    """Check a backend against the NumPy reference with the conformance suite.

    PYTEST_ARGS go to pytest, e.g. charrnn conformance --backend cupy -- -x -k softmax
    """
    from .conformance import run_conformance

    ctx.exit(run_conformance(backend_name, list(pytest_args)))


def _global_flags(argv: List[str]) -> List[str]:
    """The options given before the subcommand (``charrnn --debug run ...``): they must act
    before Click parses anything, since the plugins are loaded to build the command table.
    ``--disable NAME`` is kept as one ``--disable=NAME``."""
    flags: List[str] = []
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            break
        if arg == "--disable":
            arg = f"--disable={next(args, '')}"
        flags.append(arg)
    return flags


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _one_line_deprecations() -> None:
    """A deprecation found while the command runs (a plugin calling a 0.5 method) is one
    ``Deprecated:`` line too, not Python's two-line warning."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FutureWarning) and str(message).startswith("Backend."):
            click.echo(f"Deprecated: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: Optional[List[str]] = None, prog_name: str = "charrnn") -> None:
    """Console-script entry point: runs the group and turns every failure into one line.

    Errors a user can fix say what to do; operating-system errors (a full disk, a read-only
    place, permissions) name the file; anything else is reported as a bug in one line. With
    ``--debug`` or ``CHARRNN_DEBUG=1`` the traceback is shown instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    flags = _global_flags(args)
    debug = "--debug" in flags or _env_flag(DEBUG_ENV)
    before = (os.environ.get(NO_PLUGINS_ENV), os.environ.get(DISABLE_ENV))
    if "--no-plugins" in flags:
        os.environ[NO_PLUGINS_ENV] = "1"
    disabled = [f.split("=", 1)[1] for f in flags if f.startswith("--disable=")]
    if disabled:
        names = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n] + disabled
        os.environ[DISABLE_ENV] = ",".join(names)
    try:
        try:
            check_disabled(disabled)
        except CharrnnError:  # refused: the environment is left as it was found
            for name, value in zip((NO_PLUGINS_ENV, DISABLE_ENV), before):
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            raise
        if (os.environ.get(NO_PLUGINS_ENV), os.environ.get(DISABLE_ENV)) != before:
            get_registry(refresh=True)  # the plugins this command runs with
        registry = get_registry()
        check_reference_kernels()
        registry.add_commands(cli)
        for note in registry.deprecations:  # one line each, naming the replacement
            click.echo(f"Deprecated: {note}", err=True)
        _one_line_deprecations()
        # Without standalone mode Click returns, rather than raises, a subcommand's exit code.
        code = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo("Interrupted." if interrupted else "Aborted.", err=True)
        sys.exit(130)
    except Interrupted:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _fail(f"{exc.format_message()}{hint}", exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except CharrnnError as exc:
        if debug:
            raise
        _fail(" ".join(str(exc).split()), exc.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except OSError as exc:
        if debug:
            raise
        _fail(os_error_message(exc), 1)
    except MemoryError:
        if debug:
            raise
        _fail("out of memory; pass a smaller --hidden, --layers or --batch-size, or free some "
              "memory", 1)
    except RecursionError:
        if debug:
            raise
        _fail("internal error: maximum recursion depth exceeded; please report it with the "
              "traceback that --debug shows", 1)
    except Exception as exc:
        if debug:
            raise
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        _fail(f"internal error ({detail}){where}; this is a bug: please report it with the "
              f"traceback that 'charrnn --debug ...' (or {DEBUG_ENV}=1) shows", 1)
