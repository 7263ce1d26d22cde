"""The run schema: every option a run has, whichever way it is given.

An :class:`Option` describes one setting: its type, default, range, help text and whether a
resumed run may change it. The core declares its own (:mod:`charrnn.run_options`); plugins add
theirs through the ``add_run_options`` hook. Everything else is generated from that one list:
the ``charrnn run`` command line, the checks of :class:`~charrnn.run_config.RunConfig`
(``charrnn.train(hidden=-1)`` is refused with the message the command line prints), the resume
rules, ``config.json``, the check of a checkpoint's saved configuration and the options a sweep
may search.

Plain dataclasses with checks written here, rather than a validation library: the schema is built
at run time from whatever plugins are installed, its few types (whole numbers, finite numbers in a
range, choices, flags, text) need a few lines each, and ``import charrnn`` stays free of a
dependency that would cost more to import than the whole core.
"""
from __future__ import annotations

import difflib
import math
import os
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


    def describe_range(self) -> str:
        """The range as Click writes it: ``x>=1``, ``0<=x<1``."""
        if self.min is None:
            return f"x{'<' if self.max_open else '<='}{_number(self.max)}"
        if self.max is None:
            return f"x{'>' if self.min_open else '>='}{_number(self.min)}"
        return (f"{_number(self.min)}{'<' if self.min_open else '<='}x"
                f"{'<' if self.max_open else '<='}{_number(self.max)}")

    def check(self, value: Any, choices: Optional[Sequence[str]] = None) -> Any:
        """``value`` (a Python value, or text as typed) as this option's type, or
        :class:`ValueError` with the reason, worded as the command line words it. ``choices``
        are the names of a ``registry`` kind (the schema passes those installed)."""
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
            if isinstance(value, os.PathLike):  # a pathlib.Path for --data, --out, --resume
                value = os.fspath(value)
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not text.")
            choices = self.choices if choices is None else choices
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
    """The options of a run by name: the core's, then each plugin's in registration order.

    ``names_of(kind)`` lists the plugins of a kind (``"backend"``, ...) that an option with
    ``registry=kind`` may name.
    """

    def __init__(self, options: Iterable[Option],
                 names_of: Optional[Callable[[str], Sequence[str]]] = None) -> None:
        self.names_of = names_of
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
            return self.check_value(self.options[name], value)
        except ValueError as exc:
            raise InvalidOption(f"Invalid value for '{flag_name(name)}': {exc}") from None

    def choices(self, option: Option) -> Optional[Tuple[str, ...]]:
        """The values a choice may take: its own list, or the installed plugins of its kind."""
        if option.registry is not None and self.names_of is not None:
            return tuple(self.names_of(option.registry))
        return option.choices

    def check_value(self, option: Option, value: Any) -> Any:
        """``value`` checked by ``option`` (:class:`ValueError` otherwise)."""
        return option.check(value, self.choices(option))

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


def with_origin(option: Option, origin: str) -> Option:
    return replace(option, origin=origin)
