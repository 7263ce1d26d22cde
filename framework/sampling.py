"""Generating text from a model, one character at a time."""
from __future__ import annotations

from typing import Any, List, Optional

import numpy

from .model import RNN


def next_char_probs(logits: numpy.ndarray, temperature: float = 1.0,
                    top_k: Optional[int] = None) -> numpy.ndarray:
    """Softmax of ``logits / temperature``, keeping only the ``top_k`` largest when given."""
    z = numpy.asarray(logits, dtype=numpy.float64) / temperature
    if top_k is not None and 0 < top_k < z.shape[0]:
        cut = numpy.partition(z, -top_k)[-top_k]
        z = numpy.where(z >= cut, z, -numpy.inf)
    z = z - z.max()
    p = numpy.exp(z)
    return p / p.sum()


def sample_ids(model: RNN, h0: Any, x0: int, length: int, *, temperature: float = 1.0,
               top_k: Optional[int] = None, rng: numpy.random.Generator) -> List[int]:
    """``length`` ids sampled after feeding ``x0`` from hidden state ``h0``.

    ``h0`` lives on the model's backend and is not modified. Draws come from ``rng`` alone, so a
    sampler with its own seeded stream does not disturb training's random state.
    """
    be = model.backend
    h = h0
    x = int(x0)
    out: List[int] = []
    for _ in range(length):
        h, logits = model.step_hidden(h, x)
        probs = next_char_probs(be.to_numpy(logits), temperature, top_k)
        x = int(rng.choice(probs.shape[0], p=probs))
        out.append(x)
    return out


def warm_up(model: RNN, h0: Any, ids: List[int]) -> Any:
    """Feed a prime through the network; returns the hidden state after all but the last id."""
    h = h0
    for i in ids[:-1]:
        h, _ = model.step_hidden(h, int(i))
    return h
