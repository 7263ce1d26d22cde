"""Named parameter arrays that are views into one flat array.

A model keeps all its parameters in one flat array and all their gradients in another, so that
clipping and the optimizer update are one operation each over the whole model, whatever the
backend, instead of one per parameter. :class:`FlatParams` hands out the named views.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence, Tuple

Array = Any
Layout = Sequence[Tuple[str, Tuple[int, ...]]]


def layout_size(layout: Layout) -> int:
    return sum(math.prod(shape) for _, shape in layout)


class FlatParams(dict):
    """``name -> view`` into :attr:`flat`, laid out in ``layout`` order.

    A plain dict, so that lookups on the hot path cost a dict lookup. :meth:`alias` adds a name
    for a view of a stored array (a transpose, say), so that users see a parameter in the shape
    its equation uses while it is stored in the shape the computation prefers.
    """

    def __init__(self, flat: Array, layout: Layout) -> None:
        super().__init__()
        self.flat = flat
        offset = 0
        for name, shape in layout:
            size = math.prod(shape)
            self[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        if offset != flat.shape[0]:
            raise ValueError(f"layout covers {offset} entries of a flat array of {flat.shape[0]}")

    def alias(self, name: str, view: Array) -> None:
        self[name] = view


class GradientSupport(NamedTuple):
    """Where a flat gradient can be non-zero: entries ``[0, dense)``, and after them, of the
    ``row_size``-wide rows that follow, only ``rows``.

    Models store their character-indexed table (the embedding, one row per character) last in
    the flat array, and a sequence touches only the rows of the characters it holds. A hint for
    optimizers whose update is exactly zero where the gradient is zero (SGD, AdaGrad): they may
    skip the other rows. Others ignore it.
    """

    dense: int
    row_size: int
    rows: Array
