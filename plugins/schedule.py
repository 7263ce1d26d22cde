"""``--lr-schedule``: the learning rate as a function of how far the run has got.

With a fixed budget (``--iterations`` or ``--time-limit``) the last updates do most for the final
loss when they take small steps: decaying the rate to a fraction of ``--eta`` over the run is the
cheapest gain a time-boxed run can have. Progress is the larger of updates done over
``--iterations`` and seconds trained over ``--time-limit``, both of which a checkpoint keeps, so a
resumed run continues the same curve. An optional linear warm-up (``--warmup`` updates) starts
from a tenth of the rate.

The callback sets ``trainer.optimizer.eta`` before each update; the optimizer reads nothing else.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option

SCHEDULES = ("constant", "cosine", "linear")


class LearningRateSchedule(Callback):
    name = "lr_schedule"
    order = Order.SCHEDULE

    def __init__(self, eta: float, shape: str = "constant", final: float = 0.1,
                 warmup: int = 0) -> None:
        self.eta, self.shape, self.final, self.warmup = float(eta), shape, float(final), int(warmup)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["LearningRateSchedule"]:
        shape = options.get("lr_schedule") or "constant"
        warmup = int(options.get("warmup") or 0)
        if shape == "constant" and not warmup:
            return None
        return cls(options["eta"], shape, float(options.get("lr_final", 0.1)), warmup)

    @staticmethod
    def progress(trainer) -> float:
        """How far the run has got, 0 to 1, by updates or by time, whichever is further."""
        done = 0.0
        if trainer.iterations:
            done = trainer.update / trainer.iterations
        if trainer.time_limit:
            done = max(done, trainer.train_seconds() / trainer.time_limit)
        return min(max(done, 0.0), 1.0)

    def factor(self, progress: float, update: int) -> float:
        """The multiple of ``--eta`` to use for the next update."""
        if self.shape == "cosine":
            f = self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.shape == "linear":
            f = 1.0 - (1.0 - self.final) * progress
        else:
            f = 1.0
        if update < self.warmup:
            f *= 0.1 + 0.9 * update / self.warmup
        return f

    def apply(self, trainer) -> None:
        trainer.optimizer.eta = self.eta * self.factor(self.progress(trainer), trainer.update)

    def on_train_begin(self, trainer) -> None:
        self.apply(trainer)

    def on_update_end(self, trainer) -> None:
        self.apply(trainer)


@hookimpl
def register_callbacks(register):
    register(LearningRateSchedule)


@hookimpl
def add_run_options(add_option):
    add_option(Option('lr_schedule', str, "constant", choices=SCHEDULES,
                      help="Decay the learning rate over the run (--iterations or --time-limit) from "
                           "--eta to --lr-final times --eta."))
    add_option(Option('lr_final', float, 0.1, min=0, max=1,
                      help="Final learning rate of --lr-schedule, as a fraction of --eta."))
    add_option(Option('warmup', int, 0, min=0, metavar="UPDATES",
                      help="Updates over which the learning rate rises linearly from a tenth of its value."))
