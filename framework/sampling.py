"""Generating text from a model, one character at a time."""
from __future__ import annotations

from typing import Any, Iterator, List, Optional

import numpy

from .model import Model, State

#: The longest text one sampling call generates (``--sample-length``, ``--length``, the report's
#: passage): a million characters is more than anyone reads, and a typo of a few zeros more
#: would otherwise run for hours.
MAX_SAMPLE = 1_000_000


def next_char_probs(logits: numpy.ndarray, temperature: float = 1.0,
                    top_k: Optional[int] = None) -> numpy.ndarray:
    """Softmax of ``logits / temperature``, keeping only the ``top_k`` largest when given."""
    logits = numpy.asarray(logits, dtype=numpy.float64).reshape(-1)
    with numpy.errstate(over="ignore", divide="ignore", invalid="ignore"):
        z = logits / temperature
        if not numpy.isfinite(z).all():
            # A temperature so small the division overflows: shift first, so that the largest
            # logit is 0 and the others fall to -inf at worst (greedy sampling, in effect).
            z = (logits - logits.max()) / temperature
    if top_k is not None and 0 < top_k < z.shape[0]:
        cut = numpy.partition(z, -top_k)[-top_k]
        z = numpy.where(z >= cut, z, -numpy.inf)
    z = z - z.max()
    with numpy.errstate(under="ignore"):
        p = numpy.exp(z)
    return p / p.sum()


def _ids(model: Model, i: int) -> Any:
    return model.backend.asarray(numpy.array([i], dtype=numpy.int64))


def iter_sample_ids(model: Model, state: State, x0: int, length: int, *,
                    temperature: float = 1.0, top_k: Optional[int] = None,
                    rng: numpy.random.Generator) -> Iterator[int]:
    """``length`` ids sampled after feeding ``x0`` from ``state`` (a batch of one), each as soon
    as it is drawn.

    ``state`` lives on the model's backend and is not modified. Draws come from ``rng`` alone, so
    a sampler with its own seeded stream does not disturb training's random state.
    """
    be = model.backend
    x = int(x0)
    for _ in range(length):
        state, logits = model.step(state, _ids(model, x))
        probs = next_char_probs(be.to_numpy(logits), temperature, top_k)
        x = int(rng.choice(probs.shape[0], p=probs))
        yield x


def sample_ids(model: Model, state: State, x0: int, length: int, *, temperature: float = 1.0,
               top_k: Optional[int] = None, rng: numpy.random.Generator) -> List[int]:
    """The ids of :func:`iter_sample_ids`, as a list."""
    return list(iter_sample_ids(model, state, x0, length, temperature=temperature, top_k=top_k,
                                rng=rng))


def warm_up(model: Model, state: State, ids: List[int]) -> State:
    """Feed a prime through the network; returns the state after all but the last id."""
    for i in ids[:-1]:
        state, _ = model.step(state, _ids(model, int(i)))
    return state
