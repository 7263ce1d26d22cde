"""One run from start to end: its directory locked, its trainer built or restored, training,
and the lines that say what happened.

The steps each live in a module of their own (:mod:`~charrnn.assembly`, :mod:`~charrnn.rundir`,
:mod:`~charrnn.resume`, :mod:`~charrnn.console`); ``charrnn.train`` and ``charrnn run`` both
come here.
"""
from __future__ import annotations

import os
from typing import Any, List, Mapping, Sequence

import numpy

from .assembly import build_trainer
from .config import flag_name
from .run_config import RunConfig
from .console import announce_start, announce_stop, echo
from .dirlock import DirectoryLock
from .errors import CharrnnError
from .interrupts import deferred_interrupt
from .resume import applied_changes, open_run
from .rundir import (check_writable, clear_run_files, default_run_dir, prepare_run_dir,
                     remove_temporary_files, replaces_earlier_start, write_config)
from .trainer import Trainer


def check_names(options: Mapping[str, Any]) -> None:
    """Refuse, before anything is read or written, a path or name given empty (it would
    otherwise mean the default: an empty --resume started a new run) or, for the directories a
    run writes, one that is not valid UTF-8 (its report, written in UTF-8, names it)."""
    for key, what in (("resume", "the directory of the run to continue"),
                      ("data", "a text file"), ("encoding", "a codec name such as utf-8"),
                      ("out", "a directory path, or leave --out out for runs/<date>-<time>")):
        value = options.get(key)
        if value is None:
            continue
        if not str(value).strip():
            raise CharrnnError(f"{flag_name(key)} is empty; pass {what}")
        if key in ("resume", "out"):
            try:
                str(value).encode("utf-8")
            except UnicodeEncodeError:
                raise CharrnnError(f"{flag_name(key)} {value!r} is not valid UTF-8; pass a directory "
                                   "name that is") from None


def run_session(config: RunConfig, callbacks: Sequence[Any] = ()) -> Trainer:
    """Train the run ``config`` describes (a new one, or ``config.resume``'s continued), with
    ``callbacks`` beside the registered ones; returns its trainer once training has ended and
    every callback has finished. The directory stays locked throughout."""
    check_names(config)
    resume = config.get("resume")
    explicit = sorted(config.explicit)
    changes: List[str] = []
    if resume:
        if config.get("out") and os.path.abspath(config["out"]) != os.path.abspath(resume):
            raise CharrnnError("--resume continues a run in its own directory; drop --out")
        if not os.path.isdir(resume):
            raise CharrnnError(f"--resume {resume} is not a run directory; pass the --out "
                               "directory of an earlier run")
        # Locked before anything is read: nobody else changes the run while it is checked.
        lock = DirectoryLock(resume).acquire()
        try:
            trainer, ckpt = open_run(resume, config, explicit, callbacks=callbacks)
            check_writable(resume)
        except BaseException:
            lock.release(remove=True)
            raise
        changes = applied_changes(ckpt.config, trainer.config, explicit)
        run_dir = trainer.run_dir = resume
        remove_temporary_files(run_dir)  # everything checked: now the directory may change
    else:
        run_dir = config.get("out")
        if run_dir is None:
            run_dir = default_run_dir()
        if config.get("data") is not None:
            # Saved resolved as the OS resolves it (symbolic links, then ..), so that --resume
            # reads the same file from anywhere.
            config = config.replace(data=os.path.realpath(config["data"]))
        if isinstance(run_dir, str) and not run_dir.strip():
            prepare_run_dir(run_dir)  # refuses an empty --out before the corpus is read
        # Everything validated before the disk is touched.
        trainer = build_trainer(config, callbacks=callbacks)
        prepare_run_dir(run_dir)
        lock = DirectoryLock(run_dir).acquire()
        try:
            # Checked again under the lock: another start may have written here meanwhile.
            replacing = bool(replaces_earlier_start(run_dir))
            trainer.run_dir = prepare_run_dir(run_dir)
        except BaseException:
            lock.release(remove=True)
            raise
        if replacing:
            clear_run_files(run_dir)
            echo(f"starting over in {run_dir}: the run there stopped before its first "
                 "checkpoint")
    try:
        lock.claim()
        with deferred_interrupt():
            write_config(run_dir, trainer)
        announce_start(trainer, run_dir, bool(resume), changes)
        # Overflow in a diverging run is reported once, as a divergence, not as NumPy warnings.
        with numpy.errstate(over="ignore", divide="ignore", invalid="ignore"):
            trainer.fit()
        announce_stop(trainer, run_dir, bool(resume))
        return trainer
    finally:
        lock.release()
