"""The training text as B parallel streams: where reading is, and the one epoch-wrap rule.

As karpathy/char-rnn's ``CharSplitLMMinibatchLoader`` does, the text is cut into B contiguous
stripes of equal length (the few characters left over at the end are not read), and update after
update each stripe is read ``seq_length`` characters further, each with its own carried state.
Every update needs ``seq_length + 1`` characters of each stripe (the inputs, and the target after
the last one). When a stripe has fewer than that left, all of them go back to their start and
every stream's state is reset: one epoch. With B = 1 the stripe is the whole text, which is the
course assignment's rule.

Everything that needs to know what the next update reads (the trainer, the sampler, the report)
asks this object, so the rule is written once.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy

from .errors import CharrnnError

Array = Any


def largest_batch(n: int, seq_length: int) -> int:
    """The most stripes a text of ``n`` characters can be cut into for ``seq_length``."""
    return n // (seq_length + 1)


class TextStream:
    """``batch`` stripes of ``ids`` read ``seq_length`` at a time, on ``backend``'s device."""

    def __init__(self, backend: Any, ids: Any, batch: int, seq_length: int) -> None:
        ids = numpy.asarray(ids).reshape(-1)
        n = int(ids.shape[0])
        if batch < 1:
            raise CharrnnError(f"--batch-size {batch} is not a number of streams; pass 1 or more")
        if seq_length < 1:
            raise CharrnnError(f"--seq-length {seq_length} must be at least 1")
        if n // batch < seq_length + 1:
            fits = largest_batch(n, seq_length)
            if fits < 1:
                raise CharrnnError(f"the training text has {n} characters but --seq-length "
                                   f"{seq_length} needs at least {seq_length + 1}; use a longer "
                                   "text or a shorter --seq-length")
            raise CharrnnError(f"--batch-size {batch} is too large for {n:,} training characters: "
                               f"each stripe needs --seq-length + 1 = {seq_length + 1}; the "
                               f"largest batch that fits is {fits}")
        self.batch = int(batch)
        self.seq_length = int(seq_length)
        #: Characters per stripe.
        self.length = n // batch
        self.backend = backend
        # Column b is stripe b: a (length, B) view of the ids themselves (a memmap stays one), so
        # nothing the size of the text is copied; each update gathers its small block.
        ids = numpy.ascontiguousarray(ids)
        self._stripes = numpy.lib.stride_tricks.as_strided(
            ids, shape=(self.length, self.batch),
            strides=(ids.itemsize, ids.itemsize * self.length), writeable=False)
        self.position = 0
        self.epoch = 0

    @property
    def data(self) -> Array:
        """All the stripes, (length, B), as one array on the backend's device: a copy as large
        as the text, made on each access, for tests and tools (training reads :meth:`block`)."""
        return self.backend.asarray(numpy.ascontiguousarray(self._stripes))

    def block(self, start: int, rows: int) -> Array:
        """Rows ``start`` to ``start + rows`` of the stripes, (rows, B), on the backend."""
        return self.backend.asarray(numpy.ascontiguousarray(self._stripes[start : start + rows]))

    @property
    def characters(self) -> int:
        """Characters the stripes hold (the text's length, less what does not divide)."""
        return self.length * self.batch

    def will_wrap(self) -> bool:
        """Whether the next update starts a new epoch (every stream's state is then reset)."""
        return self.position + self.seq_length + 1 > self.length

    def next(self) -> Tuple[Array, Array, bool]:
        """The next update's inputs and targets, (T, B) each, and whether an epoch began."""
        wrapped = self.will_wrap()
        if wrapped:
            self.position = 0
            self.epoch += 1
        p, T = self.position, self.seq_length
        self.position = p + T
        rows = self.block(p, T + 1)
        return rows[:T], rows[1:], wrapped

    def next_inputs(self) -> Array:
        """What the next update reads as input, (T, B), without moving."""
        p = 0 if self.will_wrap() else self.position
        return self.block(p, self.seq_length)

    def passes(self) -> float:
        """Epochs completed plus the share of the current one read."""
        return self.epoch + self.position / self.length

    def state_dict(self) -> Dict[str, int]:
        return {"position": self.position, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        position, epoch = int(state["position"]), int(state["epoch"])
        if not 0 <= position <= self.length or epoch < 0:
            raise ValueError(f"stream position {position} (epoch {epoch}) is outside a stripe of "
                             f"{self.length} characters")
        self.position, self.epoch = position, epoch
