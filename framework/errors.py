"""Errors a user can fix. The launcher prints them as one line and exits non-zero, no traceback."""
from __future__ import annotations


class CharrnnError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""

    exit_code = 2


class BackendUnavailable(CharrnnError):
    """A backend plugin is installed but cannot run here (a missing library or device)."""
