"""Run options declared the 0.5 way, with ``click.Option``'s arguments, read into the schema.

``add_option("--sample-every", type=click.IntRange(min=1), default=10_000, help=...)`` keeps
working: the Click parameter type is read by what it exposes (its ``name``, bounds and choices),
without importing Click here, and the registry records a one-line deprecation naming
``add_option(charrnn.Option(...))``. A parameter type of another kind converts values itself.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

from .config import Option

#: Click's parameter type names, by the schema type they stand for.
_KINDS = {"integer": int, "integer range": int, "float": float, "float range": float,
          "text": str, "choice": str, "boolean": bool}


def _name(decls: Sequence[str]) -> str:
    """The Python name Click gives an option: an identifier among the declarations, else the
    first long flag (``--a-b/--no-a-b`` gives ``a_b``)."""
    for decl in decls:
        if decl.isidentifier():
            return decl
    longs = [d.split("/")[0] for d in decls if d.startswith("--")]
    flag = longs[0] if longs else decls[0].split("/")[0]
    return flag.lstrip("-").replace("-", "_")


def _converter(ptype: Any) -> Any:
    """A converter that calls the Click type's own ``convert`` and turns its refusal into the
    ``ValueError`` the schema expects."""
    def convert(value: Any) -> Any:
        try:
            return ptype.convert(value, None, None)
        except Exception as exc:
            message = getattr(exc, "format_message", None)
            raise ValueError(message() if callable(message) else str(exc)) from None

    return convert


def legacy_option(decls: Sequence[str], attrs: Dict[str, Any], origin: str) -> Option:
    """The :class:`Option` a 0.5-style ``add_option(*decls, **attrs)`` call declares."""
    attrs = dict(attrs)
    fixed = bool(attrs.pop("fixed_on_resume", False))
    default = attrs.get("default")
    common = dict(default=default, help=str(attrs.get("help") or ""), fixed_on_resume=fixed,
                  metavar=attrs.get("metavar"), show_default=bool(attrs.get("show_default")),
                  origin=origin)
    name = _name(list(decls))
    if attrs.get("is_flag") or any("/" in d for d in decls) or isinstance(default, bool) and \
            attrs.get("type") is None:
        return Option(name, bool, **{**common, "default": bool(default)})
    ptype = attrs.get("type")
    if ptype is None:
        kind = type(default) if isinstance(default, (int, float)) else str
        return Option(name, kind, **common)
    if ptype in (int, float, str, bool):
        return Option(name, ptype, **common)
    kind = _KINDS.get(getattr(ptype, "name", None))
    if kind is None:
        return Option(name, str, **common, convert_with=_converter(ptype))
    if kind is str and getattr(ptype, "choices", None) is not None:
        return Option(name, str, **common, choices=tuple(ptype.choices))
    bounds = {k: getattr(ptype, k, None) for k in ("min", "max")}
    opens = {k: bool(getattr(ptype, k, False)) for k in ("min_open", "max_open")}
    return Option(name, kind, **common, **bounds, **opens)
