"""``--model mgu``: the minimal gated unit (Zhou, Wu, Zhang and Zhou, 2016), a GRU with its reset
and update gates made one, as a cell on charrnn's stacked base, with its own kernel.

One layer, for row vectors (``x_t`` the one-hot character, or the output of the layer below)::

    [zf, zn] = x_t Wx + b + bh                   Wx (K, 2m), Wh (m, 2m), b and bh (2m)
    f        = sigmoid(zf + h_{t-1} Wh[:, f])     the one gate
    n        = tanh(zn + (f * h_{t-1}) Wh[:, n])  the candidate
    h_t      = h_{t-1} + f * (n - h_{t-1})        f near 1 takes the candidate, near 0 keeps h

Back-propagation through one step, with ``dh`` the gradient reaching ``h_t``::

    dzn   = dh * f * (1 - n**2)
    dfh   = dzn Wh[:, n]^T                        the gradient reaching f * h_{t-1}
    dzf   = (dh * (n - h_{t-1}) + dfh * h_{t-1}) * f * (1 - f)
    into h_{t-1}: dh * (1 - f) + dfh * f + dzf Wh[:, f]^T
    dWh[:, f] = sum_t h_{t-1}^T dzf               dWh[:, n] = sum_t (f * h_{t-1})^T dzn

What this module provides, each through charrnn's hooks:

* the model, :class:`MGU`: one small class on :class:`charrnn.models.gated.GatedRNN`, which
  gives it layers, dropout, the output layer, the state, sampling and checkpoints;
* its recurrence as two operations, :data:`MGU_FORWARD` and :data:`MGU_BACKWARD`, each with its
  reference written once against the backend's array module (so it runs on any backend, a GPU's
  included) and the conformance suite's cases;
* a faster kernel for both on the NumPy backend (preallocated buffers, the weights' column
  blocks made contiguous, sigmoid and tanh through one ``exp``), which the suite checks against
  the reference.
"""
from __future__ import annotations

from typing import Any

import numpy
from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, preactivations, stale, states, weights
from charrnn.model import State
from charrnn.models.gated import GatedRNN


# -- the operations, with their references ------------------------------------------------------

def mgu_forward(be, Wh, G, H, FH):
    """The recurrence: ``G`` (T, B, 2m) holds the input projections ``[zf zn]`` on entry and the
    activated ``[f n]`` on return; ``H`` (T+1, B, m) has its row 0 read and rows ``1..T``
    written; ``FH`` (T, B, m) gets ``f * h_{t-1}``, which the weight gradient needs."""
    xp = be.xp
    m = H.shape[-1]
    for t in range(G.shape[0]):
        g, h = G[t], H[t]
        g[:, :m] += h @ Wh[:, :m]
        be.sigmoid_(g[:, :m])
        f = g[:, :m]
        FH[t] = f * h
        g[:, m:] += FH[t] @ Wh[:, m:]
        xp.tanh(g[:, m:], out=g[:, m:])
        H[t + 1] = h + f * (g[:, m:] - h)


def mgu_backward(be, Wh, G, H, FH, dH, dG):
    """Back-propagation through :func:`mgu_forward`: from ``dH`` (T, B, m), the gradient
    reaching each ``h_t`` from outside the recurrence, writes ``dG`` (T, B, 2m), the gradient
    at the pre-activations ``[zf zn]``."""
    m = H.shape[-1]
    W_f, W_n = Wh[:, :m], Wh[:, m:]
    dh_next = be.xp.zeros_like(dH[0])
    for t in range(dH.shape[0] - 1, -1, -1):
        g, h = G[t], H[t]
        f, n = g[:, :m], g[:, m:]
        dh = dH[t] + dh_next
        d = dG[t]
        d[:, m:] = dh * f * (1.0 - n * n)
        dfh = d[:, m:] @ W_n.T
        d[:, :m] = (dh * (n - h) + dfh * h) * f * (1.0 - f)
        dh_next = dh * (1.0 - f) + dfh * f + d[:, :m] @ W_f.T


def _forward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    T, B, m = sizes.T, sizes.B, sizes.m
    return Case([weights(rng, (m, 2 * m), dtype),
                 preactivations(rng, (T, B, 2 * m), dtype, saturated),
                 states(rng, (T + 1, B, m), dtype), stale(rng, (T, B, m), dtype)],
                written=(1, 2, 3))


def _backward_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    from charrnn.backend import Backend

    T, B, m = sizes.T, sizes.B, sizes.m
    Wh, G, H, FH = _forward_case(rng, sizes, dtype, saturated).args
    mgu_forward(Backend(numpy.dtype(dtype).name), Wh, G, H, FH)  # what the forward pass leaves
    return Case([Wh, G, H, FH, rng.standard_normal((T, B, m)).astype(dtype),
                 stale(rng, (T, B, 2 * m), dtype)], written=(5,))


MGU_FORWARD = Operation("mgu.forward", mgu_forward, _forward_case, doc=mgu_forward.__doc__,
                        reads=("Wh", "G", "H[0]"), writes=("G", "H", "FH"))
