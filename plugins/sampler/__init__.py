"""Text samples as training goes, and ``charrnn sample`` from a saved checkpoint.

During a run, sampling starts from the current state of the first stream with the first character
of its next input as ``x0``, as the course assignment describes. Draws come from the sampler's own
seeded random stream, saved in checkpoints, so taking samples never changes what training
computes and a resumed run samples exactly what an uninterrupted one would.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy
from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option
from charrnn.errors import CharrnnError
from charrnn.files import append_text, atomic_write_text
from charrnn.interrupts import deferred_interrupt
from charrnn.stops import Stop
from charrnn.reporting import SAMPLES_SECTION, ReportSection, fenced, round_step
from charrnn.sampling import MAX_SAMPLE, sample_ids


SAMPLES_FILE = "samples.md"


def sample_markdown(update: int, smooth: float, text: str) -> str:
    """One sample's section of ``samples.md``."""
    return f"## Update {update} (smooth loss {smooth:.3f})\n\n{fenced(text)}\n\n"


#: The assignment's sample schedule: one every ``COURSE_EVERY`` updates up to ``COURSE_UNTIL``.
COURSE_EVERY = 10_000
COURSE_UNTIL = 100_000
#: Up to this many samples the report shows them all: as many as the course schedule shows.
SHOW_ALL = 12


def shown_samples(updates: Sequence[int]) -> Tuple[List[int], Optional[int], int]:
    """Which samples the report shows, given the update each was taken at (in order).

    Returns ``(indices, interval, until)``: the samples at update 0 and at each multiple of
    ``interval`` up to ``until``, then the last sample; ``interval`` is None when every sample
    is shown. Where no sample was taken at a multiple, the first one taken after it (and before
    the next multiple) stands in, so a ``--sample-every`` that does not divide the interval
    still gives one sample per interval. A run that ends before the assignment's first
    interval gets the same shape at a round interval of its own, about ten samples.
    """
    count = len(updates)
    if count <= SHOW_ALL:
        return list(range(count)), None, 0
    last = int(updates[-1])
    if last >= COURSE_EVERY:
        interval, until = COURSE_EVERY, COURSE_UNTIL
    else:
        interval, until = round_step(last, SHOW_ALL - 2), last
    chosen: List[int] = []
    i = 0
    for mark in range(0, until + 1, interval):
        while i < count and updates[i] < mark:
            i += 1
        if i < count and updates[i] < mark + interval:
            chosen.append(i)
    if count - 1 not in chosen:
        chosen.append(count - 1)
    return chosen, interval, until


def samples_markdown(samples: Sequence[Tuple[int, float, str]], every: Optional[int],
                     length: Optional[int]) -> str:
    """The report's section on samples: those :func:`shown_samples` picks, and one line
    sending the reader to ``samples.md`` for the others."""
    if not samples:
        return "No samples were taken.\n"
    out = [f"{length or len(samples[0][2])} characters each"
           + (f", every {every:,} updates" if every else "")
           + ", from the hidden state training had reached at that update.\n"]
    updates = [int(u) for u, _, _ in samples]
    chosen, interval, until = shown_samples(updates)
    if interval is not None:
        upto = f" up to {until:,}" if updates[-1] > until else ""
        course = ", as the assignment asks," if interval == COURSE_EVERY else ""
        line = (f"Shown here: the samples at update 0 and every {interval:,} updates{upto}"
                f"{course} and the last one (update {updates[-1]:,}).")
        if any(updates[i] % interval for i in chosen[:-1]):
            line += (f" Where no sample was taken at a multiple of {interval:,}, the first one "
                     "taken after it is shown"
                     + (f" (`--sample-every {every:,}` does not divide {interval:,})"
                        if every and interval % every else "") + ".")
        rest = len(samples) - len(chosen)
        line += (f" The other {rest:,} are in [{SAMPLES_FILE}]({SAMPLES_FILE}), which holds "
                 "every sample of the run.")
        out.append(line + "\n")
    for i in chosen:
        update, smooth, text = samples[i]
        out.append(f"### Update {int(update):,} (smooth loss {float(smooth):.3f})\n")
        out.append(fenced(text) + "\n")
    return "\n".join(out)


