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
backend's :meth:`~charrnn.backend.Backend.lstm_forward` and
:meth:`~charrnn.backend.Backend.lstm_backward`, one call per layer each way.
"""
from __future__ import annotations

from typing import Any

from charrnn import hookimpl
from charrnn.model import State
from charrnn.models.gated import GatedRNN


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
        self.backend.lstm_forward(self.params[self.names[layer][1]], Z, H, C)
        return H

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        xp, m = self.backend.xp, self.hidden
        T, B = Z.shape[:2]
        Wh = self.names[layer][1]
        H, C = self._H_C(layer, T, B)
        self.backend.lstm_backward(self.params[Wh], Z, C, dH, dZ)  # dz_t for every step
        xp.dot(H[:-1].reshape(T * B, m).T, dZ.reshape(T * B, -1), out=self.grads[Wh])  # dWh

    def cell_state_after(self, T: int, B: int) -> State:
        h, c = self.zero_state(B)
        for layer in range(self.layers):
            H, C = self._H_C(layer, T, B)
            h[layer], c[layer] = H[T], C[T]
        return (h, c)

    def cell_step(self, layer: int, z: Any, state: State, new: State) -> Any:
        xp, m = self.backend.xp, self.hidden
        h, c = state[0][layer], state[1][layer]
        z = z + h @ self.params[self.names[layer][1]]
        i, f, o = (0.5 * xp.tanh(0.5 * z[:, k * m : (k + 1) * m]) + 0.5 for k in range(3))
        new[1][layer] = f * c + i * xp.tanh(z[:, 3 * m :])
        new[0][layer] = o * xp.tanh(new[1][layer])
        return new[0][layer]


@hookimpl
def register_models(register):
    register(LSTM)
