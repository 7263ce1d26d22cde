"""The NumPy backend: the CPU backend users train with.

It is the base :class:`~charrnn.backend.Backend` (whose plain code is the conformance suite's
reference) plus the overrides below, each there because it measured faster on the hot path. The
figures are per update at the course's configuration (batch 1, m=100, T=25, K=103, float64) on
the 2-core CPU the project is measured on; ``benchmarks/bench_layout.py`` reproduces them.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy
from charrnn import hookimpl
from charrnn.backend import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = numpy

    #: How many distinct arrays' row views are kept; the models reuse a handful of buffers.
    ROW_CACHE_SIZE = 64

    def __init__(self, dtype: str = "float64") -> None:
        super().__init__(dtype)
        self._row_cache: Dict[int, Tuple[numpy.ndarray, List[numpy.ndarray]]] = {}
        self._scratch: Dict[Tuple[str, Tuple[int, ...]], numpy.ndarray] = {}

    def _rows(self, a: numpy.ndarray) -> List[numpy.ndarray]:
        """Row views of ``a``, made once per buffer.

        At m=100 a recurrence step costs a few µs, so creating three view objects per step is a
        measurable share. The cache holds the array itself, so an id is never reused for another
        array while its entry lives.
        """
        hit = self._row_cache.get(id(a))
        if hit is None or hit[0] is not a:
            if len(self._row_cache) >= self.ROW_CACHE_SIZE:
                self._row_cache.clear()
            hit = (a, list(a))
            self._row_cache[id(a)] = hit
        return hit[1]

    def _vectors(self, a: numpy.ndarray) -> List[numpy.ndarray]:
        """Row views of a (n, 1, m) array as (m,) vectors, made once per buffer (see _rows)."""
        hit = self._row_cache.get(id(a))
        if hit is None or hit[0] is not a:
            if len(self._row_cache) >= self.ROW_CACHE_SIZE:
                self._row_cache.clear()
            hit = (a, list(a.reshape(a.shape[0], a.shape[-1])))
            self._row_cache[id(a)] = hit
        return hit[1]

    def _tmp(self, name: str, shape: Tuple[int, ...]) -> numpy.ndarray:
        key = (name, shape)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = numpy.empty(shape, dtype=self.dtype)
        return buf

    def _copy(self, name: str, a: numpy.ndarray) -> numpy.ndarray:
        """``a`` copied into a contiguous scratch buffer."""
        buf = self._tmp(name, a.shape)
        numpy.copyto(buf, a)
        return buf

    # -- the vanilla RNN's recurrence --------------------------------------------------------

    def rnn_forward(self, Wh, A, H):
        T, B, m = A.shape
        if B != 1:
            return self._rnn_forward_batch(Wh, A, H)
        # One stream: step through cached (m,) vector views, not (1, m) matrices sliced anew;
        # ``Wh.dot(v, out)`` is a matrix-vector product without array-function dispatch. The
        # recurrence takes 1.5x less time so (bench_layout.py: 170 µs against 255 µs).
        tmp = self._tmp("rnn", (m,))
        w_dot, add, tanh = Wh.dot, numpy.add, numpy.tanh
        rows = self._vectors(H)
        for a_t, h_prev, h_t in zip(self._vectors(A), rows, rows[1:]):
            w_dot(h_prev, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def _rnn_forward_batch(self, Wh, A, H):
        # tanh through exp (see _tanh_): at m=512, B=32, T=64, float32 the forward pass takes
        # 18.8 ms instead of 21.8 (benchmarks/profile_update.py). Batch 1 keeps numpy.tanh, and
        # with it the course configuration's bit-for-bit agreement with charrnn 0.1.0.
        T, B, m = A.shape
        tmp = self._tmp("rnn", (B, m))
        dot, add, tanh, WT = numpy.dot, numpy.add, self._tanh_, Wh.T
        rows = self._rows(H)
        with numpy.errstate(over="ignore"):
            for a_t, h_prev, h_t in zip(self._rows(A), rows, rows[1:]):
                dot(h_prev, WT, tmp)
                add(tmp, a_t, h_t)
                tanh(h_t, h_t)
        return H

    def rnn_backward(self, Wh, H, dH, dA):
        T, B, m = dH.shape
        D = self._tmp("rnn D", (T, B, m))
        Hs = H[1:]
        numpy.multiply(Hs, Hs, out=D)
        numpy.subtract(1.0, D, out=D)  # 1 - h_t**2, for all steps at once
        add, multiply = numpy.add, numpy.multiply
        if B == 1:  # vectors, as in the forward pass
            tmp = self._tmp("rnn", (m,))
            dot = Wh.T.dot  # Wh.T @ v, which is v @ Wh
            dh, d, da = self._vectors(dH), self._vectors(D), self._vectors(dA)
        else:
            tmp = self._tmp("rnn", (B, m))
            dot_, WW = numpy.dot, Wh

            def dot(v, out):
                return dot_(v, WW, out)

            dh, d, da = self._rows(dH), self._rows(D), self._rows(dA)
        multiply(dh[T - 1], d[T - 1], da[T - 1])
        for t in range(T - 2, -1, -1):
            dot(da[t + 1], tmp)
            add(tmp, dh[t], tmp)
            multiply(tmp, d[t], da[t])
        return dA

    # -- activations from exp -----------------------------------------------------------------

    # NumPy's tanh is the slowest ufunc on the hot path: on the 2-core CPU the project is
    # measured on it takes 4.9 ns per float32 element (21.8 in float64), where exp takes 2.4 (9.7)
    # and a multiply 0.2. Written through one exp, sigmoid and tanh cost about 40% less; the
    # rounding error they add (a few units in the last place, absolute) is far inside the
    # conformance suite's tolerances. exp may overflow to inf for large arguments, which yields
    # the right limit (0, or -1 for tanh), so the operations below run under ``errstate``.

    @staticmethod
    def _sigmoid_(x, out):
        """``out = 1 / (1 + exp(-x))``."""
        numpy.negative(x, out=out)
        numpy.exp(out, out=out)
        numpy.add(out, 1.0, out=out)
        numpy.reciprocal(out, out=out)
        return out

    @staticmethod
    def _tanh_(x, out):
        """``out = 2 / (1 + exp(-2x)) - 1``, which is tanh(x)."""
        numpy.multiply(x, -2.0, out=out)
        numpy.exp(out, out=out)
        numpy.add(out, 1.0, out=out)
        numpy.divide(2.0, out, out=out)
        numpy.subtract(out, 1.0, out=out)
        return out

    # -- the LSTM's recurrence -----------------------------------------------------------------

    def _gate_scale(self, m: int, sigmoid_blocks: int, tanh_blocks: int):
        """The row ``[-1]*sigmoid_blocks*m + [-2]*tanh_blocks*m``: one multiply, one exp and one
        reciprocal then give every gate (sigmoid(z), and sigmoid(2z) for the tanh blocks)."""
        key = ("gate scale", (m, sigmoid_blocks, tanh_blocks))
        scale = self._scratch.get(key)
        if scale is None:
            scale = numpy.concatenate([numpy.full(sigmoid_blocks * m, -1.0),
                                       numpy.full(tanh_blocks * m, -2.0)]).astype(self.dtype)
            self._scratch[key] = scale
        return scale

    def lstm_forward(self, Wh, G, H, C):
        # Every step writes into preallocated buffers (no temporaries), and the four gates are
        # activated by five passes over one contiguous (B, 4m) block instead of four passes over
        # strided slices plus a tanh: at 2x256, B=32, T=64, float32 a layer's forward pass takes
        # 29-30 ms instead of 35, of which 26 are its products (benchmarks/profile_update.py).
        T, B, k = G.shape
        m = k // 4
        dot, add, multiply, exp = numpy.dot, numpy.add, numpy.multiply, numpy.exp
        proj, ic = self._tmp("lstm proj", (B, k)), self._tmp("lstm ic", (B, m))
        scale = self._gate_scale(m, 3, 1)
        with numpy.errstate(over="ignore"):
            for t in range(T):
                g = G[t]
                dot(H[t], Wh, out=proj)
                add(g, proj, out=g)
                multiply(g, scale, out=g)
                exp(g, out=g)
                add(g, 1.0, out=g)
                numpy.reciprocal(g, out=g)  # i, f, o = sigmoid(z); the n block holds sigmoid(2z)
                i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
                multiply(n, 2.0, out=n)
                numpy.subtract(n, 1.0, out=n)  # n = 2 sigmoid(2z) - 1 = tanh(z)
                c, h = C[t + 1], H[t + 1]
                multiply(f, C[t], out=c)
                multiply(i, n, out=ic)
                add(c, ic, out=c)  # c_t = f c_{t-1} + i n
                self._tanh_(c, h)
                multiply(h, o, out=h)  # h_t = o tanh(c_t)

    def lstm_backward(self, Wh, G, C, dH, dG):
        # Preallocated buffers, each gate's derivative formed in a contiguous scratch block,
        # tanh(c_t) for all steps in one pass before the loop, and the product below: 17.8 ms a
        # layer against the reference's 21.7 at the size above, in one process.
        T, B, k = G.shape
        m = k // 4
        dot, add, multiply, subtract = numpy.dot, numpy.add, numpy.multiply, numpy.subtract
        TC = self._tmp("lstm tc", (T, B, m))
        with numpy.errstate(over="ignore"):
            self._tanh_(C[1:], TC)
        dh, dc, dc_f, a = (self._tmp(f"lstm {name}", (B, m)) for name in ("dh", "dc", "dc f", "a"))
        # The gradient sent back to h_{t-1} is computed transposed, Wh dz_t^T, (m, B): OpenBLAS
        # takes 169 µs for it against 204 for dz_t Wh^T at 32x256 on 2 threads.
        dh_in_T = self._tmp("lstm dh in T", (m, B))
        dh_in = dh_in_T.T
        for t in range(T - 1, -1, -1):
            g, d, tc = G[t], dG[t], TC[t]
            i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
            di, df, do, dn = d[:, :m], d[:, m : 2 * m], d[:, 2 * m : 3 * m], d[:, 3 * m :]
            if t == T - 1:
                dh[...] = dH[t]
            else:
                add(dH[t], dh_in, out=dh)  # dh = dH[t] + dz_{t+1} Wh^T
            # Each factor is formed in the contiguous scratch ``a`` and written to its strided
            # block of dG once (in-place passes over the strided blocks cost more).
            multiply(tc, tc, out=a)
            subtract(1.0, a, out=a)
            multiply(a, o, out=a)
            multiply(a, dh, out=a)
            if t == T - 1:
                dc[...] = a
            else:
                add(a, dc_f, out=dc)  # dc = dc_{t+1} f_{t+1} + dh o (1 - tanh(c)^2)
            subtract(1.0, o, out=a)
            multiply(a, o, out=a)
            multiply(a, tc, out=a)
            multiply(a, dh, out=do)  # do = dh tanh(c) o (1 - o)
            subtract(1.0, i, out=a)
            multiply(a, i, out=a)
            multiply(a, n, out=a)
            multiply(a, dc, out=di)  # di = dc n i (1 - i)
            subtract(1.0, f, out=a)
            multiply(a, f, out=a)
            multiply(a, C[t], out=a)
            multiply(a, dc, out=df)  # df = dc c_{t-1} f (1 - f)
            multiply(n, n, out=a)
            subtract(1.0, a, out=a)
            multiply(a, i, out=a)
            multiply(a, dc, out=dn)  # dn = dc i (1 - n^2)
            if t:
                multiply(dc, f, out=dc_f)
                dot(Wh, d.T, out=dh_in_T)

    # -- the GRU's recurrence ------------------------------------------------------------------

    def gru_forward(self, Wh, G, H, RH):
        # As for the LSTM: preallocated buffers, sigmoid and tanh through exp.
        T, B, k = G.shape
        m = k // 3
        # The column blocks as contiguous copies: ``dot(..., out=)`` leaves BLAS for a slower loop
        # when an operand is a strided slice (210 µs against 53 for dn Wh[:, n]^T at 32x256).
        W_ru, W_n = self._copy("gru W ru", Wh[:, : 2 * m]), self._copy("gru W n", Wh[:, 2 * m :])
        dot, add, multiply = numpy.dot, numpy.add, numpy.multiply
        p_ru, p_n = self._tmp("gru ru", (B, 2 * m)), self._tmp("gru n", (B, m))
        with numpy.errstate(over="ignore"):
            for t in range(T):
                g, h, h_new = G[t], H[t], H[t + 1]
                ru, n = g[:, : 2 * m], g[:, 2 * m :]
                dot(h, W_ru, out=p_ru)
                add(ru, p_ru, out=ru)
                self._sigmoid_(ru, ru)
                r, u = g[:, :m], g[:, m : 2 * m]
                multiply(r, h, out=RH[t])
                dot(RH[t], W_n, out=p_n)
                add(n, p_n, out=n)
                self._tanh_(n, n)
                numpy.subtract(n, h, out=h_new)
                multiply(h_new, u, out=h_new)
                add(h_new, h, out=h_new)  # h_t = h_{t-1} + u (n - h_{t-1})

    def gru_backward(self, Wh, G, H, RH, dH, dG):
        # Each factor is formed in a contiguous scratch row block and written to its strided
        # block of dG once; the transposed product (as in lstm_backward) is read once per step.
        T, B, k = G.shape
        m = k // 3
        W_ru = self._copy("gru W ru", Wh[:, : 2 * m])  # contiguous, as in gru_forward
        W_nT = self._copy("gru W n T", Wh[:, 2 * m :].T)
        dot, add, multiply, subtract = numpy.dot, numpy.add, numpy.multiply, numpy.subtract
        dh, drh, a, s, carry = (self._tmp(f"gru {name}", (B, m))
                                for name in ("dh", "drh", "a", "s", "carry"))
        dh_in_T = self._tmp("gru dh in T", (m, B))
        for t in range(T - 1, -1, -1):
            g, d, h_prev = G[t], dG[t], H[t]
            r, u, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m :]
            dr, du, dn = d[:, :m], d[:, m : 2 * m], d[:, 2 * m :]
            if t == T - 1:
                dh[...] = dH[t]
            else:  # dh (1 - u) + drh r from step t+1, and [dr du] Wh[:, r u]^T
                add(dH[t], carry, out=dh)
                add(dh, dh_in_T.T, out=dh)
            multiply(n, n, out=a)
            subtract(1.0, a, out=a)
            multiply(a, u, out=a)
            multiply(a, dh, out=dn)  # dn = dh u (1 - n^2)
            subtract(1.0, u, out=s)  # 1 - u, used twice
            multiply(s, u, out=a)
            subtract(n, h_prev, out=drh)
            multiply(a, drh, out=a)
            multiply(a, dh, out=du)  # du = dh (n - h_{t-1}) u (1 - u)
            dot(dn, W_nT, out=drh)  # the gradient reaching r * h_{t-1}
            subtract(1.0, r, out=a)
            multiply(a, r, out=a)
            multiply(a, h_prev, out=a)
            multiply(a, drh, out=dr)  # dr = drh h_{t-1} r (1 - r)
            if t:
                dot(W_ru, d[:, : 2 * m].T, out=dh_in_T)
                multiply(s, dh, out=carry)
                multiply(drh, r, out=a)
                add(carry, a, out=carry)

    # -- the gradient's norm -------------------------------------------------------------------

    def clip_norm_(self, x, max_norm):
        # On the host the norm is known at once, so the scaling pass is skipped when it is not
        # needed (most updates, once training settles).
        norm = numpy.sqrt(numpy.dot(x, x))
        if norm > max_norm:
            x *= max_norm / (norm + 1e-6)
        return norm

    # -- the embedding's gradient ------------------------------------------------------------

    def segment_sum(self, ids, values, out):
        # A one-hot product beats ``numpy.add.at`` (bench_layout.py: 21 µs against 33 µs for 25
        # ids); the distinct ids, which the optimizer's sparse update needs, cost one mask more.
        n = ids.shape[0]
        onehot = numpy.zeros((out.shape[0], n), dtype=values.dtype)
        onehot[ids, numpy.arange(n)] = 1.0
        if out.flags.c_contiguous:
            numpy.dot(onehot, values, out=out)
        else:
            out[...] = onehot @ values
        seen = numpy.zeros(out.shape[0], dtype=bool)
        seen[ids] = True
        return seen.nonzero()[0]

    @classmethod
    def describe(cls) -> str:
        return f"numpy {numpy.__version__} (CPU)"


@hookimpl
def register_backends(register):
    register(NumpyBackend)
