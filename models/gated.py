"""The base of the gated cells (LSTM, GRU, a third party's MGU): their input projection and
output layer, on the stacked base every built-in model shares (:mod:`charrnn.models.stacked`:
layers, dropout, the loops of the forward and backward passes).

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
* The recurrence is one operation each way (a kernel per backend, see :mod:`charrnn.kernels`),
  which leaves the gates and their gradients in (T, B, gates * m) arrays, so every weight
  gradient is one matrix product over all steps. Sampling runs the same operation at T = 1.
* With ``--embedding N``, as torch-rnn's ``wordvec_size``, the first layer reads ``e_t``, row
  ``x_t`` of a table ``E`` (K, N), and projects it as an upper layer projects its input:
  ``z_t = e_t Wx + b`` with Wx (N, gates*m). ``E`` is then the character-indexed table stored
  last, and ``dE`` the rows of ``dz Wx^T`` summed by character. Off by default: one-hot input is
  char-rnn's, and the race (``benchmarks/race.py``) decides whether a preset uses it.
* With ``--dropout p``, as in char-rnn, each layer's output is multiplied by a mask of 0
  (probability p) and ``1/(1-p)`` on its way to the layer above or to Wy, while training only.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy
from charrnn.model import layer_names
from charrnn.models.stacked import StackedRNN


#: Per-layer parameter names: input weights, recurrent weights, and the two biases.
NAMES = ("Wx", "Wh", "b", "bh")


class GatedRNN(StackedRNN):
    """A stack of gated cells with a softmax output layer; subclasses define the cell
    (:meth:`cell_forward`, :meth:`cell_backward`, :meth:`cell_state_after` and
    :meth:`~charrnn.model.Model.zero_state`) and its number of gates."""

    #: Blocks of m columns in the input projection (4 for LSTM: i f o n; 3 for GRU: r u n).
    gates: ClassVar[int] = 1

    embeds = True

    @classmethod
    def param_shapes(cls, vocab_size: int, *, hidden: int, layers: int,
                     embedding: int = 0) -> Dict[str, Tuple[int, ...]]:
        K, m, k = vocab_size, hidden, cls.gates
        shapes: Dict[str, Tuple[int, ...]] = {"E": (K, embedding)} if embedding else {}
        first = embedding or K  # what the first layer's Wx reads: e_t, or the one-hot x_t
        for layer, (Wx, Wh, b, bh) in enumerate(layer_names(NAMES, layers)):
            shapes.update({Wx: (first if layer == 0 else m, k * m), Wh: (m, k * m), b: (k * m,),
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

    def _table(self) -> str:
        """The parameter row ``x_t`` of which the first layer reads: ``E``, or its ``Wx``."""
        return "E" if self.embedding else self.names[0][0]

    def char_axes(self) -> Dict[str, int]:
        return {self._table(): 0}

    def layout(self):
        self.names = layer_names(NAMES, self.layers)
        first = self._table()
        return [(n, s) for n, s in self.shapes.items() if n != first] + [(first, self.shapes[first])]

    # -- the input projection and the output layer ----------------------------------------

    def project_input(self, layer: int, source: Any, Z: Any) -> None:
        xp, p = self.backend.xp, self.params
        Wx, _, b, bh = self.names[layer]
        bias = p[b] + p[bh]
        T, B = Z.shape[:2]
        if layer == 0 and not self.embedding:
            xp.add(p[Wx][source], bias, out=Z)  # z_t = x_t Wx + b + bh: a row lookup
            return
        if layer == 0:  # e_t = row x_t of E, then projected as an upper layer's input is
            rows = self.buffer("E rows", (T, B, self.embedding))
            xp.take(p["E"], source, axis=0, out=rows)
            source = rows
        width = source.shape[-1]
        xp.dot(source.reshape(T * B, width), p[Wx], out=Z.reshape(T * B, -1))
        Z += bias

    def project_input_backward(self, layer: int, source: Any, dZ: Any,
                               dH_below: Optional[Any]) -> None:
        xp, p, g = self.backend.xp, self.params, self.grads
        Wx, _, b, bh = self.names[layer]
        xp.sum(dZ, axis=0, out=g[b])  # db = sum_t dz_t
        g[bh][...] = g[b]  # dbh = db
        if layer == 0 and not self.embedding:  # dWx = sum_t x_t^T dz_t: rows of dz by character
            rows = self.backend.segment_sum(source.reshape(-1), dZ, g[Wx])
            self.support = self.support_from_rows(rows, Wx)
            return
        if layer == 0:
            T, B = source.shape
            below = self.buffer("E rows", (T, B, self.embedding)).reshape(T * B, -1)
            dH_below = self.buffer("dE rows", (T * B, self.embedding))
        else:
            below = source.reshape(dZ.shape[0], self.hidden)
        xp.dot(below.T, dZ, out=g[Wx])  # dWx = sum_t h'_t^T dz_t (or e_t^T dz_t)
        xp.dot(dZ, p[Wx].T, out=dH_below)  # into the layer below (or E): dz_t Wx^T
        if layer == 0:  # dE: rows of dz Wx^T summed by character
            rows = self.backend.segment_sum(source.reshape(-1), dH_below, g["E"])
            self.support = self.support_from_rows(rows, "E")

    def output_loss(self, top: Any, y: Any, batch: int) -> Any:
        xp, p = self.backend.xp, self.params
        O = self.buffer("O", (top.shape[0], self.K))
        xp.dot(top, p["Wy"], out=O)  # o_t = h_t Wy + by
        O += p["by"]
        self._top = top
        return self.softmax_loss(O, y, batch)

    def output_backward(self, y: Any, batch: int, dH: Any) -> None:
        xp, p, g = self.backend.xp, self.params, self.grads
        top = self._top
        dO = self.softmax_grad_(self.buffer("O", (top.shape[0], self.K)), y, batch)
        xp.dot(top.T, dO, out=g["Wy"])  # dWy = sum_t h_t^T do_t
        xp.sum(dO, axis=0, out=g["by"])  # dby = sum_t do_t
        xp.dot(dO, p["Wy"].T, out=dH)  # dh_t from the output: do_t Wy^T

    def output_logits(self, top: Any) -> Any:
        return top @ self.params["Wy"] + self.params["by"]
