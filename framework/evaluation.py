"""The loss of a model on a text read as streams: validation during training, and
``Generator.loss`` on a text of the user's.

One function for both, so that a held-out text scored from Python gives the very number the run
reported for it.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy

from .model import Model


def stream_loss(model: Model, ids: Any, batch: int = 1, chunk: int = 1000) -> Optional[float]:
    """Mean cross-entropy per character (nats) of ``model`` predicting each id of ``ids`` from
    those before it.

    The text is read as ``batch`` contiguous stripes, each from a zero state carried across the
    whole stripe; with ``batch`` 1 it is read as one sequence. The chunking only bounds memory.
    None for a text shorter than two characters.
    """
    n = int(ids.shape[0])
    if n < 2:
        return None
    backend = model.backend
    batch = max(1, min(batch, n // 2))
    length = n // batch
    # Stripe b is column b of a (length, B) view of the ids (a memmap stays one): each chunk
    # copies only its own rows, so a large text is never copied whole.
    stripes = numpy.lib.stride_tricks.as_strided(
        ids, shape=(length, batch), strides=(ids.itemsize, ids.itemsize * length),
        writeable=False) if isinstance(ids, numpy.ndarray) else \
        backend.xp.ascontiguousarray(ids[: batch * length].reshape(batch, length).T)
    chunk = max(1, chunk // batch) if batch > 1 else chunk  # about ``chunk`` rows a call
    state = model.zero_state(batch)
    total = 0.0
    for start in range(0, length - 1, chunk):
        stop = min(start + chunk, length - 1)
        block = backend.asarray(numpy.ascontiguousarray(stripes[start : stop + 1])) \
            if isinstance(stripes, numpy.ndarray) else stripes[start : stop + 1]
        x, y = block[:-1], block[1:]
        loss, state = model.loss(x, y, state)
        total += loss * batch  # the model averages over the batch
    return total / ((length - 1) * batch)
