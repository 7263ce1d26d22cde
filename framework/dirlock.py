"""One writer per run directory (and per sweep directory).

Two processes writing one run directory interleave their metrics rows and overwrite each other's
checkpoints; a second start of the same command would even take the first one's files for a
failed start and delete them. Every command that writes a directory (``charrnn run``, a resume,
``charrnn report``, ``charrnn sweep``) holds an operating-system lock on a file in it for as
long as it runs. A second writer is refused in one line that names the process holding it.

The lock is ``flock`` on :data:`LOCK_NAME`: the kernel releases it when its process ends, however
it ends, so a lock left by a killed process never blocks anyone; the file itself stays, holding
the last holder's process id and command for the message. Where ``fcntl`` does not exist (not
POSIX) directories are not locked.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

from .errors import CharrnnError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: The lock file every writing command holds in the directory it writes.
LOCK_NAME = ".charrnn.lock"


class DirectoryInUse(CharrnnError):
    """Another process is writing the directory."""


class DirectoryLock:
    """The lock on ``path`` (a directory that exists): :meth:`acquire`, then :meth:`release`
    (or use it as a context manager). ``what`` names the directory in the refusal."""

    def __init__(self, path: str, what: str = "run directory") -> None:
        self.path = path
        self.what = what
        self.file = os.path.join(path, LOCK_NAME)
        self._fd: Optional[int] = None
        self._created = False

    def acquire(self) -> "DirectoryLock":
        if fcntl is None or self._fd is not None:
            return self
        self._created = not os.path.exists(self.file)
        try:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return self  # a directory nobody can write: the command refuses it on its own
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DirectoryInUse(
                f"{self.what} {self.path} is in use by another charrnn process{holder}; wait "
                "for it to end or stop it, or pass another directory") from None
        except OSError:
            os.close(fd)  # a file system without locks: go on unlocked, as before
            return self
        self._fd = fd
        return self

    def claim(self) -> None:
        """Write this process into the lock file, for the message a second writer gets. Called
        once the command has checked its input and is about to write: a command refused before
        that leaves the directory exactly as it found it."""
        if self._fd is None:
            return
        command = " ".join(["charrnn", *sys.argv[1:]]) if sys.argv else "charrnn"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                      f"{command}\n".encode("utf-8", "replace"), 0)
        except OSError:
            pass  # the lock holds all the same; only the message loses its details

    def release(self, remove: bool = False) -> None:
        """Let go of the lock; ``remove``: also delete the lock file if this lock made it (for a
        command that turned out to write nothing there)."""
        if self._fd is None:
            return
        if remove and self._created:
            try:
                os.remove(self.file)
            except OSError:
                pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """`` (process 123, since ...: charrnn run ...)`` from the lock file, or nothing."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = text.splitlines()
    if len(lines) < 3 or not lines[0].isdigit():
        return ""
    return f" (process {lines[0]}, since {lines[1]}: {' '.join(lines[2].split())[:200]})"
