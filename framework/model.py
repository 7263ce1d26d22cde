"""The vanilla RNN of the course assignment, written once against the backend interface.

    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = -sum_t log p_t[y_t]

All five parameters live as views into one flat array, and their gradients as views into another.
Clipping and the optimizer then act on the flat arrays in one operation each, whatever the
backend, instead of once per parameter.

Back-propagation through time is vectorised: only the recurrence steps through time; the input
projection is a row gather, and the output layer, softmax, loss and the gradients of V, c, W and b
are one matrix operation each over the whole sequence. dU is a segment sum by character id.
"""
from __future__ import annotations

import math
from typing import Any, Dict, NamedTuple, Tuple

import numpy

from .backend import Array, Backend

PARAM_NAMES = ("b", "c", "U", "V", "W")


class GradientSupport(NamedTuple):
    """Where a flat gradient can be non-zero: entries ``[0, dense)``, and after them, of the
    ``row_size``-wide rows that follow, only ``rows``.

    A hint for optimizers whose update is zero where the gradient is zero (SGD, AdaGrad): they
    can skip the rest exactly. Others ignore it.
    """

    dense: int
    row_size: int
    rows: Array


def param_shapes(vocab_size: int, hidden: int) -> Dict[str, Tuple[int, ...]]:
    K, m = vocab_size, hidden
    return {"b": (m,), "c": (K,), "U": (m, K), "V": (K, m), "W": (m, m)}


def init_params(vocab_size: int, hidden: int, sigma: float, seed: int) -> Dict[str, numpy.ndarray]:
    """Host-side initialisation, so that every backend starts from the same numbers.

    Weights are ``randn * sigma`` drawn in the assignment's order (U, W, V); biases are zero.
    """
    rng = numpy.random.default_rng(seed)
    shapes = param_shapes(vocab_size, hidden)
    out = {name: numpy.zeros(shape) for name, shape in shapes.items()}
    for name in ("U", "W", "V"):
        out[name] = rng.standard_normal(shapes[name]) * sigma
    return out


