"""``--target-loss``: stop when the smooth loss falls below a value.

The assignment's best-model runs trained until the smooth loss fell below 40. The check reads the
smooth loss every update, which on a GPU backend means a device sync per update, so the callback
takes part only when a target is given.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option


class EarlyStop(Callback):
    name = "early_stop"
    order = Order.EARLY_STOP

    def __init__(self, target: float) -> None:
        self.target = target

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["EarlyStop"]:
        target = options.get("target_loss")
        return None if target is None else cls(float(target))

    def on_train_begin(self, trainer) -> None:
        # A resumed run that already reached its target has nothing to train: it stops before
        # its first update instead of doing one more and stopping again on every resume.
        if trainer.update > 0:
            value = trainer.smooth_loss_value()
            if value < self.target:
                trainer.stop(f"the smooth loss {value:.3f} is already below --target-loss "
                             f"{self.target}; pass a lower --target-loss to train further")

    def on_update_end(self, trainer) -> None:
        value = trainer.smooth_loss_value()
        if value < self.target:
            trainer.stop(f"smooth loss {value:.3f} below --target-loss {self.target}")


@hookimpl
def register_callbacks(register):
    register(EarlyStop)


@hookimpl
def add_run_options(add_option):
    add_option(Option('target_loss', float, None, min=0, min_open=True, show_default=False,
                      help="Stop when the smooth loss falls below this value (e.g. 40)."))
