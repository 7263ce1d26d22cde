"""Why training stopped: :class:`StopReason`, a kind (:class:`Stop`) and a detail in words.

``Trainer.stop_reason`` is one (or None when the run did all its updates). It is also the text
the stop line prints, so code written against the 0.5 strings (``stop_reason == "interrupted"``,
``stop_reason.startswith("time limit")``) keeps working; new code compares ``.kind``.
"""
from __future__ import annotations

from enum import Enum
from typing import Optional


class Stop(Enum):
    """The kinds of stop."""

    #: Ctrl-C or SIGTERM: the update in progress ended, callbacks' on_train_end still ran (the
    #: checkpoint is saved), and a resume continues exactly.
    INTERRUPTED = "interrupted"
    #: The loss stopped being a finite number.
    DIVERGED = "training diverged"
    #: ``--time-limit`` ran out.
    TIME_LIMIT = "time limit"
    #: A callback raised (see :class:`charrnn.errors.CallbackFailed`).
    CALLBACK_FAILED = "callback failed"
    #: Training raised an error of its own (a full disk, say).
    ERROR = "error"
    #: A callback asked (``trainer.stop(reason)``): early stopping, a sweep's pruner, yours.
    REQUESTED = "requested"


class StopReason(str):
    """A stop's kind and its words: ``StopReason(Stop.TIME_LIMIT, "time limit of 120 s
    reached")``. It is the string of its words, so it prints and compares as one."""

    kind: Stop
    detail: str

    def __new__(cls, kind: Stop, text: Optional[str] = None) -> "StopReason":
        obj = super().__new__(cls, kind.value if text is None else text)
        obj.kind = kind
        obj.detail = str(obj)
        return obj

    def __repr__(self) -> str:
        return f"StopReason({self.kind.name}, {str(self)!r})"

    def __reduce__(self):
        return (StopReason, (self.kind, str(self)))


def as_stop_reason(reason: "str | StopReason") -> StopReason:
    """``reason`` as a :class:`StopReason` (a callback's words are a requested stop)."""
    return reason if isinstance(reason, StopReason) else StopReason(Stop.REQUESTED, str(reason))


# The 0.5 names, for code that compares strings (``charrnn.trainer`` re-exports them).
INTERRUPTED = Stop.INTERRUPTED.value
DIVERGED = Stop.DIVERGED.value
TIME_LIMIT = Stop.TIME_LIMIT.value
CALLBACK_FAILED = Stop.CALLBACK_FAILED.value
