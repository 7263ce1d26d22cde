"""Holding Ctrl-C back while a file or an import is half done.

A ``KeyboardInterrupt`` can land between any two bytecodes. Inside ``import matplotlib`` it leaves
the package half-initialised in ``sys.modules``, so every later plot fails; inside a write it can
leave a row cut short. Code that must finish once started runs inside :func:`deferred_interrupt`:
a Ctrl-C that arrives meanwhile is remembered and raised as soon as the block ends, so the user
still gets the interruption, a moment later, with the files whole.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Dict, Iterator, List, Optional


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block to its end even if SIGINT arrives; raise ``KeyboardInterrupt`` after it.

    Only the main thread can own signal handlers; elsewhere the block runs unprotected. Nested
    blocks defer to the outermost one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if getattr(previous, "_charrnn_deferring", False):  # already inside a deferred block
        yield
        return
    received: List[Any] = []

    def remember(signum: int, frame: Any) -> None:
        received.append(signum)

    remember._charrnn_deferring = True  # type: ignore[attr-defined]
    try:
        signal.signal(signal.SIGINT, remember)
    except (ValueError, OSError):  # no handler can be set here (an embedding interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if not received:
        return
    if callable(previous):  # Python's own handler raises KeyboardInterrupt here
        previous(signal.SIGINT, None)
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt


class UpdateBoundary:
    """Ctrl-C (SIGINT) and SIGTERM held back to the end of the update in progress.

    An update changes the text position, the random streams, the parameters and the optimizer's
    state one after another; a checkpoint taken with only some of them changed resumes to other
    numbers than the uninterrupted run. While the training loop runs inside this block, the first
    such signal is only recorded (:attr:`pending`); the loop stops after the update's callbacks,
    where everything belongs to one update. A second signal stops at once: :attr:`hurried` says
    so, and then nothing is saved (the last periodic checkpoint stays).
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.pending: Optional[int] = None
        self.hurried = False
        self._previous: Dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.pending is None:
            self.pending = signum
            return
        self.hurried = True
        raise KeyboardInterrupt

    def __enter__(self) -> "UpdateBoundary":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread owns handlers: signals act as they always do
        handler = self._handler
        handler.__func__._charrnn_deferring = True  # type: ignore[attr-defined]
        for name in self.SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                previous = signal.getsignal(signum)
                if previous == signal.SIG_IGN:
                    continue  # ignored by whoever started us (a background job): leave it so
                signal.signal(signum, handler)
            except (ValueError, OSError):
                continue
            self._previous[signum] = previous
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            try:
                signal.signal(signum, previous)
            except (ValueError, OSError, TypeError):
                pass
        self._previous.clear()
