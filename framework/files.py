"""Writing run files so that an interrupted write never leaves a truncated one behind."""
from __future__ import annotations

import os
import re
import secrets
from typing import BinaryIO, Callable

#: The temporary names :func:`atomic_write` writes to, with the writer's pid, so that a later
#: start can tell the leftovers of a killed writer from a save in progress.
TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it there.

    A crash or Ctrl-C mid-write leaves the previous file intact: checkpoints, plots and reports
    are replaced whole or not at all. The temporary file gets the usual permissions (the umask
    applies), unlike ``tempfile.mkstemp``'s owner-only ones.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
        except OSError:
            pass  # the next start removes it (see charrnn.rundir.remove_temporary_files)
        if isinstance(exc, OSError) and exc.errno is not None:
            # Name the file the user knows, not the temporary one (a full disk, a size limit).
            raise OSError(exc.errno, exc.strerror, path) from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def append_text(path: str, text: str) -> None:
    """Append ``text`` to ``path``; a failure (a full disk) names ``path``."""
    try:
        with open(path, "a", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        if exc.errno is None or exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, path) from None
