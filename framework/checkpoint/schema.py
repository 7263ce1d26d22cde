"""The header (the ``meta`` member): every field the trainer writes, checked for type, range and
finiteness before anything else is read."""
from __future__ import annotations

import math
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
        meta = self.meta
        missing = [k for k in ("update", "epoch", "position", "smooth_loss", "vocab", "config")
                   if k not in meta]
        if missing:
            raise CharrnnError(f"{self.refuse.where} lacks {', '.join(missing)} in its header; it "
                               f"is not a complete charrnn checkpoint ({ADVICE})")
        for key in ("update", "epoch", "position"):
            self.count(key, meta[key])
        self.number("smooth_loss", meta["smooth_loss"])
        if meta.get("loss") is not None:
            self.number("loss", meta["loss"])
        if "train_seconds" in meta:
            self.number("train_seconds", meta["train_seconds"], minimum=0.0)
        vocab = meta["vocab"]
        if not isinstance(vocab, list) or not vocab \
                or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            raise self.refuse.field("vocab", vocab, "a non-empty list of one-character strings")
        if len(set(vocab)) != len(vocab):
            raise self.refuse.field("vocab", vocab, "a list of distinct characters")
        self.mapping("config", meta["config"])
        for key in ("charrnn_version", "backend", "dtype", "optimizer"):
            if meta.get(key) is not None:
                self.text(key, meta[key])
        if meta.get("run_id") is not None and not (
                isinstance(meta["run_id"], str) and len(meta["run_id"]) == 32
                and all(c in "0123456789abcdef" for c in meta["run_id"])):
            raise self.refuse.field("run_id", meta["run_id"], "32 lowercase hexadecimal digits")
        if "batch_size" in meta:
            self.count("batch_size", meta["batch_size"], lo=1)
        if meta.get("next_input_id") is not None:
            self.count("next_input_id", meta["next_input_id"], hi=len(vocab) - 1,
                       what=f"the id of a character of the {len(vocab)}-character vocabulary")
        if meta.get("dropout_rng") is not None:
            self.check_pcg64("dropout_rng", meta["dropout_rng"])
        if "logs" in meta:
            self.check_logs(self.mapping("logs", meta["logs"]))
        if "callbacks" in meta:
            for name, state in self.mapping("callbacks", meta["callbacks"]).items():
                self.mapping(f"callbacks.{name}", state)
        if "optimizer_state" in meta:
            for key, value in self.mapping("optimizer_state", meta["optimizer_state"]).items():
                if not (value is None or isinstance(value, (str, bool))
                        or is_finite_number(value)):
                    raise self.refuse.field(f"optimizer_state.{key}", value,
                                            "a finite number, a string, true, false or null")

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

    def check_logs(self, logs: Dict[str, Any]) -> None:
        for key, value in logs.items():
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

    def check_model(self) -> Dict[str, Tuple[int, ...]]:
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
