"""What the gated cells (LSTM, GRU) share: stacking, dropout, the output layer, backward plumbing.

Both are written for row vectors: layer ``l`` computes its input projection
``z_t = x_t Wx + b`` (``x_t`` the one-hot character for the first layer, the output of the layer
below otherwise), runs its cell's recurrence, and the top layer's ``h_t`` feeds
``p_t = softmax(h_t Wy + by)``. A subclass supplies the cell: its equations, its state, and the
backend's whole-sequence operations it calls (see :mod:`charrnn.models.lstm` and
:mod:`charrnn.models.gru`).

How it is computed, for B sequences at once (arrays are (T, B, ·)):

* Each layer has two bias vectors, ``b`` and ``bh``, added together, as cuDNN's and PyTorch's
  cells have (``bias_ih``, ``bias_hh``). The function needs one; training does not: both get the
  same gradient, so together they move twice as far per update under any of the optimizers. In
  300 updates of Adam on Tiny Shakespeare a 2 x 256 PyTorch LSTM with one of its biases frozen
  ends 0.06 nats per character behind the same with both (``benchmarks/probe_learning.py``), and
  trains as charrnn did with one bias.
* The first layer's ``x_t Wx`` is row ``x_t`` of Wx: the input projection of all steps is a row
  lookup, and ``dWx`` a sum of rows of ``dz`` by character
  (:meth:`~charrnn.backend.Backend.segment_sum`). Wx is stored last in the flat array, so an
  optimizer may skip the rows no character of the batch touched. An upper layer's projection is
  one matrix product over all steps.
* The recurrence is one backend operation each way, which leaves the gates and their gradients in
  (T, B, gates * m) arrays, so every weight gradient is one matrix product over all steps.
* With ``--dropout p``, as in char-rnn, each layer's output is multiplied by a mask of 0
  (probability p) and ``1/(1-p)`` on its way to the layer above or to Wy, while training only.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy
from charrnn.model import Model, State, layer_names


#: Per-layer parameter names: input weights, recurrent weights, and the two biases.
NAMES = ("Wx", "Wh", "b", "bh")


class GatedRNN(Model):
    """A stack of gated cells with a softmax output layer; subclasses define the cell."""

    #: Blocks of m columns in the input projection (4 for LSTM: i f o n; 3 for GRU: r z n).
    gates: ClassVar[int] = 1

    @classmethod
    def param_shapes(cls, vocab_size: int, *, hidden: int, layers: int) -> Dict[str, Tuple[int, ...]]:
        K, m, k = vocab_size, hidden, cls.gates
        shapes: Dict[str, Tuple[int, ...]] = {}
        for layer, (Wx, Wh, b, bh) in enumerate(layer_names(NAMES, layers)):
            shapes.update({Wx: (K if layer == 0 else m, k * m), Wh: (m, k * m), b: (k * m,),
                           bh: (k * m,)})
        shapes.update({"Wy": (m, K), "by": (K,)})
        return shapes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.names: List[Tuple[str, ...]] = []  # (Wx, Wh, b, bh) per layer; set by layout()
        super().__init__(*args, **kwargs)

    def missing_param(self, name: str) -> Optional[Any]:
        # Checkpoints of charrnn 0.2.0 have one bias per layer: their second starts at zero,
        # which computes the same function.
        if name.rstrip("0123456789") == "bh":
            return numpy.zeros(self.shapes[name])
        return None

    def char_axes(self) -> Dict[str, int]:
        return {self.names[0][0]: 0}  # row x_t of the first layer's Wx

    def layout(self):
        self.names = layer_names(NAMES, self.layers)
        first = self.names[0][0]
        return [(n, s) for n, s in self.shapes.items() if n != first] + [(first, self.shapes[first])]

    # -- the cell: what a subclass defines ---------------------------------------------------

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        """Run layer ``layer``'s recurrence over ``Z`` (T, B, gates*m), its input projections
        (overwritten with whatever the backward pass needs); return its ``H`` (T+1, B, m)."""
        raise NotImplementedError

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        """From ``dH`` (T, B, m), the gradient reaching each ``h_t`` from above, write ``dZ``
        (T, B, gates*m) and the gradient of the layer's ``Wh``."""
        raise NotImplementedError

    def cell_state_after(self, T: int, B: int) -> State:
        """The state after the last step of the forward pass just run."""
        raise NotImplementedError

    # -- forward -----------------------------------------------------------------------------

    def _forward(self, x: Any, state: State, rng: Any) -> Any:
        """Every layer over all steps; returns the top layer's output, (T*B, m)."""
        xp, p = self.backend.xp, self.params
        T, B = x.shape
        m, width = self.hidden, self.gates * self.hidden
        self._masks: List[Any] = []
        inputs = None
        for layer, (Wx, _, b, bh) in enumerate(self.names):
            Z = self.buffer(f"Z{layer}", (T, B, width))
            bias = p[b] + p[bh]
            if layer == 0:
                xp.add(p[Wx][x], bias, out=Z)  # z_t = x_t Wx + b + bh: a row lookup
            else:
                xp.dot(inputs.reshape(T * B, m), p[Wx], out=Z.reshape(T * B, width))
                Z += bias
            H = self.cell_forward(layer, Z, state)
            inputs, mask = self.dropped(H[1:], rng, f"X{layer + 1}")  # on its way up
            self._masks.append(mask)
        return inputs.reshape(T * B, m)

    def _logits(self, top: Any) -> Any:
        xp, p = self.backend.xp, self.params
        O = self.buffer("O", (top.shape[0], self.K))
        xp.dot(top, p["Wy"], out=O)  # o_t = h_t Wy + by
        O += p["by"]
        return O

    def loss(self, x: Any, y: Any, state: State) -> Tuple[float, State]:
        T, B = x.shape
        O = self._logits(self._forward(x, state, None))
        loss = self.softmax_loss(O, y.reshape(-1), B)
        return self.backend.to_float(loss), self.cell_state_after(T, B)

    # -- forward and backward ----------------------------------------------------------------

    def loss_and_grads(self, x: Any, y: Any, state: State, rng: Any = None) -> Tuple[Any, State]:
        xp, be, p, g = self.backend.xp, self.backend, self.params, self.grads
        T, B = x.shape
        m, N, width = self.hidden, T * B, self.gates * self.hidden
        top = self._forward(x, state, rng)
        O = self._logits(top)
        loss = self.softmax_loss(O, y.reshape(-1), B)
        new_state = self.cell_state_after(T, B)

        dO = self.softmax_grad_(O, y.reshape(-1), B)  # do_t = p_t - onehot(y_t)
        xp.dot(top.T, dO, out=g["Wy"])  # dWy = sum_t h_t^T do_t
        xp.sum(dO, axis=0, out=g["by"])  # dby = sum_t do_t
        dH = self.buffer(f"dH{self.layers - 1}", (T, B, m))
        xp.dot(dO, p["Wy"].T, out=dH.reshape(N, m))  # dh_t from the output: do_t Wy^T
        for layer in range(self.layers - 1, -1, -1):
            Wx, _, b, bh = self.names[layer]
            mask = self._masks[layer]
            if mask is not None:
                dH *= mask
            Z = self.buffer(f"Z{layer}", (T, B, width))
            dZ = self.buffer(f"dZ{layer}", (T, B, width))
            self.cell_backward(layer, Z, dH, dZ)  # dz_t, and dWh = sum_t h_{t-1}^T dz_t
            dZ2 = dZ.reshape(N, width)
            xp.sum(dZ2, axis=0, out=g[b])  # db = sum_t dz_t
            g[bh][...] = g[b]  # dbh = db
            if layer == 0:  # dWx = sum_t x_t^T dz_t: rows of dz summed by character
                rows = be.segment_sum(x.reshape(-1), dZ2, g[Wx])
                self.support = self.support_from_rows(rows, Wx)
            else:
                below = self._layer_input(layer, T, B).reshape(N, m)
                xp.dot(below.T, dZ2, out=g[Wx])  # dWx = sum_t h'_t^T dz_t
                dH = self.buffer(f"dH{layer - 1}", (T, B, m))
                xp.dot(dZ2, p[Wx].T, out=dH.reshape(N, m))  # into the layer below: dz_t Wx^T
        return loss, new_state

    def _layer_input(self, layer: int, T: int, B: int) -> Any:
        """What layer ``layer`` (> 0) read: the output of the layer below, after dropout."""
        if self._masks[layer - 1] is None:
            return self.buffer(f"H{layer - 1}", (T + 1, B, self.hidden))[1:]
        return self.buffer(f"X{layer}", (T, B, self.hidden))

    # -- generation --------------------------------------------------------------------------

    def step(self, state: State, ids: Any) -> Tuple[State, Any]:
        """One character per stream: each layer's recurrence is the same sequence kernel as in
        training, at ``T = 1``, so sampling computes what the loss computes."""
        xp, p = self.backend.xp, self.params
        B = ids.shape[0]
        width = self.gates * self.hidden
        below: Optional[Any] = None
        for layer, (Wx, _, b, bh) in enumerate(self.names):
            Z = self.buffer(f"Z{layer}", (1, B, width))
            bias = p[b] + p[bh]
            if layer == 0:
                xp.add(p[Wx][ids], bias, out=Z[0])  # z = x Wx + b + bh: a row lookup
            else:
                xp.dot(below, p[Wx], out=Z[0])
                Z[0] += bias
            below = self.cell_forward(layer, Z, state)[1]
        return self.cell_state_after(1, B), below @ p["Wy"] + p["by"]
