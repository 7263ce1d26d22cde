"""The checked configuration of one run: :class:`RunConfig`, read against the run schema of the
plugins installed now."""
from __future__ import annotations

import shlex
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

from .config import Schema
from .registry import run_schema


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


