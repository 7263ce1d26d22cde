"""A long short-term memory network (``--model lstm``), the cell karpathy/char-rnn trains by default.

Written for a row vector per step: ``x_t`` is the one-hot character, ``h`` and ``c`` the hidden
and cell states (m each). One layer::

    z_t          = x_t Wx + h_{t-1} Wh + b + bh      Wx (K, 4m), Wh (m, 4m), b and bh (4m)
    [i, f, o, n] = [sigmoid, sigmoid, sigmoid, tanh](z_t), four blocks of m
    c_t          = f * c_{t-1} + i * n
    h_t          = o * tanh(c_t)
    p_t          = softmax(h_t Wy + by)              Wy (m, K), by (K)
    L            = -sum_t log p_t[y_t]               y_t = x_{t+1}, the character that follows

Back-propagation through time, with ``do_t = p_t - onehot(y_t)``::

    dWy  = sum_t h_t^T do_t      dby = sum_t do_t
    dh_t = do_t Wy^T + dz_{t+1} Wh^T
    dc_t = dh_t * o * (1 - tanh(c_t)**2) + dc_{t+1} * f_{t+1}
    dz_t = [dc_t * n * i(1-i),  dc_t * c_{t-1} * f(1-f),  dh_t * tanh(c_t) * o(1-o),  dc_t * i * (1-n**2)]
    dWx  = sum_t x_t^T dz_t      dWh = sum_t h_{t-1}^T dz_t      db = dbh = sum_t dz_t

With ``--layers N``, layer ``l > 1`` reads ``h_t`` of the layer below instead of ``x_t`` (its
``Wx`` is (m, 4m)), and parameters are numbered by layer (``Wx1 Wh1 b1 bh1 Wx2 ... Wy by``).
The two biases are PyTorch's ``bias_ih`` and ``bias_hh`` (why two: :mod:`charrnn.models.gated`).
Every bias starts at zero, the forget gate's included. char-rnn starts that one at 1, to keep the
cell's memory from the first update; measured here, that slows the early training a time-boxed
run lives on: a 2 x 256 LSTM on Tiny Shakespeare (batch 32 x 64, Adam 2e-3, float32) had a
training loss of 2.258 nats per character over updates 250-300 with the bias at 1, and 2.121 at
0 (PyTorch's nn.LSTM, whose biases start near 0: 2.203; ``benchmarks/probe_learning.py``).
Stacking, dropout and the output layer are in :mod:`charrnn.models.gated`; the recurrence is the
operations :data:`LSTM_FORWARD` and :data:`LSTM_BACKWARD` (below, with their references; a
backend may register faster kernels), one call per layer each way.
"""
from __future__ import annotations

from typing import Any

import numpy
from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, preactivations, stale, states, weights
from charrnn.model import State
from charrnn.models.gated import GatedRNN


# -- the recurrence, as operations -------------------------------------------------------------

def lstm_forward(be, Wh, G, H, C):
    """The LSTM recurrence, gates in the order input, forget, output, candidate::

        [i f o n] = g_t + h_{t-1} Wh;  i, f, o = sigmoid(.);  n = tanh(.)
        c_t = f * c_{t-1} + i * n;     h_t = o * tanh(c_t)

    ``Wh`` (m, 4m). ``G`` (T, B, 4m) holds the input projection and bias of every step on entry
    and the activated gates ``[i f o n]`` on return. ``H`` and ``C`` (T+1, B, m): row 0, the
    incoming state, is read; rows ``1..T`` are written. Returns None.
    """
    xp = be.xp
    m = H.shape[-1]
    for t in range(G.shape[0]):
        g = G[t]
        g += H[t] @ Wh
        be.sigmoid_(g[:, : 3 * m])
        xp.tanh(g[:, 3 * m :], out=g[:, 3 * m :])
        i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
        C[t + 1] = f * C[t] + i * n
        H[t + 1] = o * xp.tanh(C[t + 1])


