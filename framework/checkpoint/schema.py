"""The header (the ``meta`` member): :class:`CheckpointMeta`, the one description of what the
trainer writes there, and :class:`Header`, which checks each of those fields (type, range,
finiteness) by the check the field names, before anything else of a file is read."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


from ..errors import CharrnnError
from .format import ADVICE, MAX_COUNT, MAX_DEPTH, MAX_NDIM, PCG64_KEYS
from .messages import Refusal


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= 1e300


def walk(meta: Any, refuse: Refusal) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and text that is not valid Unicode, without
    recursion (a hostile header must not exhaust the stack)."""
    stack: List[Tuple[Any, int]] = [(meta, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeError:
                raise refuse.header("its header holds text that is not valid Unicode") from None
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise refuse.header(f"its header is nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth + 1))
                stack.append((item, depth + 1))


def _field(check: str, default: Any = dataclasses.MISSING, **limits: Any) -> Any:
    """A header field checked by ``Header.<check>`` (with ``limits``): every field has one."""
    extra = {"default_factory": dict} if default is dict else \
        ({} if default is dataclasses.MISSING else {"default": default})
    return field(metadata={"check": check, "limits": limits}, **extra)


@dataclass
class CheckpointMeta:
    """What the trainer records about a run in a checkpoint's header
    (:meth:`charrnn.trainer.Trainer.checkpoint` makes one; :class:`Header` checks a file's by
    the same fields).

    The fields without a default are in every checkpoint since 0.1.0; the others may be absent
    from older files, and those given as None are checked only when present. The format's own
    fields (``format``, ``format_version``, ``checksums``, ``header_checksum``,
    ``state_arrays``, ``optimizer_state``) are added by :func:`~charrnn.checkpoint.save_checkpoint`.
    """

    #: Updates done, and where the text stream stands.
    update: int = _field("count")
    epoch: int = _field("count")
    position: int = _field("count")
    smooth_loss: float = _field("number")
    vocab: List[str] = _field("check_vocab")
    #: The run's options, as config.json holds them.
    config: Dict[str, Any] = _field("mapping")
    #: The loss of the last update (None before the first).
    loss: Optional[float] = _field("number", None)
    #: Training time before this checkpoint, for --time-limit across resumes.
    train_seconds: Optional[float] = _field("number", None, minimum=0.0)
    charrnn_version: Optional[str] = _field("text", None)
    backend: Optional[str] = _field("text", None)
    dtype: Optional[str] = _field("text", None)
    optimizer: Optional[str] = _field("text", None)
    #: The run the file belongs to (from 0.6.0).
    run_id: Optional[str] = _field("check_run_id", None)
    batch_size: Optional[int] = _field("count", None, lo=1)
    #: The character sampling starts from after this update.
    next_input_id: Optional[int] = _field("check_next_input_id", None)
    #: The dropout stream's PCG64 state.
    dropout_rng: Optional[Dict[str, Any]] = _field("check_pcg64", None)
    #: What callbacks published in ``trainer.logs``.
    logs: Dict[str, Any] = _field("check_logs", dict)
    #: Each callback's ``state_dict()``, by name.
    callbacks: Dict[str, Any] = _field("check_callbacks", dict)
    #: The model's name, options and parameter shapes (checked by :meth:`Header.check_model`,
    #: after a version-1 header has been given one).
    model: Optional[Dict[str, Any]] = _field("check_model", None)

    def to_header(self) -> Dict[str, Any]:
        """The fields as the header's JSON object (values are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The fields every checkpoint has.
REQUIRED = tuple(f.name for f in dataclasses.fields(CheckpointMeta)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


class Header:
    """Checks of the header's fields, each refusal naming the field."""

    def __init__(self, meta: Dict[str, Any], refuse: Refusal) -> None:
        self.meta = meta
        self.refuse = refuse

    def count(self, name: str, value: Any, lo: int = 0, hi: int = MAX_COUNT,
              what: Optional[str] = None) -> int:
        if not is_int(value) or not lo <= value <= hi:
            raise self.refuse.field(name, value, what or f"a whole number >= {lo}"
                                    + ("" if hi == MAX_COUNT else f" and <= {hi}"))
        return value

    def number(self, name: str, value: Any, minimum: Optional[float] = None) -> float:
        if not is_finite_number(value) or (minimum is not None and value < minimum):
            raise self.refuse.field(name, value, "a finite number" if minimum is None else
                                    f"a finite number >= {minimum:g}")
        return value

    def text(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.refuse.field(name, value, "a non-empty string")
        return value

    def mapping(self, name: str, value: Any) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise self.refuse.field(name, value, "an object")
        return value

    def check_common(self) -> None:
        """Every field of :class:`CheckpointMeta` the header has (the model's aside), and the
        format's ``optimizer_state``."""
        meta = self.meta
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise CharrnnError(f"{self.refuse.where} lacks {', '.join(missing)} in its header; it "
                               f"is not a complete charrnn checkpoint ({ADVICE})")
        for spec in dataclasses.fields(CheckpointMeta):
            check = spec.metadata["check"]
            if spec.name not in meta or check == "check_model" or \
                    (meta[spec.name] is None and spec.default is None):
                continue
            getattr(self, check)(spec.name, meta[spec.name], **spec.metadata["limits"])
        if "optimizer_state" in meta:
            for key, value in self.mapping("optimizer_state", meta["optimizer_state"]).items():
                if not (value is None or isinstance(value, (str, bool))
                        or is_finite_number(value)):
                    raise self.refuse.field(f"optimizer_state.{key}", value,
                                            "a finite number, a string, true, false or null")

    def check_vocab(self, name: str, vocab: Any) -> None:
        if not isinstance(vocab, list) or not vocab \
                or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            raise self.refuse.field(name, vocab, "a non-empty list of one-character strings")
        if len(set(vocab)) != len(vocab):
            raise self.refuse.field(name, vocab, "a list of distinct characters")

    def check_run_id(self, name: str, value: Any) -> None:
        if not (isinstance(value, str) and len(value) == 32
                and all(c in "0123456789abcdef" for c in value)):
            raise self.refuse.field(name, value, "32 lowercase hexadecimal digits")

    def check_next_input_id(self, name: str, value: Any) -> None:
        size = len(self.meta["vocab"])
        self.count(name, value, hi=size - 1,
                   what=f"the id of a character of the {size}-character vocabulary")

    def check_callbacks(self, name: str, value: Any) -> None:
        for callback, state in self.mapping(name, value).items():
            self.mapping(f"{name}.{callback}", state)

    def check_pcg64(self, name: str, state: Any) -> None:
        """The shape of numpy's ``PCG64.state``, as the trainer saves its dropout stream."""
        what = "the state of a PCG64 random generator (as numpy's bit_generator.state)"
        if not isinstance(state, dict) or set(state) != PCG64_KEYS \
                or state["bit_generator"] != "PCG64" or not isinstance(state["state"], dict) \
                or set(state["state"]) != {"state", "inc"}:
            raise self.refuse.field(name, state, what)
        for key in ("state", "inc"):
            self.count(f"{name}.state.{key}", state["state"][key], hi=2**128 - 1)
        self.count(f"{name}.has_uint32", state["has_uint32"], hi=1)
        self.count(f"{name}.uinteger", state["uinteger"], hi=2**32 - 1)

    def check_logs(self, name: str, logs: Any) -> None:
        for key, value in self.mapping(name, logs).items():
            name = f"logs.{key}"
            if key in ("val_loss", "val_bpc"):
                if value is not None:
                    self.number(name, value)
            elif key == "val_update":
                self.count(name, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and not is_finite_number(value):
                raise self.refuse.field(name, value, "a finite number")
            # strings, true/false, null, and objects or lists (the gradient check's result,
            # where an error may be Infinity) are what callbacks publish

    def check_model(self, *_: Any) -> Dict[str, Tuple[int, ...]]:
        """The parameter shapes the header gives, checked."""
        model = self.mapping("model", self.meta.get("model"))
        self.text("model.name", model.get("name"))
        options = self.mapping("model.options", model.get("options", {}))
        shapes = self.mapping("model.shapes", model.get("shapes"))
        if not shapes:
            raise self.refuse.field("model.shapes", shapes, "an object naming the parameters")
        out: Dict[str, Tuple[int, ...]] = {}
        for name, shape in shapes.items():
            if not name or ":" in name or not isinstance(shape, list) or len(shape) > MAX_NDIM \
                    or not all(is_int(d) and 0 <= d <= MAX_COUNT for d in shape):
                raise self.refuse.field(f"model.shapes.{name}", shape,
                                        "a list of whole numbers >= 0 (a parameter's shape)")
            out[name] = tuple(shape)
        total = max(1, sum(math.prod(s) for s in out.values()))
        for key in ("hidden", "layers"):
            if key in options:
                self.count(f"model.options.{key}", options[key], lo=1, hi=total,
                           what=f"a whole number from 1 to {total} (the model's parameter count)")
        return out

    def check_state_arrays(self) -> int:
        if "state_arrays" not in self.meta:
            raise CharrnnError(f"{self.refuse.where} lacks state_arrays in its header; it is not a "
                               f"complete charrnn checkpoint ({ADVICE})")
        return self.count("state_arrays", self.meta["state_arrays"], hi=1024)
