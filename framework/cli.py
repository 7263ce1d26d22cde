"""The ``charrnn`` launcher: assembles a backend, an optimizer and callbacks from the registry.

Errors a user can fix are printed as one line (``Error: ...``) with a non-zero exit and no
traceback, whether they come from option parsing or from the run itself.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import click

from . import DISTRIBUTION, __version__
from .errors import CharrnnError, os_error_message
from .options import NON_NEGATIVE_FLOAT, POSITIVE_FLOAT, FiniteFloat
from .registry import get_registry


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
def cli() -> None:
    """Train character-level recurrent networks that write text."""


class RunCommand(click.Command):
    """``charrnn run``: its own options plus those callback plugins add through ``add_run_options``.

    Plugin options are read from the registry on first use, so they appear in ``--help`` and
    shell completion like the built-in ones.
    """

    #: The registry the plugin options were taken from, and the command's own options.
    _options_from: Any = None
    _own_params: Optional[List[click.Parameter]] = None

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
            if self._own_params is None:
                self._own_params = list(self.params)
            self.params = list(self._own_params)
            own = {p.name for p in self.params}
            for option in registry.run_options:
                if option.name in own:
                    option.plugin.error = (  # type: ignore[attr-defined]
                        f"option --{option.name} clashes with a built-in option; ignored")
                    continue
                self.params.append(option)
        return super().get_params(ctx)


@cli.command(cls=RunCommand)
@click.option("--preset", type=str, default=None, metavar="NAME|FILE",
              help="Start from a recipe: a registered preset (charrnn plugins lists them; "
                   "quick gives the best text in two minutes on a CPU) or a file of "
                   "options. Options typed after it win.")
@click.option("--backend", type=RegistryChoice("backend"), default="numpy", show_default=True,
              help="Array backend to compute with.")
@click.option("--model", type=RegistryChoice("model"), default="rnn", show_default=True,
              help="Model to train: rnn is the course's vanilla RNN; lstm and gru are char-rnn's "
                   "gated cells.")
@click.option("--optimizer", type=RegistryChoice("optimizer"), default="adagrad",
              show_default=True, help="Optimizer for the updates.")
@click.option("--data", type=str, default=None,
              help="Text file to train on [default: the Python language reference shipped with CPython].")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --data.")
@click.option("--hidden", type=click.IntRange(min=1), default=100, show_default=True,
              help="Hidden state size m (per layer).")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Recurrent layers stacked on each other.")
@click.option("--dropout", type=FiniteFloat(min=0, max=1, max_open=True), default=0.0,
              show_default=True,
              help="Probability of dropping each unit of a layer's output on its way up, during "
                   "training only (as in char-rnn).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Streams read in parallel: the text is cut into this many contiguous stripes, "
                   "each with its own hidden state.")
@click.option("--seq-length", type=click.IntRange(min=1), default=25, show_default=True,
              help="Characters per update and stream (back-propagation length).")
@click.option("--eta", type=POSITIVE_FLOAT, default=None,
              help="Learning rate [default: the optimizer's own: 0.1 for adagrad and sgd, 0.002 "
                   "for adam and rmsprop].")
@click.option("--clip", type=NON_NEGATIVE_FLOAT, default=5.0, show_default=True,
              help="Clip every gradient entry to [-clip, clip] before the update (0: no clip).")
@click.option("--clip-norm", type=POSITIVE_FLOAT, default=None, metavar="NORM",
              help="Scale the gradient down when its L2 norm exceeds NORM, measured per "
                   "predicted character (PyTorch's clip_grad_norm_ on a mean loss); applied "
                   "before --clip, so pair it with --clip 0 for the norm limit alone.")
@click.option("--sigma", type=POSITIVE_FLOAT, default=None,
              help="Standard deviation of the initial weights [default: the model's own: 0.01 "
                   "for rnn, 0.05 for lstm and gru].")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Number of updates [default: 100000, or no limit with --time-limit].")
@click.option("--time-limit", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="Stop after this many seconds of training (over the run's whole life, resumes "
                   "included), saving a checkpoint and the report.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for the initial weights and the dropout masks.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True, help="Floating-point precision.")
@click.option("--out", type=str, default=None,
              help="Run directory [default: runs/<date>-<time>].")
@click.option("--log-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Updates between progress lines.")
@click.option("--resume", type=str, default=None, metavar="RUN_DIR",
              help="Continue the run in RUN_DIR exactly where its latest checkpoint left off.")
@click.option("--val-frac", type=FiniteFloat(min=0, max=1, max_open=True), default=0.0,
              show_default=True, help="Fraction of the text, from its end, held out for validation.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Train a character-level model on a text, printing progress and samples."""
    from .session import start_run

    explicit = [name for name in options
                if ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,
                                                      click.core.ParameterSource.ENVIRONMENT)]
    start_run(options, explicit)


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
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failed": failed}, indent=2))
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
    if failed:
        click.echo("failed to load:")
        for f in failed:
            click.echo(f"  {f['entry_point']:<14} {f['distribution']} {f['version']}: {f['error']}")


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
    before Click parses anything, since the plugins are loaded to build the command table."""
    flags = []
    for arg in argv:
        if not arg.startswith("-"):
            break
        flags.append(arg)
    return flags


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(argv: Optional[List[str]] = None, prog_name: str = "charrnn") -> None:
    """Console-script entry point: runs the group and turns every failure into one line.

    Errors a user can fix say what to do; operating-system errors (a full disk, a read-only
    place, permissions) name the file; anything else is reported as a bug in one line. With
    ``--debug`` or ``CHARRNN_DEBUG=1`` the traceback is shown instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    flags = _global_flags(args)
    debug = "--debug" in flags or _env_flag(DEBUG_ENV)
    if "--no-plugins" in flags:
        os.environ[NO_PLUGINS_ENV] = "1"
    try:
        get_registry().add_commands(cli)
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
