"""A progress display: update count, epoch, smooth loss (also per character) and speed.

On a terminal the line is rewritten in place; elsewhere (logs, CI) one line is printed per
interval. Reading the smooth loss synchronises the device, so it happens only at the interval.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order


class Progress(Callback):
    name = "progress"
    order = Order.PROGRESS

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self._last = -1

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Progress"]:
        if options.get("quiet"):
            return None
        return cls(every=int(options.get("log_every") or 1000))

    def line(self, trainer) -> str:
        total = f"/{trainer.iterations}" if trainer.iterations is not None else ""
        width = len(str(trainer.iterations)) if trainer.iterations is not None else 7
        smooth = trainer.smooth_loss_value()
        per_char = smooth / trainer.seq_length
        ups = trainer.updates_per_second()
        speed = f"{ups:8.0f} updates/s"
        if trainer.batch > 1:
            speed += f" {ups * trainer.batch * trainer.seq_length:9,.0f} chars/s"
        return (
            f"update {trainer.update:>{width}}{total}  epoch {trainer.epoch}  "
            f"smooth loss {smooth:8.3f} ({per_char:.3f} nats/char, "
            f"{per_char / math.log(2):.3f} bpc)  {speed}"
            + self.validation(trainer)
        )

    @staticmethod
    def validation(trainer) -> str:
        """The latest validation loss and how old it is (it is computed every --val-every)."""
        logs = trainer.logs
        if logs.get("val_loss") is None:
            return ""
        at = logs.get("val_update")
        age = ""
        if at is not None and int(at) != trainer.update:
            age = f", {trainer.update - int(at)} updates ago"
        return (f"  val {float(logs['val_loss']):.3f} nats/char "
                f"({float(logs.get('val_bpc', 0.0)):.3f} bpc{age})")

    def emit(self, trainer) -> None:
        self._last = trainer.update
        trainer.console.progress(self.line(trainer))

    def on_update_end(self, trainer) -> None:
        if trainer.update % self.every == 0:
            self.emit(trainer)

    def on_train_end(self, trainer) -> None:
        # The last update's line, unless it is out already or this process did no update (a
        # finished run resumed, charrnn report): it would show a speed of nothing.
        if self._last != trainer.update and trainer.update > trainer.start_update:
            self.emit(trainer)
        trainer.console.close_line()


@hookimpl
def register_callbacks(register):
    register(Progress)
