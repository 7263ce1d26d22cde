"""The callback interface, after Keras and Lightning.

The trainer calls every callback, in ``order``, at named events. A callback that wants training to
end calls ``trainer.stop(reason)``, which sets ``trainer.should_stop`` and records the reason the
launcher prints; the trainer checks that flag at one documented place: after each update, once
every callback's :meth:`Callback.on_update_end` has run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


class Callback:
    """Base class for callbacks. Every hook is optional.

    :attr:`name` identifies the callback in ``charrnn plugins`` and in checkpoints;
    :attr:`order` sorts callbacks (lower runs first), so that, say, a checkpoint is written before
    the report that reads it.
    """

    name: ClassVar[str] = "base"
    order: ClassVar[int] = 0
    #: Set by the launcher: the plugin and distribution that ship the callback, which a failure
    #: message names. An exception a callback raises stops the run (see ``Trainer.fit``).
    origin: Optional[str] = None

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
