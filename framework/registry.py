"""The plugin registry: entry points loaded one at a time, failures recorded, never fatal.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails to import, which
would let one broken third-party package take the whole launcher down. Here each entry point is
loaded on its own; a failure is recorded with its reason, shown by ``charrnn plugins``, and the
rest keep working.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pluggy

from . import DISTRIBUTION, hookspecs
from .config import Option, Schema, with_origin
from .kernels import KernelTable, legacy_overrides
from .legacy_options import legacy_option
from .run_options import CORE_OPTIONS

CORE_NAMES = frozenset(o.name for o in CORE_OPTIONS)

ENTRY_POINT_GROUP = "charrnn"


@dataclass
class PluginInfo:
    """One entry point of the ``charrnn`` group and where it came from."""

    name: str
    value: str
    distribution: str
    version: str
    error: Optional[str] = None
    provides: List[str] = field(default_factory=list)


@dataclass
class Registered:
    """A backend, model, optimizer or callback class, or a preset, and the plugin that registered it."""

    kind: str
    name: str
    obj: Any
    plugin: PluginInfo


class Registry:
    """Everything the installed plugins provide, read once per process."""

    KINDS = ("backend", "model", "optimizer", "callback", "preset", "operation")

    def __init__(self, pm: pluggy.PluginManager, plugins: List[PluginInfo]):
        self.pm = pm
        self.plugins = plugins
        self.items: Dict[str, Dict[str, Registered]] = {k: {} for k in self.KINDS}
        #: The options plugins add to a run (:class:`charrnn.Option`), in registration order.
        self.run_options: List[Option] = []
        #: One line per plugin still using an interface that is going away, naming the new one.
        self.deprecations: List[str] = []
        self._by_name = {p.name: p for p in plugins}
        for kind in self.KINDS:
            self._call_each(f"register_{kind}s",
                            lambda info, kind=kind: {"register": self._register_fn(kind, info)})
        self._call_each("add_run_options", lambda info: {"add_option": self._add_option_fn(info)})
        #: Kernels by (operation, backend): :class:`charrnn.kernels.KernelTable`.
        self.kernels = KernelTable()
        self._call_each("register_kernels", lambda info: {"register": self._kernel_fn(info)})

    def _call_each(self, hook: str, make_kwargs: Callable[[PluginInfo], Dict[str, Any]],
                   after: Optional[Callable[[PluginInfo], None]] = None) -> None:
        """Call each implementation of ``hook`` on its own, with arguments made for its plugin.

        What a plugin registers is then attributed to the plugin (and distribution) it came
        from, and a plugin that raises is recorded instead of aborting the others. Following
        pluggy's calling convention, an implementation gets only the arguments it names
        (``impl.argnames``), so one written against fewer arguments than the specification has
        keeps working.
        """
        for impl in sorted(getattr(self.pm.hook, hook).get_hookimpls(), key=self._precedence):
            info = self._by_name.get(impl.plugin_name) or PluginInfo(
                impl.plugin_name, repr(impl.plugin), "unknown", "unknown"
            )
            try:
                kwargs = make_kwargs(info)
                impl.function(**{name: kwargs[name] for name in impl.argnames})
                if after is not None:
                    after(info)
            except Exception as exc:  # a plugin's own bug must not stop the launcher
                info.error = _one_line(exc)

    def _precedence(self, impl: Any) -> Tuple[int, int]:
        """charrnn's own plugins first, then others in the order they were found.

        The first registration of a name wins, so a third-party package can add a backend but
        cannot silently replace a built-in one.
        """
        names = list(self._by_name)
        info = self._by_name.get(impl.plugin_name)
        own = info is not None and info.distribution == DISTRIBUTION
        index = names.index(impl.plugin_name) if impl.plugin_name in self._by_name else len(names)
        return (0 if own else 1, index)

    def _add_option_fn(self, info: PluginInfo) -> Callable[..., None]:
        def add_option(*args: Any, **attrs: Any) -> None:
            if len(args) == 1 and isinstance(args[0], Option) and not attrs:
                option = with_origin(args[0], info.name)
            else:  # the 0.5 form: click.Option's arguments
                option = legacy_option(args, attrs, info.name)
                note = (f"plugin {info.name!r} of {info.distribution} declares --"
                        f"{option.name.replace('_', '-')} with click.Option's arguments, which "
                        "is deprecated; pass add_option(charrnn.Option(...)) instead")
                if note not in self.deprecations:
                    self.deprecations.append(note)
            if option.name in CORE_NAMES:
                info.error = f"option {option.flag} clashes with a built-in option; ignored"
                return
            if option.name in {o.name for o in self.run_options}:
                info.error = f"option {option.flag} is already defined; this one was ignored"
                return
            self.run_options.append(option)

        return add_option

    def add_commands(self, cli: Any) -> None:
        """Let each plugin add its subcommands to the launcher's group, recording which plugin
        added which (``command:NAME`` in its ``provides``)."""
        known = set(cli.commands)

        def record(info: PluginInfo) -> None:
            added = sorted(set(cli.commands) - known)
            info.provides.extend(f"command:{name}" for name in added)
            known.update(added)

        self._call_each("register_commands", lambda info: {"cli": cli}, after=record)

    def _kernel_fn(self, info: PluginInfo) -> Callable[..., None]:
        def register(operation: str, backend: str, kernel: Callable[..., Any]) -> None:
            ignored = self.kernels.add(operation, backend, kernel,
                                       f"{info.name} ({info.distribution})")
            if ignored:
                info.error = ignored
            else:
                info.provides.append(f"kernel:{operation}@{backend}")

        return register

    def _register_fn(self, kind: str, info: PluginInfo) -> Callable[[Any], None]:
        def register(obj: Any) -> None:
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise TypeError(f"{obj!r} has no 'name' attribute to register it under")
            table = self.items[kind]
            if name in table:
                other = table[name].plugin
                info.error = (
                    f"{kind} {name!r} is already provided by {other.distribution}; "
                    "this one was ignored"
                )
                return
            table[name] = Registered(kind, name, obj, info)
            info.provides.append(f"{kind}:{name}")
            if kind == "backend":
                self._note_legacy_backend(obj, info)

        return register

    def _note_legacy_backend(self, cls: Any, info: PluginInfo) -> None:
        try:
            overridden = legacy_overrides(cls)
        except Exception:  # not a class at all: the launcher refuses it when chosen
            return
        if overridden:
            methods = ", ".join(sorted(overridden))
            self.deprecations.append(
                f"backend {cls.name!r} of {info.distribution} overrides {methods} (the 0.5 "
                "interface, still used as its kernels); register kernels for the operations "
                f"{', '.join(sorted(set(overridden.values())))} with the register_kernels hook "
                "instead")

    def names(self, kind: str) -> List[str]:
        return sorted(self.items[kind])

    def get(self, kind: str, name: str) -> Any:
        return self.items[kind][name].obj

    def origin(self, kind: str, name: str) -> str:
        """Who provides ``name``: its entry point and distribution, for messages about it."""
        info = self.items[kind][name].plugin
        return f"plugin {info.name!r} of {info.distribution} {info.version}"

    def report_sections(self, trainer: Any) -> List[Any]:
        """Every plugin's report sections for ``trainer``'s run, in their order. A plugin that
        fails gets a section that names it, and the others are kept."""
        from .reporting import ReportSection

        sections: List[Any] = []

        def collect(result: Any) -> None:
            for item in result if isinstance(result, (list, tuple)) else [result]:
                if isinstance(item, ReportSection):
                    sections.append(item)

        for impl in sorted(self.pm.hook.report_sections.get_hookimpls(), key=self._precedence):
            info = self._by_name.get(impl.plugin_name)
            name = info.name if info else impl.plugin_name
            try:
                kwargs = {"trainer": trainer}
                collect(impl.function(**{n: kwargs[n] for n in impl.argnames}))
            except Exception as exc:  # one plugin's bug must not cost the report
                owner = f" of {info.distribution} {info.version}" if info else ""
                sections.append(ReportSection(
                    f"Plugin {name}", f"The plugin {name!r}{owner} could not write its section "
                    f"({_one_line(exc)}).\n", order=1000))
        return sorted(sections, key=lambda s: s.order)

    def run_schema(self) -> Schema:
        """The options of ``charrnn run``: the core's, then those plugins added."""
        return Schema([*CORE_OPTIONS, *self.run_options], names_of=installed)

    def callbacks(self) -> List[Any]:
        """Callback classes in run order (their ``order`` attribute, then name)."""
        regs = self.items["callback"].values()
        return [r.obj for r in sorted(regs, key=lambda r: (getattr(r.obj, "order", 0), r.name))]

    @property
    def failures(self) -> List[PluginInfo]:
        return [p for p in self.plugins if p.error]


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())


