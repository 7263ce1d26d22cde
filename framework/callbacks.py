"""The callback interface, after Keras and Lightning.

The trainer calls every callback, in ``order``, at named events. A callback that wants training to
end calls ``trainer.stop(reason)``, which sets ``trainer.should_stop`` and records the reason the
launcher prints; the trainer checks that flag at one documented place: after each update, once
every callback's :meth:`Callback.on_update_end` has run.
"""
from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Mapping, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


class Order(IntEnum):
    """The places at which the built-in callbacks run at every event, lower first.

    A callback places itself by name, relative to the work it depends on:
    ``order = Order.VALIDATION + 1`` runs after validation has published ``val_loss`` for this
    update; ``order = Order.CHECKPOINTS - 1`` writes its file before the checkpoint of the update,
    so a kill between the two loses nothing a resume would not write again. Any integer is
    allowed; the gaps are for plugins.
    """

    #: The learning-rate schedule: sets this update's rate before anything reports it.
    SCHEDULE = -10
    #: The gradient check: a run with wrong gradients stops before anything else happens.
    GRADIENT_CHECK = 5
    #: Validation: publishes ``val_loss`` (``trainer.validate()``) for the rest of the update.
    VALIDATION = 10
    #: The sampler: before the checkpoints, so a checkpoint holds its random stream after the
    #: sample of that update, and a resumed run samples as an uninterrupted one would.
    SAMPLER = 15
    #: The metrics row: on disk before the checkpoint of the same update.
    METRICS = 18
    #: The checkpoints (``latest.npz``, ``best.npz``).
    CHECKPOINTS = 20
    #: Early stopping: after the checkpoints it may cut short.
    EARLY_STOP = 30
    #: Plugins' loggers and sinks: after everything that publishes a value.
    LOGGERS = 35
    #: The progress line: after the callbacks that may stop training, so its last line is true.
    PROGRESS = 100
    #: The report: last, it reads what the others wrote.
    REPORT = 200


class Callback:
    """Base class for callbacks. Every hook is optional.

    :attr:`name` identifies the callback in ``charrnn plugins`` and in checkpoints;
    :attr:`order` sorts callbacks (lower runs first; see :class:`Order` for where the built-in
    ones sit), so that, say, a checkpoint is written before the report that reads it.
    """

    name: ClassVar[str] = "base"
    order: ClassVar[int] = 0
    #: The files (or folders) this callback writes in the run directory. A start that is killed
    #: before its first checkpoint may leave them, and the next start in that directory removes
    #: them (anything else found there makes it refuse the directory).
    files: ClassVar[Tuple[str, ...]] = ()
    #: Set by the launcher: the plugin and distribution that ship the callback, which a failure
    #: message names. An exception a callback raises stops the run (see ``Trainer.fit``).
    origin: Optional[str] = None

    @classmethod
    def files_current(cls, run_dir: str, config: Mapping[str, Any]) -> bool:
        """Whether this callback's end-of-run files in ``run_dir`` reflect the run's latest
        checkpoint. A run that did all its updates but whose files are not current (killed
        after its last checkpoint) is finished again by a resume: no updates, then every
        callback's ``on_train_end``. ``config`` is the run's saved configuration."""
        return True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Callback"]:
        """Build the callback for a run from the launcher's options, or return None to stay out."""
        return cls()

    def on_train_begin(self, trainer: "Trainer") -> None:
        """Before the first update of this process (also when a run is resumed)."""

    def on_update_end(self, trainer: "Trainer") -> None:
        """After each update; ``trainer.update`` counts updates done so far."""

    def on_train_end(self, trainer: "Trainer") -> None:
        """After the last update, whether the run finished, was stopped or was interrupted."""

    def on_exception(self, trainer: "Trainer", exc: BaseException) -> None:
        """When training is interrupted by an exception (Ctrl-C included), before it propagates."""

    def state_dict(self) -> Dict[str, Any]:
        """JSON-serialisable state a resumed run needs to continue exactly."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