def lstm_backward(be, Wh, G, C, dH, dG):
    """Back-propagation through :func:`lstm_forward`.

    ``G`` holds the activated gates and ``C`` the cell states the forward pass wrote; ``dH``
    (T, B, m) the loss gradient reaching each ``h_t`` from outside the recurrence. Writes ``dG``
    (T, B, 4m), the gradient at the gates' pre-activations::

        dh = dH[t] + dG[t+1] @ Wh.T            dc = dc_{t+1} * f_{t+1} + dh * o * (1 - tanh(c_t)**2)
        di = dc * n * i (1 - i)                 df = dc * c_{t-1} * f (1 - f)
        do = dh * tanh(c_t) * o (1 - o)         dn = dc * i * (1 - n**2)
    """
    xp = be.xp
    m = C.shape[-1]
    dh_next = xp.zeros_like(dH[0])
    dc_next = xp.zeros_like(dH[0])
    for t in range(dH.shape[0] - 1, -1, -1):
        g = G[t]
        i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
        tc = xp.tanh(C[t + 1])
        dh = dH[t] + dh_next
        dc = dc_next + dh * o * (1.0 - tc * tc)
        d = dG[t]
        d[:, :m] = dc * n * i * (1.0 - i)
        d[:, m : 2 * m] = dc * C[t] * f * (1.0 - f)
        d[:, 2 * m : 3 * m] = dh * tc * o * (1.0 - o)
        d[:, 3 * m :] = dc * i * (1.0 - n * n)
        dc_next = dc * f
        dh_next = d @ Wh.T


def _forward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    T, B, m = sizes.T, sizes.B, sizes.m
    return Case([weights(rng, (m, 4 * m), dtype),
                 preactivations(rng, (T, B, 4 * m), dtype, saturated),
                 states(rng, (T + 1, B, m), dtype), states(rng, (T + 1, B, m), dtype)],
                written=(1, 2, 3))


def _backward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    """The forward pass's outputs, made by the reference (so gates and cells agree)."""
    from charrnn.backend import Backend

    T, B, m = sizes.T, sizes.B, sizes.m
    forward = _forward_case(rng, sizes, dtype, saturated)
    Wh, G, H, C = forward.args
    lstm_forward(Backend(numpy.dtype(dtype).name), Wh, G, H, C)
    return Case([Wh, G, C, rng.standard_normal((T, B, m)).astype(dtype),
                 stale(rng, (T, B, 4 * m), dtype)], written=(4,))


LSTM_FORWARD = Operation("lstm.forward", lstm_forward, _forward_case, doc=lstm_forward.__doc__,
                         legacy_method="lstm_forward",
                         reads=("Wh", "G", "H[0]", "C[0]"), writes=("G", "H", "C"))
LSTM_BACKWARD = Operation("lstm.backward", lstm_backward, _backward_case, rtol=2.0,
                          doc=lstm_backward.__doc__, legacy_method="lstm_backward",
                          reads=("Wh", "G", "C", "dH"), writes=("dG",))


class LSTM(GatedRNN):
    name = "lstm"
    gates = 4  # i, f, o, n
    #: Close to char-rnn's uniform(-0.08, 0.08), whose standard deviation is 0.046.
    default_sigma = 0.05
    #: At 0.1 the gates stay so near 0.5 that some gradient entries of a stacked cell fall to
    #: ~1e-7, where rounding alone gives relative errors near 1e-4; at 0.3 the worst of 8 checks
    #: was 5e-6.
    check_sigma = 0.3

    def zero_state(self, batch: int) -> State:
        shape = (self.layers, batch, self.hidden)
        return (self.backend.zeros(shape), self.backend.zeros(shape))  # (h, c)

    def _H_C(self, layer: int, T: int, B: int):
        shape = (T + 1, B, self.hidden)
        return self.buffer(f"H{layer}", shape), self.buffer(f"C{layer}", shape)

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        T, B = Z.shape[:2]
        H, C = self._H_C(layer, T, B)
        H[0], C[0] = state[0][layer], state[1][layer]
        # z_t += h_{t-1} Wh; gates; c_t = f c_{t-1} + i n; h_t = o tanh(c_t)
        self.backend.kernel(LSTM_FORWARD)(self.params[self.names[layer][1]], Z, H, C)
        return H

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        xp, m = self.backend.xp, self.hidden
        T, B = Z.shape[:2]
        Wh = self.names[layer][1]
        H, C = self._H_C(layer, T, B)
        self.backend.kernel(LSTM_BACKWARD)(self.params[Wh], Z, C, dH, dZ)  # dz_t for every step
        xp.dot(H[:-1].reshape(T * B, m).T, dZ.reshape(T * B, -1), out=self.grads[Wh])  # dWh

    def cell_state_after(self, T: int, B: int) -> State:
        h, c = self.zero_state(B)
        for layer in range(self.layers):
            H, C = self._H_C(layer, T, B)
            h[layer], c[layer] = H[T], C[T]
        return (h, c)


@hookimpl
def register_models(register):
    register(LSTM)


@hookimpl
def register_operations(register):
    register(LSTM_FORWARD)
    register(LSTM_BACKWARD)