MGU_BACKWARD = Operation("mgu.backward", mgu_backward, _backward_case, rtol=2.0,
                         doc=mgu_backward.__doc__,
                         reads=("Wh", "G", "H", "FH", "dH"), writes=("dG",))


# -- the NumPy kernels ----------------------------------------------------------------------------

def _sigmoid_(x):
    numpy.negative(x, out=x)
    numpy.exp(x, out=x)
    x += 1.0
    numpy.reciprocal(x, out=x)


def _tanh_(x):
    numpy.multiply(x, -2.0, out=x)
    numpy.exp(x, out=x)
    x += 1.0
    numpy.divide(2.0, x, out=x)
    x -= 1.0


def mgu_forward_numpy(be, Wh, G, H, FH):
    """:func:`mgu_forward`, with no temporary arrays in the loop. ``exp`` may overflow to inf
    for pre-activations in the hundreds, which gives the right limits."""
    T, B, k = G.shape
    m = k // 2
    W_f, W_n = numpy.ascontiguousarray(Wh[:, :m]), numpy.ascontiguousarray(Wh[:, m:])
    p = numpy.empty((B, m), dtype=G.dtype)
    with numpy.errstate(over="ignore"):
        for t in range(T):
            g, h, h_new = G[t], H[t], H[t + 1]
            f, n = g[:, :m], g[:, m:]
            numpy.dot(h, W_f, out=p)
            f += p
            _sigmoid_(f)
            numpy.multiply(f, h, out=FH[t])
            numpy.dot(FH[t], W_n, out=p)
            n += p
            _tanh_(n)
            numpy.subtract(n, h, out=h_new)
            h_new *= f
            h_new += h


def mgu_backward_numpy(be, Wh, G, H, FH, dH, dG):
    """:func:`mgu_backward`, with no temporary arrays in the loop."""
    T, B, k = G.shape
    m = k // 2
    W_fT = numpy.ascontiguousarray(Wh[:, :m].T)
    W_nT = numpy.ascontiguousarray(Wh[:, m:].T)
    dh, dfh, a, b = (numpy.empty((B, m), dtype=G.dtype) for _ in range(4))
    carry = numpy.zeros((B, m), dtype=G.dtype)
    for t in range(T - 1, -1, -1):
        g, d, h = G[t], dG[t], H[t]
        f, n = g[:, :m], g[:, m:]
        df, dn = d[:, :m], d[:, m:]
        numpy.add(dH[t], carry, out=dh)
        numpy.multiply(n, n, out=a)
        numpy.subtract(1.0, a, out=a)
        a *= f
        numpy.multiply(a, dh, out=dn)  # dzn = dh f (1 - n^2)
        numpy.dot(dn, W_nT, out=dfh)
        numpy.subtract(n, h, out=a)
        a *= dh
        numpy.multiply(dfh, h, out=b)
        a += b
        numpy.subtract(1.0, f, out=b)
        b *= f
        numpy.multiply(a, b, out=df)  # dzf = (dh (n - h) + dfh h) f (1 - f)
        numpy.subtract(1.0, f, out=a)
        a *= dh
        numpy.multiply(dfh, f, out=b)
        a += b
        numpy.dot(df, W_fT, out=b)
        numpy.add(a, b, out=carry)  # into h_{t-1}


# -- the model ----------------------------------------------------------------------------------

class MGU(GatedRNN):
    name = "mgu"
    gates = 2  # f, n
    default_sigma = 0.05
    check_sigma = 0.3

    def zero_state(self, batch: int) -> State:
        return (self.backend.zeros((self.layers, batch, self.hidden)),)

    def _H_FH(self, layer: int, T: int, B: int):
        m = self.hidden
        return self.buffer(f"H{layer}", (T + 1, B, m)), self.buffer(f"FH{layer}", (T, B, m))

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        T, B = Z.shape[:2]
        H, FH = self._H_FH(layer, T, B)
        H[0] = state[0][layer]
        self.backend.kernel(MGU_FORWARD)(self.params[self.names[layer][1]], Z, H, FH)
        return H

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        m = self.hidden
        T, B = Z.shape[:2]
        N = T * B
        Wh = self.names[layer][1]
        H, FH = self._H_FH(layer, T, B)
        self.backend.kernel(MGU_BACKWARD)(self.params[Wh], Z, H, FH, dH, dZ)
        dZ2, dWh = dZ.reshape(N, 2 * m), self.grads[Wh]
        dWh[:, :m] = H[:-1].reshape(N, m).T @ dZ2[:, :m]  # the gate's block
        dWh[:, m:] = FH.reshape(N, m).T @ dZ2[:, m:]  # the candidate's block

    def cell_state_after(self, T: int, B: int) -> State:
        (h,) = self.zero_state(B)
        for layer in range(self.layers):
            h[layer] = self._H_FH(layer, T, B)[0][T]
        return (h,)


# -- the hooks ------------------------------------------------------------------------------------

@hookimpl
def register_models(register):
    register(MGU)


@hookimpl
def register_operations(register):
    register(MGU_FORWARD)
    register(MGU_BACKWARD)


@hookimpl
def register_kernels(register):
    register("mgu.forward", "numpy", mgu_forward_numpy)
    register("mgu.backward", "numpy", mgu_backward_numpy)
