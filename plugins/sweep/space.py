"""A sweep's search space: which ``charrnn run`` options are fixed and which Optuna chooses.

Written on the command line or in a file, one entry per ``--set`` or ``--param``::

    --set model=lstm                 fixed for every trial
    --param hidden=128,256,512       a choice
    --param eta=log:1e-4:1e-2        a range on a log scale
    --param dropout=0:0.5            a range (whole numbers for an integer option)

Every name is checked against the options ``charrnn run`` really has (its plugins' included) and
every value against that option's own type, before any trial starts: a typo would otherwise cost
a whole sweep of identical runs.
"""
from __future__ import annotations

import math
import os
import shlex
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from charrnn.config import Option, Schema
from charrnn.errors import CharrnnError

#: Options a sweep sets itself, or that would change what the trials are compared on.
RESERVED = {
    "out": "each trial's run directory is chosen by the sweep",
    "resume": "the sweep resumes its own trials",
    "quiet": "trials always run quietly",
    "preset": "spell the preset's options out with --set",
    "iterations": "pass the per-trial budget as charrnn sweep --iterations",
    "time_limit": "pass the per-trial budget as charrnn sweep --time-limit",
}
#: Fixed with --set only: varying them would change what the validation loss measures.
SET_ONLY = {"val_frac", "data", "encoding"}


@dataclass
class Param:
    """One dimension Optuna chooses: ``kind`` is ``choice``, ``float``, ``int``."""

    name: str
    kind: str
    choices: Tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.kind == "choice":
            return ",".join(str(c) for c in self.choices)
        return f"{'log:' if self.log else ''}{self.low:g}:{self.high:g}"


@dataclass
class Space:
    fixed: Dict[str, Any] = field(default_factory=dict)
    params: List[Param] = field(default_factory=list)

    def names(self) -> List[str]:
        return list(self.fixed) + [p.name for p in self.params]


def run_options() -> Schema:
    """``charrnn run``'s options, those its plugins add included."""
    from charrnn.registry import run_schema

    return run_schema()


def _option(name: str, options: Schema, how: str) -> Tuple[str, Option]:
    key = name.strip().lstrip("-").replace("-", "_")
    if not key:
        raise CharrnnError(f"{how} names no option; write {how} NAME=VALUE")
    if key not in options:
        raise CharrnnError(f"{how} {name}: charrnn run has no option --{key.replace('_', '-')}; "
                           "see charrnn run --help for the options a sweep can set")
    if key in RESERVED:
        raise CharrnnError(f"{how} {name}: {RESERVED[key]}")
    return key, options[key]


def _convert(options: Schema, option: Option, text: str, where: str) -> Any:
    """``text`` through the option's own type, as ``charrnn run`` would read it."""
    if option.is_flag:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise CharrnnError(f"{where}: {text!r} is not true or false")
    try:
        return options.check_value(option, text)
    except ValueError as exc:
        raise CharrnnError(f"{where}: {exc}") from None


def _is_int(option: Option) -> bool:
    return option.type is int


def parse_set(entry: str, options: Schema) -> Tuple[str, Any]:
    name, sep, value = entry.partition("=")
    if not sep:
        raise CharrnnError(f"--set {entry}: write --set NAME=VALUE, e.g. --set model=lstm")
    key, option = _option(name, options, "--set")
    return key, _convert(options, option, value, f"--set {entry}")


