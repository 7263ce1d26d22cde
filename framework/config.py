"""The run configuration: one schema of every ``charrnn run`` option, and the checked values of a run.

An :class:`Option` describes one setting: its type, default, range, help text and whether a
resumed run may change it. The core declares its own (:mod:`charrnn.run_options`); plugins add
theirs through the ``add_run_options`` hook. Everything else is generated from that one list: the
``charrnn run`` command line, the checks of :class:`RunConfig` (``charrnn.train(hidden=-1)`` is
refused with the message the command line prints), the resume rules, ``config.json``, the check
of a checkpoint's saved configuration and the options a sweep may search.

Plain dataclasses with checks written here, rather than a validation library: the schema is built
at run time from whatever plugins are installed, its few types (whole numbers, finite numbers in a
range, choices, flags, text) need a few lines each, and ``import charrnn`` stays free of a
dependency that would cost more to import than the whole core.
"""
from __future__ import annotations

import difflib
import math
import shlex
from dataclasses import dataclass, field, replace
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple)

from .errors import InvalidOption

#: Words a flag given as text (``--set report=no``, a preset file) may take.
TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")
FALSE_WORDS = ("0", "false", "f", "no", "n", "off")


def flag_name(name: str) -> str:
    """``--seq-length`` for ``seq_length``."""
    return "--" + name.replace("_", "-")


def _number(value: float) -> str:
    """A bound as Click writes it (``0`` not ``0.0`` for a whole number)."""
    return str(int(value)) if float(value).is_integer() and not isinstance(value, bool) else \
        repr(value)


