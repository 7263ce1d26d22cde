"""The vanilla RNN of the course assignment (``--model rnn``, the default).

One layer, for one character ``x_t`` (a one-hot vector) and the hidden state ``h``::

    a_t = W h_{t-1} + U x_t + b          W (m, m), U (m, K), b (m)
    h_t = tanh(a_t)
    o_t = V h_t + c                      V (K, m), c (K)
    p_t = softmax(o_t)
    L   = -sum_t log p_t[y_t]            y_t = x_{t+1}, the character that follows

Back-propagation through time, with ``do_t = p_t - onehot(y_t)``::

    dV = sum_t do_t h_t^T      dc = sum_t do_t      dh_t = V^T do_t + W^T da_{t+1}
    da_t = dh_t * (1 - h_t**2)
    dW = sum_t da_t h_{t-1}^T  dU = sum_t da_t x_t^T  db = sum_t da_t

With ``--layers N`` the layers are stacked: layer ``l > 1`` reads ``h_t`` of the layer below
where layer 1 reads ``x_t`` (so its ``U`` is (m, m)), and ``V`` reads the top layer. Parameters
are then numbered by layer (``W1 U1 b1 W2 U2 b2 V c``). With ``--dropout p``, as in char-rnn,
each layer's output is multiplied by a mask of 0 (probability p) and ``1/(1-p)`` on its way to
the layer above or to ``V``, while training only.

How the code computes this, for B sequences at once (arrays are (T, B, ·); see
:mod:`charrnn.model` for why the loss is averaged over B). Figures are from
``benchmarks/bench_layout.py`` at the course's configuration (m=100, T=25, K=103, float64):

* ``U x_t`` picks column ``x_t`` of U, so the input projection of all steps is a row lookup in
  the embedding table ``E = U^T`` (K, m), which is what is stored: 8 µs against 180 µs for
  one-hot products. ``dU`` is then a sum of the rows of ``da`` by character
  (:meth:`~charrnn.backend.Backend.segment_sum`). ``E`` is stored last, so AdaGrad and SGD may
  skip the rows no character of the batch touched: no faster at K=103, 1.8x faster on the
  optimizer step at K=1000.
* Only the recurrence steps through time, in one operation each way (:data:`RNN_FORWARD`,
  :data:`RNN_BACKWARD`, below, with their references; a backend may register faster kernels);
  every other line is one matrix operation over all steps.
* ``V`` and ``c`` are stored side by side as ``Vc`` (K, m+1), and the outputs of the top layer
  get a row of ones, so the logits of all steps are one product ``Vc [h; 1]`` and ``dV`` and
  ``dc`` another, with the logits as columns (K, T*B). That is no faster than ``V h + c`` in rows
  (0.99x) but it is 0.1.0's arithmetic: the course configuration computes bit for bit what it
  always did, where any other rounding order would decorrelate two runs within a few dozen
  updates.
* Intermediate arrays are allocated once per sequence shape and reused
  (:meth:`~charrnn.model.Model.buffer`): 13 µs against 29 µs per update.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy
from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, preactivations, stale, states, weights
from charrnn.model import State, layer_names
from charrnn.models.stacked import StackedRNN


# -- the recurrence, as operations -------------------------------------------------------------

def rnn_forward(be, Wh, A, H):
    """``h_t = tanh(Wh h_{t-1} + a_t)`` for every step, each row of the batch at once.

    ``Wh`` (m, m) in the course's column-vector orientation (the course's W), so a batch of row
    vectors is multiplied by ``Wh.T``. ``A`` (T, B, m) holds the input projection and bias of
    every step. ``H`` (T+1, B, m): row 0, the incoming state, is read; rows ``1..T`` are
    written. Returns None, as every operation does: what it computes is in its outputs.
    """
    xp = be.xp
    for t in range(A.shape[0]):
        xp.tanh(H[t] @ Wh.T + A[t], out=H[t + 1])


def rnn_backward(be, Wh, H, dH, dA):
    """Back-propagation through :func:`rnn_forward`.

    ``H`` is what the forward pass wrote; ``dH`` (T, B, m) the loss gradient reaching each
    ``h_t`` from outside the recurrence (the output layer, the layer above). Writes ``dA``
    (T, B, m), the gradient at each pre-activation ``a_t``::

        dA[t] = (dH[t] + dA[t+1] @ Wh) * (1 - h_t**2)        (nothing flows in after T)
    """
    xp = be.xp
    carry = xp.zeros_like(dH[0])
    for t in range(dH.shape[0] - 1, -1, -1):
        h = H[t + 1]
        dA[t] = (dH[t] + carry) * (1.0 - h * h)
        carry = dA[t] @ Wh


def _forward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    T, B, m = sizes.T, sizes.B, sizes.m
    return Case([weights(rng, (m, m), dtype), preactivations(rng, (T, B, m), dtype, saturated),
                 states(rng, (T + 1, B, m), dtype)], written=(2,))


def _backward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    T, B, m = sizes.T, sizes.B, sizes.m
    H = numpy.tanh(preactivations(rng, (T + 1, B, m), numpy.float64, saturated)).astype(dtype)
    return Case([weights(rng, (m, m), dtype), H, rng.standard_normal((T, B, m)).astype(dtype),
                 stale(rng, (T, B, m), dtype)], written=(3,))


RNN_FORWARD = Operation("rnn.forward", rnn_forward, _forward_case, doc=rnn_forward.__doc__,
                        legacy_method="rnn_forward",
                        reads=("Wh", "A", "H[0]"), writes=("H",))
RNN_BACKWARD = Operation("rnn.backward", rnn_backward, _backward_case, rtol=2.0,
                         doc=rnn_backward.__doc__, legacy_method="rnn_backward",
                         reads=("Wh", "H", "dH"), writes=("dA",))


class RNN(StackedRNN):
    """The course's cell on the stacked base: its own input projection (the embedding table
    ``E = U^T``) and output layer (``Vc``, logits as columns), its arithmetic unchanged since
    0.1.0."""

    name = "rnn"
    default_sigma = 0.01  # the assignment's randn * 0.01

    @classmethod
    def param_shapes(cls, vocab_size: int, *, hidden: int, layers: int) -> Dict[str, Tuple[int, ...]]:
        K, m = vocab_size, hidden
        if layers == 1:  # the assignment's order
            return {"W": (m, m), "U": (m, K), "V": (K, m), "b": (m,), "c": (K,)}
        shapes: Dict[str, Tuple[int, ...]] = {}
        for layer, (W, U, b) in enumerate(layer_names(("W", "U", "b"), layers)):
            shapes.update({W: (m, m), U: (m, K if layer == 0 else m), b: (m,)})
        shapes.update({"V": (K, m), "c": (K,)})
        return shapes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.names: List[Tuple[str, ...]] = []  # (W, U, b) per layer; set before the views
        super().__init__(*args, **kwargs)

    def char_axes(self) -> Dict[str, int]:
        return {self.names[0][1]: 1}  # U's column x_t

    def layout(self):
        self.names = layer_names(("W", "U", "b"), self.layers)
        K, m = self.K, self.hidden
        stored = [("Vc", (K, m + 1))]
        for layer, (W, U, b) in enumerate(self.names):
            stored += [(W, (m, m)), (b, (m,))] + ([(U, (m, m))] if layer else [])
        # The embedding table E = U^T goes last: its gradient is the only sparse one.
        return stored + [("E", (K, m))]

    def add_aliases(self, views) -> None:
        m = self.hidden
        views.alias(self.names[0][1], views["E"].T)
        views.alias("V", views["Vc"][:, :m])
        views.alias("c", views["Vc"][:, m])

    def init_params(self, seed: int) -> Dict[str, numpy.ndarray]:
        """``randn * sigma`` drawn in the assignment's order (U, W, then V; layer by layer for a
        stack), biases zero: one layer starts exactly where the assignment's code does."""
        rng = numpy.random.default_rng(seed)
        out = {name: numpy.zeros(shape) for name, shape in self.shapes.items()}
        for W, U, _ in self.names:
            out[U] = rng.standard_normal(self.shapes[U]) * self.sigma
            out[W] = rng.standard_normal(self.shapes[W]) * self.sigma
        out["V"] = rng.standard_normal(self.shapes["V"]) * self.sigma
        return out

    def zero_state(self, batch: int) -> State:
        return (self.backend.zeros((self.layers, batch, self.hidden)),)

    # -- the stacked base's hooks --------------------------------------------------------------

    def project_input(self, layer: int, source: Any, Z: Any) -> None:
        xp, p = self.backend.xp, self.params
        _, U, b = self.names[layer]
        if layer == 0:
            xp.add(p["E"][source], p[b], out=Z)  # a_t = U x_t + b ...
        else:
            T, B, m = Z.shape
            xp.dot(source.reshape(T * B, m), p[U].T, out=Z.reshape(T * B, m))
            Z += p[b]

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        T, B, m = Z.shape
        H = self.buffer(f"H{layer}", (T + 1, B, m))
        H[0] = state[0][layer]
        # ... + W h_{t-1}, h_t = tanh(a_t)
        self.backend.kernel(RNN_FORWARD)(self.params[self.names[layer][0]], Z, H)
        return H

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        xp, p, g = self.backend.xp, self.params, self.grads
        W = self.names[layer][0]
        T, B, m = dZ.shape
        H = self.buffer(f"H{layer}", (T + 1, B, m))
        self.backend.kernel(RNN_BACKWARD)(p[W], H, dH, dZ)  # da_t = (dh_t + W^T da_{t+1}) * (1 - h_t**2)
        xp.dot(dZ.reshape(T * B, m).T, H[:-1].reshape(T * B, m), out=g[W])  # dW = sum_t da_t h_{t-1}^T

    def project_input_backward(self, layer: int, source: Any, dZ: Any,
                               dH_below: Optional[Any]) -> None:
        xp, p, g = self.backend.xp, self.params, self.grads
        _, U, b = self.names[layer]
        xp.sum(dZ, axis=0, out=g[b])  # db = sum_t da_t
        if layer == 0:  # dU = sum_t da_t x_t^T: rows of da summed by character
            rows = self.backend.segment_sum(source.reshape(-1), dZ, g["E"])
            self.support = self.support_from_rows(rows, "E")
        else:
            xp.dot(dZ.T, source.reshape(dZ.shape[0], self.hidden), out=g[U])  # dU = sum_t da_t h'_t^T
            xp.dot(dZ, p[U], out=dH_below)  # into the layer below: U^T da_t

    def cell_state_after(self, T: int, B: int) -> State:
        if self.layers == 1:
            return (self.buffer("H0", (T + 1, B, self.hidden))[T:].copy(),)
        h = self.backend.zeros((self.layers, B, self.hidden))
        for layer in range(self.layers):
            h[layer] = self.buffer(f"H{layer}", (T + 1, B, self.hidden))[T]
        return (h,)

    def _logits(self, top) -> Tuple[Any, Any]:
        """The logits of every step as columns, (K, N), and the top outputs with a column of
        ones, (N, m+1): ``o_t = V h_t + c = Vc [h_t; 1]``."""
        xp, p = self.backend.xp, self.params
        N, m = top.shape
        top1 = self.buffer("top1", (N, m + 1))
        top1[:, :m] = top
        top1[:, m] = 1.0
        HT1 = self.buffer("HT1", (m + 1, N))
        HT1[...] = top1.T
        OT = self.buffer("OT", (self.K, N))
        xp.dot(p["Vc"], HT1, out=OT)
        return OT, top1

    def output_loss(self, top: Any, y: Any, batch: int) -> Any:
        """``-sum_t log p_t[y_t]`` over the batch's average; the logits become the
        probabilities."""
        xp = self.backend.xp
        OT, self._top1 = self._logits(top)
        PT = self.backend.softmax(OT, axis=0)  # p_t = softmax(o_t), column by column
        loss = -xp.log(PT[y, self._rows(PT.shape[1])]).sum()
        return loss if batch == 1 else loss / batch

    def output_backward(self, y: Any, batch: int, dH: Any) -> None:
        xp, p, g = self.backend.xp, self.params, self.grads
        top1 = self._top1
        N = top1.shape[0]
        dOT = self.buffer("OT", (self.K, N))  # do_t = p_t - onehot(y_t), column by column
        dOT[y, self._rows(N)] -= 1.0
        if batch != 1:
            dOT *= 1.0 / batch
        xp.dot(dOT, top1, out=g["Vc"])  # [dV | dc] = sum_t do_t [h_t; 1]^T
        xp.dot(dOT.T, p["V"], out=dH)  # V^T do_t

    def output_logits(self, top: Any) -> Any:
        return top @ self.params["V"].T + self.params["c"]

@hookimpl
def register_models(register):
    register(RNN)


@hookimpl
def register_operations(register):
    register(RNN_FORWARD)
    register(RNN_BACKWARD)
