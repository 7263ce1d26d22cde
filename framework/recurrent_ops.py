"""The recurrences of the built-in models, as whole-sequence backend operations.

Only these loops step through time; everything else a model computes is one array operation over
all steps. Each forward operation reads the input projections of every step (computed beforehand
as one matrix product, or one row lookup) and writes the states; each backward operation reads
what the forward one stored and writes the gradients at the pre-activations, from which the model
gets every weight gradient as one matrix product. That is the grain at which a backend replaces a
recurrence with one fused kernel.

The code here is the reference: written once against ``self.xp``, as plainly as the equations
allow. Shapes are ``(T, B, ·)``: time, batch, features. ``H[0]`` (and ``C[0]``) hold the incoming
state, which the models carry from one sequence to the next, so it must be read, not assumed
zero; rows ``1..T`` are written. Those rows, and every other output, arrive holding whatever the
previous update left in the model's reused buffers. Inputs not documented as written are left
unchanged.

Sigmoid is computed as ``0.5 * tanh(0.5 x) + 0.5``: the same function, and it cannot overflow.
"""
from __future__ import annotations

from typing import Any

Array = Any


class RecurrentOps:
    """Mixed into :class:`charrnn.backend.Backend`; ``self.xp`` is the array module.

    A backend overrides one of these to replace a recurrence with its own loop or one fused
    kernel; the conformance suite checks each at ``T`` 1 and 7, ``B`` 1 and 3, against this code.
    """

    xp: Any

    def sigmoid_(self, x: Array) -> Array:
        """``x = 1 / (1 + exp(-x))`` in place, in a form that cannot overflow."""
        xp = self.xp
        x *= 0.5
        xp.tanh(x, out=x)
        x *= 0.5
        x += 0.5
        return x

    # -- vanilla RNN -------------------------------------------------------------------------

    def rnn_forward(self, Wh: Array, A: Array, H: Array) -> Array:
        """``h_t = tanh(Wh h_{t-1} + a_t)`` for every step, each row of the batch at once.

        ``Wh`` (m, m) in the course's column-vector orientation (the course's W), so a batch of
        row vectors is multiplied by ``Wh.T``. ``A`` (T, B, m) holds the input projection and
        bias of every step. Writes ``H[1:]`` of ``H`` (T+1, B, m) and returns ``H``.
        """
        xp = self.xp
        for t in range(A.shape[0]):
            xp.tanh(H[t] @ Wh.T + A[t], out=H[t + 1])
        return H

    def rnn_backward(self, Wh: Array, H: Array, dH: Array, dA: Array) -> Array:
        """Back-propagation through :meth:`rnn_forward`.

        ``H`` is what the forward pass wrote; ``dH`` (T, B, m) the loss gradient reaching each
        ``h_t`` from outside the recurrence (the output layer, the layer above). Writes ``dA``
        (T, B, m), the gradient at each pre-activation ``a_t``, and returns it::

            dA[t] = (dH[t] + dA[t+1] @ Wh) * (1 - h_t**2)        (nothing flows in after T)

        For a one-step sequence that is ``dA[0] = dH[0] * (1 - h_1**2)``: the loop is correct for
        every ``T``, one included.
        """
        xp = self.xp
        carry = xp.zeros_like(dH[0])
        for t in range(dH.shape[0] - 1, -1, -1):
            h = H[t + 1]
            dA[t] = (dH[t] + carry) * (1.0 - h * h)
            carry = dA[t] @ Wh
        return dA

    # -- LSTM --------------------------------------------------------------------------------

    def lstm_forward(self, Wh: Array, G: Array, H: Array, C: Array) -> None:
        """The LSTM recurrence, gates in the order input, forget, output, candidate::

            [i f o n] = g_t + h_{t-1} Wh;  i, f, o = sigmoid(.);  n = tanh(.)
            c_t = f * c_{t-1} + i * n;     h_t = o * tanh(c_t)

        ``Wh`` (m, 4m). ``G`` (T, B, 4m) holds the input projection and bias of every step on
        entry and the activated gates ``[i f o n]`` on return. Writes ``H[1:]`` and ``C[1:]`` of
        ``H``, ``C`` (T+1, B, m).
        """
        xp = self.xp
        m = H.shape[-1]
        for t in range(G.shape[0]):
            g = G[t]
            g += H[t] @ Wh
            self.sigmoid_(g[:, : 3 * m])
            xp.tanh(g[:, 3 * m :], out=g[:, 3 * m :])
            i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
            C[t + 1] = f * C[t] + i * n
            H[t + 1] = o * xp.tanh(C[t + 1])

    def lstm_backward(self, Wh: Array, G: Array, C: Array, dH: Array, dG: Array) -> None:
        """Back-propagation through :meth:`lstm_forward`.

        ``G`` holds the activated gates and ``C`` the cell states the forward pass wrote; ``dH``
        (T, B, m) the loss gradient reaching each ``h_t`` from outside the recurrence. Writes
        ``dG`` (T, B, 4m), the gradient at the gates' pre-activations::

            dh = dH[t] + dG[t+1] @ Wh.T            dc = dc_{t+1} * f_{t+1} + dh * o * (1 - tanh(c_t)**2)
            di = dc * n * i (1 - i)                 df = dc * c_{t-1} * f (1 - f)
            do = dh * tanh(c_t) * o (1 - o)         dn = dc * i * (1 - n**2)
        """
        xp = self.xp
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

    # -- GRU ---------------------------------------------------------------------------------

    def gru_forward(self, Wh: Array, G: Array, H: Array, RH: Array) -> None:
        """The GRU recurrence of char-rnn (the reset gate applied before the product)::

            [r u] = sigmoid(g_t[r u] + h_{t-1} Wh[:, r u])
            n     = tanh(g_t[n] + (r * h_{t-1}) Wh[:, n])
            h_t   = u * n + (1 - u) * h_{t-1}

        ``Wh`` (m, 3m), column blocks ``r u n`` (reset, update, candidate). ``G`` (T, B, 3m) holds the input projection and
        bias of every step on entry and the activated ``[r u n]`` on return. Writes ``H[1:]`` of
        ``H`` (T+1, B, m) and ``RH`` (T, B, m), the products ``r * h_{t-1}`` the weight gradient
        needs.
        """
        xp = self.xp
        m = H.shape[-1]
        for t in range(G.shape[0]):
            g, h = G[t], H[t]
            g[:, : 2 * m] += h @ Wh[:, : 2 * m]
            self.sigmoid_(g[:, : 2 * m])
            r, u = g[:, :m], g[:, m : 2 * m]
            RH[t] = r * h
            g[:, 2 * m :] += RH[t] @ Wh[:, 2 * m :]
            n = g[:, 2 * m :]
            xp.tanh(n, out=n)
            H[t + 1] = u * n + (1.0 - u) * h

    def gru_backward(self, Wh: Array, G: Array, H: Array, RH: Array, dH: Array,
                     dG: Array) -> None:
        """Back-propagation through :meth:`gru_forward`.

        ``G``, ``H`` and ``RH`` are what the forward pass wrote; ``dH`` (T, B, m) the loss
        gradient reaching each ``h_t`` from outside the recurrence. Writes ``dG`` (T, B, 3m), the
        gradient at the pre-activations of ``r``, ``u`` and ``n``::

            dh  = dH[t] + (gradient reaching h_t from step t+1)
            dn  = dh * u * (1 - n**2)            du = dh * (n - h_{t-1}) * u (1 - u)
            drh = dn @ Wh[:, n].T                 dr = drh * h_{t-1} * r (1 - r)
            into h_{t-1}: dh * (1 - u) + drh * r + [dr du] @ Wh[:, r u].T
        """
        m = H.shape[-1]
        W_ru, W_n = Wh[:, : 2 * m], Wh[:, 2 * m :]
        dh_next = self.xp.zeros_like(dH[0])
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