class _Views(dict):
    """Named views into one flat array, laid out for the hot path.

    ``Vc`` (K, m+1) holds V with c as its last column, so that one product with the hidden states
    (padded with a column of ones) gives the logits, and one gives dV and dc together. ``Ut``
    (K, m) is U stored transposed, so the input projection gathers contiguous rows and dU is a
    segment sum of rows; it comes last, after the parameters whose gradients are always dense,
    so an optimizer can skip its rows that no character of the sequence touched. Users, checks
    and checkpoints see the assignment's names and shapes (``b c U V W``) as views.
    """

    def __init__(self, flat: Array, vocab_size: int, hidden: int):
        super().__init__()
        K, m = vocab_size, hidden
        self.flat = flat
        offset = 0
        for name, shape in (("Vc", (K, m + 1)), ("W", (m, m)), ("b", (m,)), ("Ut", (K, m))):
            size = math.prod(shape)
            self[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        #: Entries [0, dense) have dense gradients; the rest are the rows of ``Ut``.
        self.dense = offset - K * m
        self["V"] = self["Vc"][:, :m]
        self["c"] = self["Vc"][:, m]
        self["U"] = self["Ut"].T


class RNN:
    """Parameters, gradients and scratch space of one vanilla RNN on one backend."""

    def __init__(self, backend: Backend, vocab_size: int, hidden: int,
                 params: Dict[str, numpy.ndarray] | None = None, *, sigma: float = 0.01,
                 seed: int = 0) -> None:
        self.backend = backend
        self.K = vocab_size
        self.m = hidden
        self.shapes = param_shapes(vocab_size, hidden)
        self.size = sum(math.prod(s) for s in self.shapes.values())
        self.params = _Views(backend.zeros(self.size), vocab_size, hidden)
        self.grads = _Views(backend.zeros(self.size), vocab_size, hidden)
        #: Where the last gradient can be non-zero (see :class:`GradientSupport`), or None.
        self.support: GradientSupport | None = None
        if params is None:
            params = init_params(vocab_size, hidden, sigma, seed)
        self.set_params(params)
        self._scratch: Dict[int, Dict[str, Array]] = {}

    # -- parameters on the host --------------------------------------------------------------

    def set_params(self, params: Dict[str, Any]) -> None:
        for name in PARAM_NAMES:
            value = numpy.asarray(params[name])
            if value.shape != self.shapes[name]:
                raise ValueError(
                    f"parameter {name} has shape {value.shape}, expected {self.shapes[name]}"
                )
            self.params[name][...] = self.backend.asarray(value, dtype=self.backend.dtype)

    def get_params(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.params[name]).copy() for name in PARAM_NAMES}

    def split_flat(self, flat: Any) -> Dict[str, numpy.ndarray]:
        """A flat array laid out like the parameters (an optimizer's state, say), by name."""
        views = _Views(numpy.asarray(flat), self.K, self.m)
        return {name: views[name].copy() for name in PARAM_NAMES}

    def get_grads(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.grads[name]).copy() for name in PARAM_NAMES}

    # -- training ----------------------------------------------------------------------------

    def _buffers(self, T: int) -> Dict[str, Array]:
        """Scratch arrays for sequences of length T, allocated once and reused every update."""
        buf = self._scratch.get(T)
        if buf is None:
            z, m = self.backend.zeros, self.m
            # H1[t] is [h_{t-1}, 1]: row 0 the incoming state, rows 1.. the states the sequence
            # produces. The column of ones turns "add the bias" into part of a product, and the
            # previous-state matrix dW needs is the view H[:-1], not a copy.
            H1 = z((T + 1, m + 1))
            H1[:, m] = 1.0
            buf = {
                "H1": H1, "H": H1[:, :m], "HT1": z((m + 1, T)), "OT": z((self.K, T)),
                "A": z((T, m)), "dH": z((T, m)), "D": z((T, m)), "dA": z((T, m)),
                "tmp": z(m), "cols": self.backend.xp.arange(T),
            }
            self._scratch[T] = buf
        return buf

    def loss_and_grads(self, x: Array, y: Array, h0: Array) -> Tuple[Any, Array]:
        """Forward and backward over one sequence.

        ``x`` and ``y`` are integer id arrays of equal length T on the device; ``h0`` (m,) is the
        carried hidden state. Fills :attr:`grads` (unclipped) and :attr:`support`, and returns
        the summed cross-entropy as a device scalar and a copy of the last hidden state.
        """
        be, xp = self.backend, self.backend.xp
        p, g = self.params, self.grads
        buf = self._buffers(x.shape[0])
        H, D, dH, dA, cols = buf["H"], buf["D"], buf["dH"], buf["dA"], buf["cols"]

        PT = self._forward(x, h0, buf)  # (K, T): column t is p_t
        loss = -xp.log(PT[y, cols]).sum()

        # Backward: the output layer for all steps at once; PT becomes dO^T in place.
        PT[y, cols] -= 1.0
        xp.dot(PT, buf["H1"][1:], out=g["Vc"])  # [dV | dc] in one product
        xp.dot(PT.T, p["V"], out=dH)
        Hs = H[1:]
        xp.multiply(Hs, Hs, out=D)
        xp.subtract(1.0, D, out=D)
        be.rnn_backward(p["W"], D, dH, dA, buf["tmp"])
        xp.dot(dA.T, H[:-1], out=g["W"])
        xp.sum(dA, axis=0, out=g["b"])
        rows = be.segment_sum(x, dA, g["Ut"])
        self.support = None if rows is None else GradientSupport(g.dense, self.m, rows)
        return loss, H[-1].copy()

    def loss(self, x: Array, y: Array, h0: Array, return_hidden: bool = False):
        """The summed cross-entropy only, as a host float (for checks and evaluation).

        With ``return_hidden`` also returns a copy of the last hidden state, so that a long text
        can be read in chunks.
        """
        buf = self._buffers(x.shape[0])
        PT = self._forward(x, h0, buf)
        loss = self.backend.to_float(-self.backend.xp.log(PT[y, buf["cols"]]).sum())
        if return_hidden:
            return loss, buf["H"][-1].copy()
        return loss

    def _forward(self, x: Array, h0: Array, buf: Dict[str, Array]) -> Array:
        """Input projection as a row gather, the recurrence, then the output layer for all steps.

        Returns the probabilities transposed, (K, T): the logits come from ``Vc @ [H, 1]^T``
        with both operands contiguous, which BLAS runs markedly faster at this size than a
        product with a transposed right-hand operand.
        """
        be, xp, p = self.backend, self.backend.xp, self.params
        xp.add(p["Ut"][x], p["b"], out=buf["A"])
        H = buf["H"]
        H[0] = h0
        be.rnn_forward(p["W"], buf["A"], H, buf["tmp"])
        HT1, OT = buf["HT1"], buf["OT"]
        HT1[...] = buf["H1"][1:].T
        xp.dot(p["Vc"], HT1, out=OT)
        return be.softmax(OT, axis=0)

    def step_hidden(self, h: Array, x_id: int) -> Tuple[Array, Array]:
        """One step of generation: the next hidden state and the output logits."""
        xp = self.backend.xp
        p = self.params
        h = xp.tanh(p["W"] @ h + p["U"][:, x_id] + p["b"])
        return h, p["V"] @ h + p["c"]