def parse_param(entry: str, options: Schema) -> Param:
    name, sep, spec = entry.partition("=")
    where = f"--param {entry}"
    if not sep or not spec:
        raise CharrnnError(f"{where}: write --param NAME=A,B,C (a choice), NAME=LOW:HIGH (a "
                           "range) or NAME=log:LOW:HIGH (a range on a log scale)")
    key, option = _option(name, options, "--param")
    if key in SET_ONLY:
        raise CharrnnError(f"{where}: --{key.replace('_', '-')} changes what the trials are "
                           "compared on; fix it with --set")
    if option.is_flag:
        values = [v for v in spec.split(",")]
        return Param(key, "choice", tuple(_convert(options, option, v, where) for v in values))
    parts = spec.split(":")
    log = parts[0].strip().lower() == "log"
    if log:
        parts = parts[1:]
    if len(parts) == 1 and not log:
        values = [v for v in parts[0].split(",")]
        if len(values) < 2:
            raise CharrnnError(f"{where}: one value is not a choice; fix it with --set "
                               f"{key.replace('_', '-')}={values[0]}, or give LOW:HIGH")
        choices = tuple(_convert(options, option, v, where) for v in values)
        if len(set(choices)) < len(choices):
            raise CharrnnError(f"{where}: a value appears twice")
        return Param(key, "choice", choices)
    if len(parts) != 2:
        raise CharrnnError(f"{where}: a range is LOW:HIGH or log:LOW:HIGH")
    low, high = (_convert(options, option, p, where) for p in parts)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise CharrnnError(f"{where}: --{key.replace('_', '-')} is not a number; give a choice "
                           "A,B,C instead")
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise CharrnnError(f"{where}: the range needs LOW < HIGH")
    if log and low <= 0:
        raise CharrnnError(f"{where}: a log range needs LOW > 0")
    if _is_int(option) and max(abs(low), abs(high)) > MAX_INT:
        raise CharrnnError(f"{where}: a whole-number range stays within -{MAX_INT} to "
                           f"{MAX_INT} (2**63 - 1, what Optuna's storage keeps)")
    return Param(key, "int" if _is_int(option) else "float", low=low, high=high, log=log)


#: The largest whole number a trial's value may be.
MAX_INT = 2**63 - 1
#: A space file is a few lines; anything larger is not one.
MAX_SPACE_BYTES = 2**20


def read_space_file(path: str) -> List[Tuple[str, str]]:
    """``(flag, entry)`` pairs from a file of ``--set``/``--param`` lines (``#`` comments)."""
    what = "pass a text file of --set and --param lines"
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a pipe would block, a device would be read without end
            raise CharrnnError(f"the space file {path} is not a regular file (a directory, "
                               f"device or pipe); {what}")
        if os.path.getsize(path) > MAX_SPACE_BYTES:
            raise CharrnnError(f"the space file {path} is larger than "
                               f"{MAX_SPACE_BYTES // 2**20} MiB; {what}")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CharrnnError(f"cannot read the space file {path} ({exc.strerror}); {what}") \
            from None
    except UnicodeDecodeError:
        raise CharrnnError(f"the space file {path} is not UTF-8 text; {what}") from None
    pairs: List[Tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise CharrnnError(f"{path}, line {number}: {exc}") from None
        while words:
            flag = words.pop(0)
            if flag not in ("--set", "--param") or not words:
                raise CharrnnError(f"{path}, line {number}: expected --set NAME=VALUE or "
                                   "--param NAME=SPEC")
            pairs.append((flag, words.pop(0)))
    return pairs


def build_space(sets: Sequence[str], params: Sequence[str], space_file: Optional[str],
                options: Schema) -> Space:
    entries = read_space_file(space_file) if space_file else []
    entries += [("--set", s) for s in sets] + [("--param", p) for p in params]
    space = Space()
    for flag, entry in entries:
        if flag == "--set":
            key, value = parse_set(entry, options)
            space.fixed.pop(key, None)
            space.params = [p for p in space.params if p.name != key]
            space.fixed[key] = value
        else:
            param = parse_param(entry, options)
            space.fixed.pop(param.name, None)
            space.params = [p for p in space.params if p.name != param.name] + [param]
    if not space.params:
        raise CharrnnError("the sweep has nothing to search; give at least one --param, e.g. "
                           "--param eta=log:1e-4:1e-2")
    if space.fixed.get("data") is not None:  # every trial would fail on it: refused now
        from charrnn.data import check_data_path

        check_data_path(str(space.fixed["data"]), str(space.fixed.get("encoding") or "utf-8"),
                        option="--set data")
    return space


def run_argv(values: Mapping[str, Any], options: Schema) -> List[str]:
    """``charrnn run`` arguments that set ``values`` (option name to value)."""
    return options.to_argv(values)


def command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
