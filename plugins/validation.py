"""Validation loss on the held-out end of the text (``--val-frac``), in nats and bits per char.

Publishes ``val_loss`` and ``val_bpc`` in ``trainer.logs`` for the checkpoints (which then pick
``best`` by it), the progress line, the metrics file and the report.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option


class Validation(Callback):
    name = "validation"
    order = Order.VALIDATION

    def __init__(self, every: int = 5000) -> None:
        self.every = every

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Validation"]:
        if not options.get("val_frac"):
            return None
        return cls(every=int(options.get("val_every") or 5000))

    def evaluate(self, trainer) -> None:
        trainer.validate()

    def on_train_begin(self, trainer) -> None:
        if "val_loss" not in trainer.logs:
            self.evaluate(trainer)

    def on_update_end(self, trainer) -> None:
        # The last update by count too, so the metrics row written for it carries the value.
        if trainer.update % self.every == 0 or trainer.update == trainer.iterations:
            self.evaluate(trainer)

    def on_train_end(self, trainer) -> None:
        if trainer.logs.get("val_update") != trainer.update:
            self.evaluate(trainer)


@hookimpl
def register_callbacks(register):
    register(Validation)


@hookimpl
def add_run_options(add_option):
    add_option(Option('val_every', int, 5000, min=1,
                      help="Updates between validation losses (with --val-frac)."))