@dataclass(frozen=True)
class Option:
    """One setting of a run.

    ``type`` is ``int``, ``float``, ``str`` or ``bool`` (a flag, ``--name/--no-name`` on the
    command line when ``default`` is True). ``choices`` limits a text to a list; ``registry``
    (``"backend"``, ``"model"``, ``"optimizer"``) limits it to the plugins of that kind installed.
    ``min``/``max`` bound a number (``min_open``/``max_open`` exclude the bound itself); floats
    are always finite. ``fixed_on_resume``: a resumed run may not change it (it shapes the model
    or the data, seeds a stream the checkpoint holds, or acts only when a run starts).
    ``saved``: part of the run's record (``config.json``, checkpoints); False for the settings of
    where and how one process runs (``out``, ``resume``, ``quiet``).
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    min_open: bool = False
    max_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    registry: Optional[str] = None
    fixed_on_resume: bool = False
    saved: bool = True
    metavar: Optional[str] = None
    show_default: bool = True
    #: Who declared it (``charrnn``, or a plugin's entry point), for messages.
    origin: str = "charrnn"
    #: A converter for options declared the pre-0.6 way with a Click parameter type whose kind
    #: is not one of the above: called as ``convert(value)``; raises ``ValueError`` to refuse.
    convert_with: Optional[Callable[[Any], Any]] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"option name {self.name!r} is not a Python identifier")
        if self.type not in (int, float, str, bool):
            raise ValueError(f"option {self.name!r}: type must be int, float, str or bool")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def flag(self) -> str:
        return flag_name(self.name)

    @property
    def is_flag(self) -> bool:
        return self.type is bool

    def choice_list(self) -> Optional[Tuple[str, ...]]:
        """The allowed values of a choice, read from the registry for a plugin kind."""
        if self.registry is not None:
            from .registry import get_registry

            return tuple(get_registry().names(self.registry))
        return self.choices

    def describe_range(self) -> str:
        """The range as Click writes it: ``x>=1``, ``0<=x<1``."""
        if self.min is None:
            return f"x{'<' if self.max_open else '<='}{_number(self.max)}"
        if self.max is None:
            return f"x{'>' if self.min_open else '>='}{_number(self.min)}"
        return (f"{_number(self.min)}{'<' if self.min_open else '<='}x"
                f"{'<' if self.max_open else '<='}{_number(self.max)}")

    def check(self, value: Any) -> Any:
        """``value`` (a Python value, or text as typed) as this option's type, or
        :class:`ValueError` with the reason, worded as the command line words it."""
        if value is None:
            return None
        if self.convert_with is not None:
            return self.convert_with(value)
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
                return value.strip().lower() in TRUE_WORDS
            raise ValueError(f"{value!r} is not a valid boolean.")
        if self.type is int:
            number = self._int(value)
        elif self.type is float:
            number = self._float(value)
        else:
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not text.")
            choices = self.choice_list()
            if choices is not None and value not in choices:
                listed = ", ".join(repr(c) for c in choices)
                raise ValueError(f"{value!r} is not one of {listed}.")
            return value
        self._in_range(number)
        return number

    def _int(self, value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a valid integer.")
        if isinstance(value, (int, float)):
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a valid integer.") from None

    def _float(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a valid float.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a valid float.") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number; pass an ordinary number such "
                             "as 0.1")
        return number

    def _in_range(self, number: float) -> None:
        low_bad = self.min is not None and (number < self.min or self.min_open and
                                            number == self.min)
        high_bad = self.max is not None and (number > self.max or self.max_open and
                                             number == self.max)
        if low_bad or high_bad:
            raise ValueError(f"{number} is not in the range {self.describe_range()}.")

    def to_text(self, value: Any) -> str:
        """``value`` as it would be typed after the flag (the inverse of :meth:`check`)."""
        return repr(value) if isinstance(value, float) else str(value)


class Schema:
    """The options of a run by name: the core's, then each plugin's in registration order."""

    def __init__(self, options: Iterable[Option]) -> None:
        self.options: Dict[str, Option] = {}
        for option in options:
            self.options.setdefault(option.name, option)

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options.values())

    def __contains__(self, name: object) -> bool:
        return name in self.options

    def __getitem__(self, name: str) -> Option:
        return self.options[name]

    def names(self) -> List[str]:
        return list(self.options)

    def defaults(self) -> Dict[str, Any]:
        return {o.name: o.default for o in self}

    def fixed_on_resume(self) -> Tuple[str, ...]:
        return tuple(o.name for o in self if o.fixed_on_resume)

    def not_saved(self) -> Tuple[str, ...]:
        return tuple(o.name for o in self if not o.saved)

    def unknown(self, name: str) -> InvalidOption:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; see charrnn run --help"
        return InvalidOption(f"No such option: {flag_name(name)} ({name}=){hint}")

    def check(self, name: str, value: Any) -> Any:
        """``value`` for option ``name``, checked; :class:`InvalidOption` otherwise."""
        if name not in self.options:
            raise self.unknown(name)
        try:
            return self.options[name].check(value)
        except ValueError as exc:
            raise InvalidOption(f"Invalid value for '{flag_name(name)}': {exc}") from None

    def parse_argv(self, argv: Sequence[str], where: str = "") -> Dict[str, Any]:
        """Values from ``charrnn run`` arguments (a preset's), checked: ``--hidden 256``,
        ``--hidden=256``, ``--quiet``, ``--no-plot``."""
        values: Dict[str, Any] = {}
        args = list(argv)
        suffix = f" (from {where})" if where else ""
        while args:
            arg = args.pop(0)
            if not arg.startswith("--"):
                raise InvalidOption(f"unexpected argument {arg!r}{suffix}; options are written "
                                    "--name value")
            text, sep, inline = arg[2:].partition("=")
            name = text.replace("-", "_")
            if name not in self.options and name.startswith("no_") and \
                    self.options.get(name[3:], Option("x")).is_flag and not sep:
                values[name[3:]] = False
                continue
            if name not in self.options:
                raise InvalidOption(f"{self.unknown(name)}{suffix}")
            option = self.options[name]
            if option.is_flag and not sep:
                values[name] = True
                continue
            if not sep:
                if not args:
                    raise InvalidOption(f"Option '{option.flag}' requires an argument{suffix}.")
                inline = args.pop(0)
            try:
                values[name] = self.check(name, inline)
            except InvalidOption as exc:
                raise InvalidOption(f"{exc}{suffix}") from None
        return values

    def to_argv(self, values: Mapping[str, Any]) -> List[str]:
        """``charrnn run`` arguments that set ``values`` (the inverse of :meth:`parse_argv`)."""
        argv: List[str] = []
        for name, value in values.items():
            option = self.options[name]
            if option.is_flag:  # --name, or --no-name for a flag that is on by default
                if value:
                    argv.append(option.flag)
                elif option.default:
                    argv.append(f"--no-{option.flag[2:]}")
            elif value is not None:
                argv += [option.flag, option.to_text(value)]
        return argv


def run_schema() -> Schema:
    """The options of ``charrnn run`` with the plugins installed now."""
    from .registry import get_registry
    from .run_options import CORE_OPTIONS

    return Schema([*CORE_OPTIONS, *get_registry().run_options])


class RunConfig(Mapping[str, Any]):
    """Every option of one run, checked against the schema, defaults filled in.

    Read it as a mapping (``config["hidden"]``, what callbacks' ``from_options`` receive) or by
    attribute (``config.hidden``). ``explicit`` names the options that were given rather than
    defaulted: a resume applies those and keeps the run's own values for the rest.

    >>> RunConfig(hidden=256, model="lstm").hidden
    256
    """

    # Core options, for readers and type checkers; plugin options are read the same way.
    backend: str
    model: str
    optimizer: str
    data: Optional[str]
    hidden: int
    layers: int
    seq_length: int
    batch_size: int
    eta: Optional[float]
    iterations: Optional[int]
    time_limit: Optional[float]
    seed: int
    dtype: str
    out: Optional[str]
    resume: Optional[str]
    val_frac: float

    def __init__(self, values: Optional[Mapping[str, Any]] = None, /, *,
                 schema: Optional[Schema] = None, explicit: Optional[Iterable[str]] = None,
                 _expand_preset: bool = True, _keep_unknown: bool = False,
                 **options: Any) -> None:
        schema = schema if schema is not None else run_schema()
        given = {**dict(values or {}), **options}
        preset: Dict[str, Any] = {}
        if _expand_preset and given.get("preset") is not None:
            from .presets import preset_argv

            name = schema.check("preset", given["preset"])
            preset = schema.parse_argv(preset_argv(name), where=f"--preset {name}")
        checked = {name: value if _keep_unknown and name not in schema else
                   schema.check(name, value) for name, value in given.items()}
        merged = {**schema.defaults(), **preset, **checked}
        self._schema = schema
        self._values: Dict[str, Any] = merged
        named = set(given) | set(preset) if explicit is None else set(explicit) | set(preset)
        self.explicit: frozenset = frozenset(named)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"RunConfig has no option {name!r}") from None

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={self._values[k]!r}" for k in sorted(self.explicit))
        return f"RunConfig({given})"

    @property
    def schema(self) -> Schema:
        return self._schema

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (and counted as given)."""
        base = {k: v for k, v in self._values.items() if k in self.explicit}
        return RunConfig({**base, **changes}, schema=self._schema,
                         explicit=self.explicit | set(changes), _expand_preset=False,
                         _keep_unknown=True)

    def to_dict(self) -> Dict[str, Any]:
        return dict(self._values)

    def saved(self) -> Dict[str, Any]:
        """What a run records of itself (``config.json``, checkpoints): all but the settings of
        the process (``out``, ``resume``, ``quiet``)."""
        skip = set(self._schema.not_saved())
        return {k: v for k, v in self._values.items() if k not in skip}

    def command_line(self) -> str:
        """The ``charrnn run`` command that gives this configuration (its given options)."""
        values = {k: self._values[k] for k in self._schema.names()
                  if k in self.explicit and k != "preset"}
        return " ".join(shlex.quote(a) for a in ["charrnn", "run", *self._schema.to_argv(values)])


def checked_saved(schema: Schema, saved: Mapping[str, Any]) -> Dict[str, Any]:
    """A saved configuration (a checkpoint's) with each value the schema knows checked as the
    command line would check it; an unknown name (a plugin no longer installed) passes."""
    out = dict(saved)
    for name, value in saved.items():
        if name in schema and value is not None and schema[name].saved:
            out[name] = schema.check(name, value)
    return out


def with_origin(option: Option, origin: str) -> Option:
    return replace(option, origin=origin)