class Sampler(Callback):
    name = "sampler"
    files = (SAMPLES_FILE,)
    order = Order.SAMPLER  # before the checkpoints, which save its random stream

    def __init__(self, every: int = 10_000, length: int = 200, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: int = 0, echo: bool = True) -> None:
        self.every = every
        self.length = length
        self.temperature = temperature
        self.top_k = top_k
        self.rng = numpy.random.default_rng(seed)
        self.echo = echo
        #: (update, smooth loss, text) for every sample of the run, resumed runs included.
        self.samples: List[Tuple[int, float, str]] = []

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Sampler"]:
        return cls(every=int(options.get("sample_every") or 10_000),
                   length=int(options.get("sample_length") or 200),
                   temperature=float(options.get("temperature") or 1.0),
                   top_k=options.get("top_k"),
                   seed=int(options.get("sample_seed") or 0),
                   echo=not options.get("quiet"))

    def take(self, trainer) -> str:
        state, x0 = trainer.sampling_start()
        ids = sample_ids(trainer.model, state, x0, self.length, temperature=self.temperature,
                         top_k=self.top_k, rng=self.rng)
        text = trainer.corpus.decode(ids)
        entry = (trainer.update, trainer.smooth_loss_value(), text)
        self.samples.append(entry)
        if trainer.run_dir:
            with deferred_interrupt():
                append_text(os.path.join(trainer.run_dir, SAMPLES_FILE), sample_markdown(*entry))
        return text

    def show(self, trainer, text: str) -> None:
        if not self.echo:
            return
        console = trainer.console
        console.echo(f"--- sample at update {trainer.update} "
                   f"(smooth loss {trainer.smooth_loss_value():.3f}) ---")
        console.echo(text)  # verbatim, escape sequences included
        console.echo("---")

    def on_train_begin(self, trainer) -> None:
        if trainer.run_dir:
            # The samples the checkpoint knows, and no more: one appended after the checkpoint
            # a resume starts from (or by a start that never reached a checkpoint) would repeat.
            atomic_write_text(os.path.join(trainer.run_dir, SAMPLES_FILE),
                              "".join(sample_markdown(*entry) for entry in self.samples))
        if trainer.update == 0:  # before the first update, as the assignment asks
            self.show(trainer, self.take(trainer))

    def on_update_end(self, trainer) -> None:
        if trainer.update % self.every == 0:
            self.show(trainer, self.take(trainer))

    def on_train_end(self, trainer) -> None:
        if not trainer.can_save:
            return  # the model is not one to sample from (it diverged, or a callback failed)
        if getattr(trainer.stop_reason, "kind", None) is Stop.INTERRUPTED:
            return  # the run goes on after a resume: its samples are those of the schedule
        if not self.samples or self.samples[-1][0] != trainer.update:
            # A sample an uninterrupted run would not take here: it must not advance the stream
            # that the checkpoint written next saves.
            state = copy.deepcopy(self.rng.bit_generator.state)
            self.show(trainer, self.take(trainer))
            self.rng.bit_generator.state = state

    def state_dict(self) -> Dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "samples": [list(s) for s in self.samples]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.samples = [(int(u), float(l), str(t)) for u, l, t in state.get("samples", [])]


@hookimpl
def register_callbacks(register):
    register(Sampler)


@hookimpl
def report_sections(trainer):
    sampler = next((cb for cb in trainer.callbacks if isinstance(cb, Sampler)), None)
    if sampler is None:
        return ReportSection("Samples during training", "No samples were taken.\n",
                             SAMPLES_SECTION)
    return ReportSection("Samples during training",
                         samples_markdown(sampler.samples, sampler.every, sampler.length),
                         SAMPLES_SECTION)


@hookimpl
def add_run_options(add_option):
    add_option(Option('sample_every', int, 10_000, min=1,
                      help="Updates between samples (one is also taken before the first update and at "
                           "the end). samples.md holds them all; report.md shows those every 10,000 "
                           "updates up to 100,000, and the last."))
    add_option(Option('sample_length', int, 200, min=1, max=MAX_SAMPLE,
                      help="Characters per sample."))
    add_option(Option('temperature', float, 1.0, min=0, min_open=True,
                      help="Sampling temperature of the samples and the report's passage (below 1: "
                           "more conservative, above 1: more varied)."))
    add_option(Option('top_k', int, None, min=1, show_default=False,
                      help="Sample only among the k likeliest characters (the samples and the "
                           "report's passage)."))
    add_option(Option('sample_seed', int, 0, min=0, fixed_on_resume=True,
                      help="Seed of the samples' own random stream, apart from training's, so that "
                           "taking samples never changes what training computes."))


def read_prime(prime: Optional[str], prime_file: Optional[str]) -> str:
    if prime is not None and prime_file is not None:
        raise CharrnnError("give --prime or --prime-file, not both")
    if prime_file is not None:
        from charrnn.data import read_text

        return read_text(prime_file, option="--prime-file")
    return prime or ""


@hookimpl
def register_commands(cli):
    from .cli import register  # Click only where the command is

    register(cli)
