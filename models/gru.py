"""A gated recurrent unit network (``--model gru``), as karpathy/char-rnn builds it.

Written for a row vector per step: ``x_t`` is the one-hot character, ``h`` the hidden state (m).
The reset gate multiplies ``h_{t-1}`` before its product with the candidate's weights, as in
char-rnn (and Cho et al.); cuDNN applies it after. One layer::

    z_t     = x_t Wx + b + bh                        Wx (K, 3m), b, bh (3m): blocks r, u, n
    [r, u]  = sigmoid(z_t[r, u] + h_{t-1} Wh[:, r, u])      Wh (m, 3m)
    n       = tanh(z_t[n] + (r * h_{t-1}) Wh[:, n])
    h_t     = u * n + (1 - u) * h_{t-1}
    p_t     = softmax(h_t Wy + by)                   Wy (m, K), by (K)
    L       = -sum_t log p_t[y_t]                    y_t = x_{t+1}, the character that follows

(``u`` is the update gate, written ``z`` in most papers.) Back-propagation through time, with
``do_t = p_t - onehot(y_t)`` and ``dz_t`` the gradient at the three blocks' pre-activations::

    dh_t     = do_t Wy^T + (what step t+1 sends back, below)
    dz_t[n]  = dh_t * u * (1 - n**2)
    dz_t[u]  = dh_t * (n - h_{t-1}) * u(1-u)
    d(rh)    = dz_t[n] Wh[:, n]^T
    dz_t[r]  = d(rh) * h_{t-1} * r(1-r)
    sent back to h_{t-1}:  dh_t * (1 - u) + d(rh) * r + dz_t[r, u] Wh[:, r, u]^T
    dWx = sum_t x_t^T dz_t    db = dbh = sum_t dz_t
    dWh[:, r, u] = sum_t h_{t-1}^T dz_t[r, u]    dWh[:, n] = sum_t (r * h_{t-1})^T dz_t[n]

With ``--layers N``, layer ``l > 1`` reads ``h_t`` of the layer below instead of ``x_t``, and
parameters are numbered by layer (``Wx1 Wh1 b1 bh1 Wx2 ... Wy by``); the two biases are
explained in :mod:`charrnn.models.gated`. Stacking, dropout and the output
layer are in :mod:`charrnn.models.gated`; the recurrence is the operations :data:`GRU_FORWARD`
and :data:`GRU_BACKWARD` (below, with their references; a backend may register faster kernels),
one call per layer each way.
"""
from __future__ import annotations

from typing import Any

import numpy
from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, preactivations, stale, states, weights
from charrnn.model import State
from charrnn.models.gated import GatedRNN


# -- the recurrence, as operations -------------------------------------------------------------

def gru_forward(be, Wh, G, H, RH):
    """The GRU recurrence of char-rnn (the reset gate applied before the product)::

        [r u] = sigmoid(g_t[r u] + h_{t-1} Wh[:, r u])
        n     = tanh(g_t[n] + (r * h_{t-1}) Wh[:, n])
        h_t   = u * n + (1 - u) * h_{t-1}

    ``Wh`` (m, 3m), column blocks ``r u n`` (reset, update, candidate); the update gate ``u``
    weighs the candidate, so ``u`` near 1 replaces the state and near 0 keeps it. ``G``
    (T, B, 3m) holds the input projection and bias of every step on entry and the activated
    ``[r u n]`` on return. ``H`` (T+1, B, m): row 0 is read, rows ``1..T`` written. Writes ``RH``
    (T, B, m), the products ``r * h_{t-1}`` the weight gradient needs. Returns None.
    """
    xp = be.xp
    m = H.shape[-1]
    for t in range(G.shape[0]):
        g, h = G[t], H[t]
        g[:, : 2 * m] += h @ Wh[:, : 2 * m]
        be.sigmoid_(g[:, : 2 * m])
        r, u = g[:, :m], g[:, m : 2 * m]
        RH[t] = r * h
        g[:, 2 * m :] += RH[t] @ Wh[:, 2 * m :]
        n = g[:, 2 * m :]
        xp.tanh(n, out=n)
        H[t + 1] = u * n + (1.0 - u) * h


