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
from typing import Any, Iterator, List


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
