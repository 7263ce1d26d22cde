"""Text samples as training goes: every N updates and at the end of the run.

Sampling starts from the trainer's current hidden state with the first character of the current
input as ``x0``, as the course assignment describes, and draws from the sampler's own seeded
random stream, so that taking samples never changes what training computes.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import click
import numpy

from charrnn import hookimpl
from charrnn.callbacks import Callback
from charrnn.sampling import sample_ids


class Sampler(Callback):
    name = "sampler"
    order = 50

    def __init__(self, every: int = 10_000, length: int = 200, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: int = 0) -> None:
        self.every = every
        self.length = length
        self.temperature = temperature
        self.top_k = top_k
        self.rng = numpy.random.default_rng(seed)
        self.samples: list = []

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Sampler"]:
        every = options.get("sample_every", 10_000)
        if not every:
            return None
        return cls(every=int(every), length=int(options.get("sample_length", 200)),
                   seed=int(options.get("seed") or 0))

    def take(self, trainer) -> str:
        x0 = int(trainer.backend.to_numpy(trainer.current_input()[:1])[0])
        ids = sample_ids(trainer.model, trainer.h, x0, self.length,
                         temperature=self.temperature, top_k=self.top_k, rng=self.rng)
        text = trainer.corpus.decode(ids)
        self.samples.append((trainer.update, trainer.smooth_loss_value(), text))
        return text

    def show(self, trainer, text: str) -> None:
        for cb in trainer.callbacks:  # end a progress line that is being rewritten in place
            if hasattr(cb, "close_line"):
                cb.close_line()
        click.echo(f"--- sample at update {trainer.update} "
                   f"(smooth loss {trainer.smooth_loss_value():.3f}) ---")
        click.echo(text)
        click.echo("---")

    def on_update_end(self, trainer) -> None:
        if trainer.update % self.every == 0:
            self.show(trainer, self.take(trainer))

    def on_train_end(self, trainer) -> None:
        if trainer.update % self.every != 0 or trainer.update == 0:
            self.show(trainer, self.take(trainer))


@hookimpl
def register_callbacks(register):
    register(Sampler)
