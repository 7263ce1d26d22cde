"""Keeps ``latest.npz`` and ``best.npz`` in the run directory.

``best`` is the lowest validation loss when the run holds out a validation split, else the lowest
smooth loss, judged at each checkpoint interval and at the end of the run. The validation loss it
is judged by is always that of the weights being saved: a checkpoint between two scheduled
validations measures its own.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Mapping, Optional

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option
from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.interrupts import deferred_interrupt
from charrnn.stops import DIVERGED, Stop, StopReason


class Checkpoints(Callback):
    name = "checkpoints"
    order = Order.CHECKPOINTS

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.best: Optional[float] = None
        self.best_update: Optional[int] = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "Checkpoints":
        return cls(every=int(options.get("checkpoint_every") or 1000))

    @staticmethod
    def metric(trainer) -> float:
        """The validation loss of these very weights where the run holds out text (measured
        now if the last one is from another update), else the smooth loss."""
        val = trainer.validate()
        return float(val) if val is not None else trainer.smooth_loss_value()

    def save(self, trainer) -> None:
        if not trainer.run_dir or not trainer.can_save:
            return  # after a divergence or a failure the last good checkpoint stays as it is
        smooth = trainer.smooth_loss_value()
        if not math.isfinite(smooth):
            # Never overwrite a good checkpoint with NaN parameters: keep the last finite state.
            trainer.stop(StopReason(Stop.DIVERGED, f"{DIVERGED}: the smooth loss is {smooth} "
                                                   f"at update {trainer.update}"))
            return
        value = self.metric(trainer)
        improved = math.isfinite(value) and (self.best is None or value < self.best)
        if improved:
            self.best, self.best_update = value, trainer.update
        ckpt = trainer.checkpoint()  # taken after best is updated, so both files agree on it
        # Ctrl-C waits for both files: best.npz must not lag behind a latest.npz that names it.
        with deferred_interrupt():
            save_checkpoint(os.path.join(trainer.run_dir, "latest.npz"), ckpt)
            if improved:
                save_checkpoint(os.path.join(trainer.run_dir, "best.npz"), ckpt)

    def on_train_begin(self, trainer) -> None:
        self.repair_best(trainer)

    def repair_best(self, trainer) -> None:
        """Write best.npz again when it lags behind the best that latest.npz records.

        latest.npz is written first, then best.npz; a kill between the two leaves best.npz one
        checkpoint old while latest.npz (which every start resumes from) names itself as the
        best. Every start that resumes such a state (a resume, ``charrnn report``) rewrites
        best.npz from it, so ``charrnn sample`` never keeps using the older model.
        """
        if not trainer.run_dir or self.best_update is None or self.best_update != trainer.update \
                or trainer.update == 0 or not trainer.can_save:
            return
        path = os.path.join(trainer.run_dir, "best.npz")
        try:
            found = load_checkpoint(path).meta.get("update")
        except Exception:  # missing, or unreadable: either way it is not the recorded best
            found = None
        if found == self.best_update:
            return
        with deferred_interrupt():
            save_checkpoint(path, trainer.checkpoint())
        if not trainer.config.get("quiet"):
            was = "missing" if found is None else f"at update {found:,}"
            trainer.console.echo(f"best.npz repaired: it was {was}; latest.npz records the "
                                 f"best at update {self.best_update:,}")

    def on_update_end(self, trainer) -> None:
        if trainer.update % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer) -> None:
        # A process that did no update (charrnn report, a finished run resumed) has nothing new.
        if trainer.update > trainer.start_update:
            self.save(trainer)

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_update": self.best_update}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_update = state.get("best_update")


@hookimpl
def register_callbacks(register):
    register(Checkpoints)


@hookimpl
def add_run_options(add_option):
    add_option(Option('checkpoint_every', int, 1000, min=1,
                      help="Updates between checkpoints (latest.npz, best.npz) in the run directory."))
