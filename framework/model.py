"""The vanilla RNN of the course assignment, written once against the backend interface.

    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = -sum_t log p_t[y_t]

All five parameters live as views into one flat array, and their gradients as views into another.
Clipping and the optimizer then act on the flat arrays in one operation each, whatever the
backend, instead of once per parameter.

Back-propagation through time is vectorised: only the recurrence steps through time; the input
projection is a row gather, and the output layer, softmax, loss and the gradients of V, c, W and b
are one matrix operation each over the whole sequence. dU is a scatter-add by character id.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy

from .backend import Array, Backend

PARAM_NAMES = ("b", "c", "U", "V", "W")


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


class _Views:
    """Named views into one flat array.

    U is stored transposed, as ``Ut`` (K, m), so that the input projection gathers contiguous
    rows and dU is a contiguous segment sum; ``U`` is the (m, K) view of it that users, checks
    and checkpoints see.
    """

    LAYOUT = ("b", "c", "V", "W", "Ut")

    def __init__(self, flat: Array, shapes: Dict[str, Tuple[int, ...]]):
        self.flat = flat
        self.views: Dict[str, Array] = {}
        offset = 0
        for name in self.LAYOUT:
            shape = shapes[name] if name != "Ut" else shapes["U"][::-1]
            size = math.prod(shape)
            self.views[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        self.views["U"] = self.views["Ut"].T

    def __getitem__(self, name: str) -> Array:
        return self.views[name]


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
        self.params = _Views(backend.zeros(self.size), self.shapes)
        self.grads = _Views(backend.zeros(self.size), self.shapes)
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
        views = _Views(numpy.asarray(flat), self.shapes)
        return {name: views[name].copy() for name in PARAM_NAMES}

    def get_grads(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.grads[name]).copy() for name in PARAM_NAMES}

    # -- training ----------------------------------------------------------------------------

    def _buffers(self, T: int) -> Dict[str, Array]:
        """Scratch arrays for sequences of length T, allocated once and reused every update."""
        buf = self._scratch.get(T)
        if buf is None:
            z = self.backend.zeros
            buf = {
                # H[0] is the incoming hidden state, H[1:] the states the sequence produces, so
                # the "previous state" matrix dW needs is the view H[:-1], not a copy.
                "H": z((T + 1, self.m)), "A": z((T, self.m)), "O": z((T, self.K)),
                "dH": z((T, self.m)), "D": z((T, self.m)), "dA": z((T, self.m)),
                "tmp": z(self.m), "rows": self.backend.xp.arange(T),
            }
            self._scratch[T] = buf
        return buf

    def loss_and_grads(self, x: Array, y: Array, h0: Array) -> Tuple[Any, Array]:
        """Forward and backward over one sequence.

        ``x`` and ``y`` are integer id arrays of equal length T on the device; ``h0`` (m,) is the
        carried hidden state. Fills :attr:`grads` (unclipped) and returns the summed
        cross-entropy as a device scalar and a copy of the last hidden state.
        """
        be, xp = self.backend, self.backend.xp
        p, g = self.params, self.grads
        buf = self._buffers(x.shape[0])
        H, D, dH, dA, rows = buf["H"], buf["D"], buf["dH"], buf["dA"], buf["rows"]
        Hs = H[1:]

        P = self._forward(x, h0, buf)
        loss = -xp.log(P[rows, y]).sum()

        # Backward: the output layer for all steps at once; P becomes dO in place.
        P[rows, y] -= 1.0
        xp.dot(P.T, Hs, out=g["V"])
        xp.sum(P, axis=0, out=g["c"])
        xp.dot(P, p["V"], out=dH)
        xp.multiply(Hs, Hs, out=D)
        xp.subtract(1.0, D, out=D)
        be.rnn_backward(p["W"], D, dH, dA, buf["tmp"])
        xp.dot(dA.T, H[:-1], out=g["W"])
        xp.sum(dA, axis=0, out=g["b"])
        be.segment_sum(x, dA, g["Ut"])
        return loss, H[-1].copy()

    def loss(self, x: Array, y: Array, h0: Array, return_hidden: bool = False):
        """The summed cross-entropy only, as a host float (for checks and evaluation).

        With ``return_hidden`` also returns a copy of the last hidden state, so that a long text
        can be read in chunks.
        """
        buf = self._buffers(x.shape[0])
        P = self._forward(x, h0, buf)
        loss = self.backend.to_float(-self.backend.xp.log(P[buf["rows"], y]).sum())
        if return_hidden:
            return loss, buf["H"][-1].copy()
        return loss

    def _forward(self, x: Array, h0: Array, buf: Dict[str, Array]) -> Array:
        """Input projection as a row gather, the recurrence, then the output layer for all steps."""
        be, xp, p = self.backend, self.backend.xp, self.params
        xp.add(p["Ut"][x], p["b"], out=buf["A"])
        H = buf["H"]
        H[0] = h0
        be.rnn_forward(p["W"], buf["A"], H, buf["tmp"])
        O = buf["O"]
        xp.dot(H[1:], p["V"].T, out=O)
        O += p["c"]
        return be.softmax(O)

    def step_hidden(self, h: Array, x_id: int) -> Tuple[Array, Array]:
        """One step of generation: the next hidden state and the output logits."""
        xp = self.backend.xp
        p = self.params
        h = xp.tanh(p["W"] @ h + p["U"][:, x_id] + p["b"])
        return h, p["V"] @ h + p["c"]
