"""An example third-party charrnn model: a bigram model (``--model bigram``).

The next character's logits are one row of a table, looked up by the current character; there is
no hidden state. For one character ``x_t`` (an id) and the one that follows, ``y_t``::

    o_t = A[x_t]                         A (K, K), the only parameter ("table")
    p_t = softmax(o_t)
    L   = -sum_t log p_t[y_t]

and, with ``do_t = p_t - onehot(y_t)``::

    dA[k] = sum_{t : x_t = k} do_t

For B streams the loss is summed over the T steps and averaged over the B streams, as for every
charrnn model. The gradient is a sum of rows of ``do`` by character
(:meth:`~charrnn.backend.Backend.segment_sum`), so a sequence touches only the rows of the
characters it holds, and optimizers that take the hint skip the others.

Being stateless it is the smallest useful model: a baseline that any recurrent model should beat,
and a short example of the :class:`charrnn.model.Model` interface. Everything is written against
``backend.xp`` (the NumPy API), so it runs on every backend.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy
from charrnn import hookimpl
from charrnn.backend import Array, Backend
from charrnn.errors import CharrnnError
from charrnn.model import Model, State

__version__ = "0.1.0"


class BigramModel(Model):
    """``--model bigram``: one table row of logits per current character; no state."""

    name = "bigram"
    default_sigma = 0.01

    def __init__(self, backend: Backend, vocab_size: int, *, hidden: int = 100, layers: int = 1,
                 dropout: float = 0.0, sigma: Optional[float] = None, seed: int = 0,
                 params: Optional[Dict[str, Any]] = None) -> None:
        # Refused before the base class allocates anything. hidden and dropout are accepted and
        # ignored: there is no hidden layer to size or to drop units from.
        if int(layers) != 1:
            raise CharrnnError(f"the bigram model has no layers (--layers {layers}); "
                               "drop --layers")
        super().__init__(backend, vocab_size, hidden=hidden, layers=1, dropout=dropout,
                         sigma=sigma, seed=seed, params=params)

    @classmethod
    def param_shapes(cls, vocab_size: int, *, hidden: int, layers: int) -> Dict[str, Tuple[int, ...]]:
        return {"table": (vocab_size, vocab_size)}

    def char_axes(self) -> Dict[str, int]:
        return {"table": 0}  # row x_t

    def zero_state(self, batch: int) -> State:
        return ()

    def options(self) -> Dict[str, Any]:
        return {}  # the vocabulary alone fixes the shape: checkpoints record no hidden size

    def describe(self) -> str:
        return f"{self.name} ({self.K}x{self.K} table; {self.size:,} parameters)"

    def _logits(self, ids: Array) -> Array:
        """``o_t = A[x_t]`` for the flat ids ``(N,)``, into a reused (N, K) buffer."""
        O = self.buffer("O", (ids.shape[0], self.K))
        O[...] = self.params["table"][ids]
        return O

    def loss(self, x: Array, y: Array, state: State) -> Tuple[float, State]:
        B = x.shape[1]
        O = self._logits(x.reshape(-1))
        loss = self.softmax_loss(O, y.reshape(-1), B)
        return self.backend.to_float(loss), ()

    def loss_and_grads(self, x: Array, y: Array, state: State,
                       rng: Optional[numpy.random.Generator] = None) -> Tuple[Any, State]:
        B = x.shape[1]
        ids, targets = x.reshape(-1), y.reshape(-1)
        O = self._logits(ids)
        loss = self.softmax_loss(O, targets, B)
        dO = self.softmax_grad_(O, targets, B)  # do_t = p_t - onehot(y_t), over B
        rows = self.backend.segment_sum(ids, dO, self.grads["table"])  # dA[k] = sum do_t
        self.support = self.support_from_rows(rows, "table")
        return loss, ()

    def step(self, state: State, ids: Array) -> Tuple[State, Array]:
        return (), self.params["table"][ids]  # a copy: callers may scale it in place


@hookimpl
def register_models(register):
    register(BigramModel)