def _load_entry_points(pm: pluggy.PluginManager) -> List[PluginInfo]:
    infos: List[PluginInfo] = []
    seen = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        info = PluginInfo(ep.name, ep.value, dist_name, version)
        if plugins_disabled() and dist_name != DISTRIBUTION:
            continue  # --no-plugins / CHARRNN_DISABLE_PLUGINS: built-ins only
        if ep.name in disabled_names():
            continue  # --disable NAME / CHARRNN_DISABLE: this one left out, built-in or not
        infos.append(info)
        if pm.get_plugin(ep.name) is not None:
            info.error = f"entry point name {ep.name!r} is already taken by another plugin"
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # import errors, syntax errors, bad hook signatures...
            info.error = _one_line(exc)
    return infos


def plugins_disabled() -> bool:
    """Whether third-party plugins are left out (``--no-plugins`` sets the variable too)."""
    value = os.environ.get("CHARRNN_DISABLE_PLUGINS", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


#: Entry points to leave out, by name, comma-separated (what ``charrnn --disable NAME`` sets).
DISABLE_ENV = "CHARRNN_DISABLE"


def check_disabled(given: Sequence[str] = ()) -> None:
    """Refuse a ``--disable`` (``given``, or ``CHARRNN_DISABLE``) name that is empty or that no
    installed plugin has: a typo would otherwise leave the plugin it meant in the run without a
    word."""
    from .errors import CharrnnError

    raw = os.environ.get(DISABLE_ENV, "")
    if any(not n.strip() for n in given) or raw and any(not n.strip() for n in raw.split(",")):
        raise CharrnnError("--disable is given an empty name; pass a plugin's name, as charrnn "
                           "plugins lists it")
    known = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name in disabled_names():
        if name not in known:
            raise CharrnnError(f"--disable {name}: no installed plugin is named {name}; "
                               "charrnn plugins lists them")


def check_reference_kernels() -> None:
    """Refuse a ``CHARRNN_REFERENCE_KERNELS`` name that no installed plugin defines as an
    operation: a typo would otherwise leave the kernel it meant running without a word."""
    from .errors import CharrnnError
    from .kernels import forced_reference

    known = set(get_registry().items["operation"])
    for name in sorted(forced_reference() - {"all"}):
        if name not in known:
            raise CharrnnError(f"CHARRNN_REFERENCE_KERNELS names {name!r}, which no installed "
                               "plugin defines as an operation; charrnn plugins lists them")


def disabled_names() -> List[str]:
    """The plugins left out by name (``--disable lossplot``), built-in ones included: to run
    without one, or to prove that the others do without it."""
    return [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


_REGISTRY: Optional[Registry] = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, built on first use so that ``import charrnn`` stays cheap."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        pm = make_plugin_manager()
        infos = _load_entry_points(pm)
        _REGISTRY = Registry(pm, infos)
    return _REGISTRY


def run_schema() -> Schema:
    """The options of ``charrnn run`` with the plugins installed now."""
    return get_registry().run_schema()


def installed(kind: str) -> List[str]:
    """The names of the plugins of ``kind`` installed now (read at each call, so that a schema
    made before the plugins were loaded again still offers what is there)."""
    return get_registry().names(kind)