def gru_backward(be, Wh, G, H, RH, dH, dG):
    """Back-propagation through :func:`gru_forward`.

    ``G``, ``H`` and ``RH`` are what the forward pass wrote; ``dH`` (T, B, m) the loss gradient
    reaching each ``h_t`` from outside the recurrence. Writes ``dG`` (T, B, 3m), the gradient
    at the pre-activations of ``r``, ``u`` and ``n``::

        dh  = dH[t] + (gradient reaching h_t from step t+1)
        dn  = dh * u * (1 - n**2)            du = dh * (n - h_{t-1}) * u (1 - u)
        drh = dn @ Wh[:, n].T                 dr = drh * h_{t-1} * r (1 - r)
        into h_{t-1}: dh * (1 - u) + drh * r + [dr du] @ Wh[:, r u].T
    """
    m = H.shape[-1]
    W_ru, W_n = Wh[:, : 2 * m], Wh[:, 2 * m :]
    dh_next = be.xp.zeros_like(dH[0])
    for t in range(dH.shape[0] - 1, -1, -1):
        g, h_prev = G[t], H[t]
        r, u, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m :]
        dh = dH[t] + dh_next
        d = dG[t]
        d[:, 2 * m :] = dh * u * (1.0 - n * n)
        d[:, m : 2 * m] = dh * (n - h_prev) * u * (1.0 - u)
        drh = d[:, 2 * m :] @ W_n.T
        d[:, :m] = drh * h_prev * r * (1.0 - r)
        dh_next = dh * (1.0 - u) + drh * r + d[:, : 2 * m] @ W_ru.T


def _forward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    T, B, m = sizes.T, sizes.B, sizes.m
    return Case([weights(rng, (m, 3 * m), dtype),
                 preactivations(rng, (T, B, 3 * m), dtype, saturated),
                 states(rng, (T + 1, B, m), dtype), stale(rng, (T, B, m), dtype)],
                written=(1, 2, 3))


def _backward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    """The forward pass's outputs, made by the reference (so gates and states agree)."""
    from charrnn.backend import Backend

    T, B, m = sizes.T, sizes.B, sizes.m
    Wh, G, H, RH = _forward_case(rng, sizes, dtype, saturated).args
    gru_forward(Backend(numpy.dtype(dtype).name), Wh, G, H, RH)
    return Case([Wh, G, H, RH, rng.standard_normal((T, B, m)).astype(dtype),
                 stale(rng, (T, B, 3 * m), dtype)], written=(5,))


GRU_FORWARD = Operation("gru.forward", gru_forward, _forward_case, doc=gru_forward.__doc__,
                        legacy_method="gru_forward",
                        reads=("Wh", "G", "H[0]"), writes=("G", "H", "RH"))
GRU_BACKWARD = Operation("gru.backward", gru_backward, _backward_case, rtol=2.0,
                         doc=gru_backward.__doc__, legacy_method="gru_backward",
                         reads=("Wh", "G", "H", "RH", "dH"), writes=("dG",))


class GRU(GatedRNN):
    name = "gru"
    gates = 3  # r, u, n
    #: Close to char-rnn's uniform(-0.08, 0.08), whose standard deviation is 0.046.
    default_sigma = 0.05
    #: At 0.1 the gates stay so near 0.5 that some gradient entries of a stacked cell fall to
    #: ~1e-7, where rounding alone gives relative errors near 1e-4; at 0.3 the worst of 8 checks
    #: was 5e-6.
    check_sigma = 0.3

    def zero_state(self, batch: int) -> State:
        return (self.backend.zeros((self.layers, batch, self.hidden)),)

    def _H_RH(self, layer: int, T: int, B: int):
        m = self.hidden
        return self.buffer(f"H{layer}", (T + 1, B, m)), self.buffer(f"RH{layer}", (T, B, m))

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        T, B = Z.shape[:2]
        H, RH = self._H_RH(layer, T, B)
        H[0] = state[0][layer]
        # gates r, u; n = tanh(z[n] + (r h_{t-1}) Wh[:, n]); h_t = u n + (1 - u) h_{t-1}
        self.backend.kernel(GRU_FORWARD)(self.params[self.names[layer][1]], Z, H, RH)
        return H

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        m = self.hidden
        T, B = Z.shape[:2]
        N = T * B
        Wh = self.names[layer][1]
        H, RH = self._H_RH(layer, T, B)
        self.backend.kernel(GRU_BACKWARD)(self.params[Wh], Z, H, RH, dH, dZ)  # dz_t for every step
        dZ2, dWh = dZ.reshape(N, 3 * m), self.grads[Wh]
        dWh[:, : 2 * m] = H[:-1].reshape(N, m).T @ dZ2[:, : 2 * m]  # r and u blocks
        dWh[:, 2 * m :] = RH.reshape(N, m).T @ dZ2[:, 2 * m :]  # n block

    def cell_state_after(self, T: int, B: int) -> State:
        (h,) = self.zero_state(B)
        for layer in range(self.layers):
            h[layer] = self._H_RH(layer, T, B)[0][T]
        return (h,)


@hookimpl
def register_models(register):
    register(GRU)


@hookimpl
def register_operations(register):
    register(GRU_FORWARD)
    register(GRU_BACKWARD)
