"""The run directory: starting one, taking over what a start that never reached a checkpoint
left, leftover temporary files, and the run's own record (``config.json``, its run id)."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import TYPE_CHECKING, List, Optional, Tuple

from . import __version__
from .dirlock import LOCK_NAME
from .errors import CharrnnError
from .files import TEMPORARY_NAME, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import Checkpoint
    from .trainer import Trainer

#: The files the core writes in a run directory: the configuration, the metrics log and the
#: checkpoints. With those the callbacks declare (:func:`run_files`), a directory holding only
#: these and no checkpoint is what a run killed before its first checkpoint leaves: a new run may
#: start over in it.
CORE_FILES = ("config.json", "metrics.csv", "latest.npz", "best.npz")


def run_files() -> Tuple[str, ...]:
    """What a run writes in its directory: the core's files and those each registered callback
    declares (:attr:`charrnn.Callback.files`)."""
    from .registry import get_registry

    declared = [name for cls in get_registry().callbacks() for name in getattr(cls, "files", ())]
    return CORE_FILES + tuple(dict.fromkeys(declared))


def default_run_dir() -> str:
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def check_writable(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise CharrnnError(f"cannot write to run directory {path} ({exc.strerror}); "
                           "pass a writable --out") from None


def temporary_files(path: str) -> List[str]:
    """Temporary files in ``path`` left by writers that are no longer running (a kill mid-save)."""
    found = []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in names:
        match = TEMPORARY_NAME.match(name)
        if match is None:
            continue
        pid = int(match.group("pid"))
        try:
            if pid != os.getpid():
                os.kill(pid, 0)
                continue  # its writer still runs (another process's save in progress)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        found.append(os.path.join(path, name))
    return found


def remove_temporary_files(path: str) -> None:
    for tmp in temporary_files(path):
        try:
            os.remove(tmp)
        except OSError:
            pass


def restartable(path: str) -> bool:
    """Whether ``path`` holds only what a run killed before its first checkpoint leaves behind
    (and no checkpoint): nothing a new run in it would lose."""
    names = set(os.listdir(path))
    stale = {os.path.basename(t) for t in temporary_files(path)}
    leftover = names - stale - set(run_files()) - {LOCK_NAME}
    return not leftover and not names & {"latest.npz", "best.npz"}


def prepare_run_dir(path: str) -> str:
    """A run directory for a new run (see :func:`replaces_earlier_start`).

    A directory that holds a run (a checkpoint, or files charrnn did not write) is refused, so
    nothing is lost. One that holds only what a run stopped before its first checkpoint wrote
    (a kill, a failed gradient check) is taken over: there is nothing in it to resume.
    """
    if not path.strip():
        raise CharrnnError("--out is empty; pass a directory path, or leave --out out for "
                           "runs/<date>-<time>")
    if os.path.exists(path) and not os.path.isdir(path):
        raise CharrnnError(f"run directory {path} is a file; pass a directory path to --out")
    if replaces_earlier_start(path) is None:
        if {"latest.npz", "best.npz"} & set(os.listdir(path)):
            raise CharrnnError(f"run directory {path} already holds a run; continue it with "
                               f"--resume {path}, or pass a new --out")
        raise CharrnnError(f"run directory {path} already holds other files; pass a new --out")
    check_writable(path)
    return path


def replaces_earlier_start(path: str) -> Optional[bool]:
    """For a new run in ``path``: False when it is new or empty, True when it holds only what
    an earlier start that never reached a checkpoint left, None when it holds a run or files
    charrnn did not write."""
    if not os.path.isdir(path) or not set(os.listdir(path)) - {LOCK_NAME}:
        return False
    return True if restartable(path) else None


def clear_run_files(path: str) -> None:
    """Remove what a start that never reached a checkpoint left in ``path``."""
    remove_temporary_files(path)
    for name in run_files():
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)  # a callback's folder of files
        elif os.path.isfile(target):
            os.remove(target)


def write_config(run_dir: str, trainer: Trainer) -> None:
    atomic_write_text(os.path.join(run_dir, "config.json"),
                      json.dumps({**trainer.config, "charrnn_version": __version__,
                                  "vocab_size": trainer.model.K, "run_id": trainer.run_id},
                                 indent=2))


def check_same_run(run_dir: str, ckpt: Checkpoint) -> None:
    """Refuse a checkpoint that belongs to another run than the one in ``run_dir`` (copied in
    from elsewhere): resuming it would rewrite this run's config.json and drop its metrics.
    Runs and checkpoints older than run ids pass."""
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as fh:
            ours = json.load(fh).get("run_id")
    except (OSError, ValueError, AttributeError):
        return  # no readable config.json: nothing to compare with
    theirs = ckpt.meta.get("run_id")
    if ours and theirs and ours != theirs:
        raise CharrnnError(f"{ckpt.path} belongs to another run (run id {theirs}) than the one "
                           f"in {run_dir} (run id {ours}); put back this run's own checkpoint, "
                           "or resume that run in its own directory")
