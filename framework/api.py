"""charrnn from Python: :func:`train` a model as ``charrnn run`` does, :func:`load` one to write
text. The command line is a thin layer over these two."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .callbacks import Callback
from .run_config import RunConfig
from .errors import InvalidOption, TrainingDiverged
from .generate import Generator, load
from .metrics import read_metrics
from .session import run_session
from .stops import Stop, StopReason
from .trainer import Trainer


@dataclass
class Run:
    """What :func:`train` did: where, how far, and why it stopped.

    ``stop_reason`` is None when the run did all its updates; otherwise a
    :class:`~charrnn.stops.StopReason`: its ``kind`` (``Stop.INTERRUPTED`` after Ctrl-C or
    SIGTERM, ``Stop.TIME_LIMIT``, ``Stop.REQUESTED`` for an early stop) and, as a string, its
    words (``"time limit of 120 s reached"``). ``updates`` counts the run's updates in all, ``session_updates`` those of
    this call (they differ after a resume). ``config`` is the configuration the run used, as its
    ``config.json`` records it (defaults that depend on others resolved: the learning rate, the
    initial scale). ``logs`` holds the latest values callbacks published (``val_loss``,
    ``val_bpc``, ...).
    """

    directory: str
    config: Dict[str, Any]
    stop_reason: Optional[StopReason]
    updates: int
    session_updates: int
    smooth_loss: float
    logs: Dict[str, Any] = field(default_factory=dict)
    #: The signal that interrupted training (2 for SIGINT, 15 for SIGTERM), if one did.
    interrupt_signal: Optional[int] = None

    @property
    def best_checkpoint(self) -> Optional[str]:
        """``best.npz`` (lowest validation loss, else the latest), or None if none was written."""
        return self._file("best.npz")

    @property
    def latest_checkpoint(self) -> Optional[str]:
        """``latest.npz``, the state :func:`train` with ``resume=`` continues from."""
        return self._file("latest.npz")

    def _file(self, name: str) -> Optional[str]:
        path = os.path.join(self.directory, name)
        return path if os.path.isfile(path) else None

    @property
    def metrics(self) -> List[Dict[str, Any]]:
        """The run's metrics log, one row per logged update (see :func:`read_metrics`)."""
        return read_metrics(self.directory)

    def load(self, *, backend: str = "numpy", which: str = "best") -> Generator:
        """The run's best (or ``which="latest"``) model, ready to write text."""
        path = self.best_checkpoint if which == "best" else self.latest_checkpoint
        return load(path or self.directory, backend=backend)


def train(config: Optional[Mapping[str, Any]] = None, *, callbacks: Sequence[Callback] = (),
          **options: Any) -> Run:
    """Train a model exactly as ``charrnn run`` does: the same defaults, checks, run directory,
    checkpoints, samples, report and console lines.

    ``options`` are ``charrnn run``'s options with underscores for dashes (``data=``,
    ``hidden=``, ``iterations=``, ``out=``, ``val_frac=``, ``resume=``, ``preset=``, and those
    plugins add); they apply on top of ``config`` (a :class:`RunConfig` or a mapping).
    ``callbacks`` are :class:`Callback` objects that run beside the registered ones.

    Returns the :class:`Run`; Ctrl-C stops training at the end of the update in progress, saves
    it, and returns too (``stop_reason == "interrupted"``). A bad option raises
    :class:`InvalidOption` before anything is written; every other problem a
    :class:`CharrnnError` with the message the command line prints; a diverged run
    :class:`TrainingDiverged`, which carries its :class:`Run`.
    """
    from .registry import check_disabled, check_reference_kernels

    check_disabled()
    check_reference_kernels()
    warn_deprecations()
    if isinstance(config, RunConfig):
        cfg = config.replace(**options) if options else config
    else:
        cfg = RunConfig({**dict(config or {}), **options})
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise InvalidOption(f"callbacks holds {cb!r}, which is not a charrnn.Callback; "
                                "subclass charrnn.Callback and pass an instance")
    return train_config(cfg, callbacks)


def train_config(cfg: RunConfig, callbacks: Sequence[Callback] = ()) -> Run:
    """:func:`train` for a checked configuration (the command line's, which has said what is
    deprecated in its own way)."""
    trainer = run_session(cfg, callbacks)
    run = run_of(trainer)
    reason = trainer.stop_reason
    if reason is not None and reason.kind is Stop.DIVERGED:
        kept = (f" (latest.npz in {run.directory} keeps the last finite state)"
                if run.latest_checkpoint else "")
        raise TrainingDiverged(f"{reason}; lower --eta or --sigma and start again{kept}", run)
    return run


def warn_deprecations() -> None:
    """Each plugin interface in use that is going away, as a :class:`FutureWarning` (shown once
    per plugin and place), naming its replacement."""
    from .registry import get_registry

    for note in get_registry().deprecations:
        warnings.warn(note, FutureWarning, stacklevel=3)


def run_of(trainer: Trainer) -> Run:
    return Run(directory=str(trainer.run_dir), config=dict(trainer.config), stop_reason=trainer.stop_reason,
               updates=trainer.update, session_updates=trainer.update - trainer.start_update,
               smooth_loss=trainer.smooth_loss_value(), logs=dict(trainer.logs),
               interrupt_signal=trainer.interrupt_signal)
