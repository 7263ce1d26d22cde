"""Errors a user can fix. The launcher prints them as one line and exits non-zero, no traceback."""
from __future__ import annotations

import errno
from typing import Optional


class CharrnnError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""

    exit_code = 2


class BackendUnavailable(CharrnnError):
    """A backend plugin is installed but cannot run here (a missing library or device)."""


class CallbackFailed(CharrnnError):
    """A callback raised during training: reported under the plugin that ships it.

    The run stops (a callback's state may be half updated, so it is not saved): the checkpoint
    last written before the failure is kept as it was.
    """

    exit_code = 1


#: What to do about a failed write, by errno.
_WRITE_FIXES = {
    errno.ENOSPC: "free some disk space or pass an --out on another disk",
    errno.EDQUOT: "free some of your disk quota or pass an --out elsewhere",
    errno.EROFS: "the file system is read-only; pass an --out on a writable one",
    errno.EACCES: "check the permissions, or pass an --out you can write to",
    errno.EPERM: "check the permissions, or pass an --out you can write to",
    errno.EFBIG: "the file exceeds the size this process may write (ulimit -f); raise the limit",
}


def os_error_message(exc: OSError, doing: Optional[str] = None) -> str:
    """One line for an operating-system error: what failed, on which file, and what to try."""
    what = exc.strerror or type(exc).__name__
    target = exc.filename if exc.filename is not None else None
    head = f"{doing or 'cannot write'} {target}" if target else (doing or "a file operation failed")
    fix = _WRITE_FIXES.get(exc.errno or -1, "check the path and try again")
    return f"{head}: {what}; {fix}"


class InvalidOption(CharrnnError):
    """An option of a run that does not exist or whose value its schema refuses.

    Raised before anything is read or written, with the message the command line prints.
    """


class TrainingDiverged(CharrnnError):
    """The loss stopped being a finite number. ``run`` is the :class:`charrnn.Run` it ended, so
    that its directory (which keeps the last finite checkpoint) can still be inspected."""

    def __init__(self, message: str, run: object = None) -> None:
        super().__init__(message)
        self.run = run
